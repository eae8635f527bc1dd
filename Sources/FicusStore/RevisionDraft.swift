import FicusCore
import Foundation

/// A revision as read for a commit: the revision, the ids of its object versions (parallel to
/// `revision.configuration.objects`) and its checkpoint's whole list.
struct ResolvedRevision: Sendable {
    var revision: StoredRevision
    var ids: [Int]
    var checkpoint: (number: Int, ids: [Int])

    /// Assembling the revision whose whole list is `list` from `cache`, fetching what it does not hold: the caller
    /// fetches `wanted` and hands it to `take` until that returns the configuration.
    ///
    /// Another read of the same store may trim the cache between finding what is missing and assembling (a store's
    /// operations share one cache), so what went missing meanwhile is wanted again, a few times at most. An id the
    /// store does not return is a damaged store: `ObjectMissing`. The ids come in kind order (settings, upstreams,
    /// segments, flags, routes), stable within each kind, parallel to the assembled configuration's objects.
    struct Assembly {
        let list: [Int]
        let cache: ObjectCache
        private(set) var wanted: [Int]
        private var attempts = 0

        init(_ list: [Int], cache: ObjectCache) {
            self.list = list
            self.cache = cache
            self.wanted = cache.missing(list)
        }

        /// Takes the versions fetched for `wanted`: the assembled revision, or nil to fetch `wanted` again.
        mutating func take(_ fetched: [StoredObject]) throws -> (configuration: FicusCore.Configuration, ids: [Int])? {
            guard fetched.count == self.wanted.count else {
                let found = Set(fetched.map(\.id))
                throw ObjectMissing(ids: self.wanted.filter { !found.contains($0) })
            }
            if let assembled = self.cache.assemble(self.list, adding: fetched) {
                return assembled
            }
            self.attempts += 1
            self.wanted = self.cache.missing(self.list)
            guard self.attempts < 4 else {
                throw ObjectMissing(ids: self.wanted)
            }
            return nil
        }
    }

    /// Reading one revision from its `revisions` row, the same on both backends: its checkpoint's list (cached, or
    /// the layout of revision `checkpointWanted`, which the caller fetches and hands to `takeCheckpoint`), then the
    /// object versions (`wanted`, which the caller fetches and hands to `take` until that returns the configuration).
    struct Read {
        let number: Int
        let layout: RevisionLayout
        let cache: ObjectCache
        private(set) var checkpointWanted: Int?
        private(set) var checkpointIDs: [Int] = []
        private var assembly: Assembly?

        /// Whether routes stay undecoded until used (`RouteList`): for a commit, which decodes what its change and
        /// validation read. Every other read decodes them all, failing on one the binary cannot read.
        let lazyRoutes: Bool

        init(number: Int, checkpoint: Int, layout json: String, cache: ObjectCache, lazyRoutes: Bool = false) throws {
            self.number = number
            self.lazyRoutes = lazyRoutes
            self.layout = try RevisionLayout(checkpoint: checkpoint, json: json)
            self.cache = cache
            if self.layout.isCheckpoint(of: number) {
                self.begin(self.layout.objects)
            } else if let cached = cache.checkpoint(self.layout.checkpoint) {
                self.begin(cached)
            } else {
                self.checkpointWanted = self.layout.checkpoint
            }
        }

        /// Takes the `layout` column of revision `checkpointWanted` (nil when there is no such revision).
        mutating func takeCheckpoint(_ json: String?) throws {
            guard let json else {
                throw StoreError.noSuchRevision(self.layout.checkpoint)
            }
            self.checkpointWanted = nil
            self.begin(try RevisionLayout(checkpoint: self.layout.checkpoint, json: json).objects)
        }

        private mutating func begin(_ checkpointIDs: [Int]) {
            self.checkpointIDs = checkpointIDs
            self.cache.remember(checkpoint: self.layout.checkpoint, ids: checkpointIDs)
            let list = self.layout.isCheckpoint(of: self.number) ? self.layout.objects
                : self.layout.resolve(base: checkpointIDs)
            self.assembly = Assembly(list, cache: self.cache)
        }

        /// The object versions to fetch next (none before the checkpoint's list is known).
        var wanted: [Int] { self.assembly?.wanted ?? [] }

        /// Takes the versions fetched for `wanted`: the revision, or nil to fetch `wanted` again.
        mutating func take(_ fetched: [StoredObject], header: StoredRevision) throws -> ResolvedRevision? {
            guard var assembly = self.assembly else {
                throw StoreError.noSuchRevision(self.layout.checkpoint)
            }
            let made = try assembly.take(fetched)
            self.assembly = assembly
            guard let made else {
                return nil
            }
            if !self.lazyRoutes {
                try made.configuration.routes.decodeAll()
            }
            var revision = header
            revision.configuration = made.configuration
            return ResolvedRevision(
                revision: revision,
                ids: made.ids,
                checkpoint: (self.layout.checkpoint, self.checkpointIDs)
            )
        }
    }

    /// Object ids a revision names that the store does not hold.
    struct ObjectMissing: Error, CustomStringConvertible {
        var ids: [Int]
        var description: String {
            "object versions \(self.ids.prefix(5).map(String.init).joined(separator: ", ")) are missing"
        }
    }
}

extension ResolvedRevision {
    /// Each object version of the revision with its id.
    ///
    /// The ids come in the configuration's object order, which always begins with one settings object: a list
    /// without one (written by hand, or damaged) has one id fewer, and one with several has more. Then what pairs
    /// with what is not known for certain, and the answer is nothing (the next revision stores its objects afresh,
    /// under the same digests).
    var versions: [(id: Int, object: ConfigurationObject)] {
        let objects = self.revision.configuration.objects
        if self.ids.count == objects.count {
            return Array(zip(self.ids, objects))
        }
        let noSettings = self.ids.count == objects.count - 1
        return noSettings ? Array(zip(self.ids, objects.dropFirst())) : []
    }

    /// Throws what a reader that decodes every route would have, when a route of this revision (read for a commit,
    /// its routes decoded on use) was used and cannot be decoded: a change never goes on from a route it could not
    /// read. `store` names the store in the error.
    func requireReadableRoutes(store: String) throws {
        if let (_, error) = self.revision.configuration.routes.undecodable {
            throw StoreError.unreadable(
                path: store, detail: "revision \(self.revision.number) cannot be decoded (\(error))")
        }
    }

    /// The revision just written from `draft` as `stored` after `previous`: the next one's `previous` when history is
    /// copied or migrated revision by revision.
    init(
        copied summary: RevisionSummary,
        draft: RevisionDraft,
        stored: (layout: RevisionLayout, ids: [Int]),
        previous: ResolvedRevision?
    ) {
        self.revision = StoredRevision(
            number: summary.number,
            author: summary.author,
            reason: summary.reason,
            createdAt: summary.createdAt,
            summary: summary.summary,
            configuration: draft.configuration
        )
        self.ids = stored.ids
        self.checkpoint = stored.layout.isCheckpoint(of: summary.number)
            ? (summary.number, stored.layout.objects) : previous?.checkpoint ?? (0, [])
    }
}

/// A configuration about to become revision `number`: its objects read back, validated and compared with the
/// previous revision, before either backend writes a row.
///
/// One place for the checks every commit makes (DESIGN.md, "Configuration lifecycle"), so that the SQLite and the
/// PostgreSQL store refuse and describe a change in exactly the same words. Only objects that differ from the previous
/// revision's are encoded: a flip of one route among a thousand encodes one route.
struct RevisionDraft {
    /// One object of the new configuration: a version the previous revision already has, or a new one.
    enum Entry {
        case stored(id: Int, key: ConfigurationObject.Key)
        case new(NewObject)
    }

    /// The configuration's objects in order.
    var entries: [Entry]
    /// The configuration as it reads back: what `revision(_:)` and watchers will load.
    var configuration: FicusCore.Configuration
    /// The one-line summary stored with the revision.
    var summary: String
    /// The audit entry's detail: the summary given (a rollback's) and every diff line.
    var detail: String
    /// The routes whose definition changed.
    var routesChanged: [String]
    /// The keys of the previous revision's object versions, by id, for the layout.
    private let previousKeys: [Int: ConfigurationObject.Key]

    /// The new versions, each once.
    var newObjects: [NewObject] {
        var seen: Set<String> = []
        return self.entries.compactMap { entry in
            guard case .new(let object) = entry, seen.insert(object.digest).inserted else { return nil }
            return object
        }
    }

    /// Routes whose version is new to this revision: the ones whose rule names must be recorded.
    var newRoutes: [Route] {
        self.entries.compactMap { entry in
            guard case .new(let object) = entry, case .route(let route) = object.object else { return nil }
            return route
        }
    }

    /// Throws `ConfigurationInvalid` when the result is invalid and `StoreError.noChange` when it equals `previous`.
    ///
    /// `previous` is the newest revision (nil for the first). `checked` is false only for history being copied or
    /// migrated, which was checked when it was written and keeps its own summary: then nothing is validated or
    /// compared, and `summary`, `detail` and `routesChanged` are left empty.
    init(
        _ configuration: FicusCore.Configuration,
        previous: ResolvedRevision?,
        summary: String?,
        checked: Bool = true
    ) throws {
        var known: [ConfigurationObject.Key: (id: Int, object: ConfigurationObject)] = [:]
        var previousKeys: [Int: ConfigurationObject.Key] = [:]
        for (id, object) in previous?.versions ?? [] {
            known[object.key] = (id, object)
            previousKeys[id] = object.key
        }
        self.previousKeys = previousKeys
        var entries: [Entry] = []
        var objects: [ConfigurationObject] = []
        for object in configuration.objects {
            if let stored = known[object.key], stored.object == object {
                entries.append(.stored(id: stored.id, key: object.key))
                objects.append(object)
            } else {
                let new = try NewObject(object)
                entries.append(.new(new))
                objects.append(new.object)
            }
        }
        let stored = FicusCore.Configuration(objects: objects)
        self.entries = entries
        self.configuration = stored
        guard checked else {
            self.summary = summary ?? ""
            self.detail = ""
            self.routesChanged = []
            return
        }
        // Against the previous revision, which was valid when it was committed: what equals its version there is not
        // checked again (a route still in its stored form is not even decoded), everything else is, and so is
        // everything that spans objects. The same errors as validating the whole result.
        let errors = stored.validate(unchangedSince: previous?.revision.configuration)
        guard errors.isEmpty else {
            throw ConfigurationInvalid(errors: errors)
        }
        let diff = RevisionDiff(from: previous?.revision.configuration ?? FicusCore.Configuration(), to: stored)
        guard !diff.isEmpty else {
            throw StoreError.noChange
        }
        self.detail = ((summary.map { [$0] } ?? []) + diff.lines).joined(separator: "\n")
        self.summary = summary ?? diff.summary()
        self.routesChanged = diff.routesChanged
    }

    /// The revision's list of (id, key), once the new versions have ids (`ids` by digest).
    func target(ids: [String: Int]) throws -> [(id: Int, key: ConfigurationObject.Key)] {
        try self.entries.map { entry in
            switch entry {
            case .stored(let id, let key):
                return (id, key)
            case .new(let object):
                guard let id = ids[object.digest] else {
                    throw StoreError.rejected("object version \(object.digest) was not stored")
                }
                return (id, object.object.key)
            }
        }
    }

    /// The ids of `previous`'s checkpoint whose keys the layout needs and neither the previous revision nor
    /// `target` holds: versions replaced since the checkpoint. The caller fetches their keys for `layout`.
    func unknownKeys(target: [(id: Int, key: ConfigurationObject.Key)], previous: ResolvedRevision?) -> [Int] {
        guard let previous else {
            return []
        }
        let targetIDs = Set(target.map(\.id))
        return previous.checkpoint.ids.filter { !targetIDs.contains($0) && self.previousKeys[$0] == nil }
    }

    /// Lays out the revision against `previous`'s checkpoint; `fetchedKeys` are the keys of `unknownKeys`.
    func layout(
        number: Int,
        target: [(id: Int, key: ConfigurationObject.Key)],
        previous: ResolvedRevision?,
        fetchedKeys: [Int: ConfigurationObject.Key]
    ) -> RevisionLayout {
        guard let previous else {
            return RevisionLayout.plan(number: number, target: target, base: nil, baseKeys: [:])
        }
        let baseKeys = self.previousKeys.merging(fetchedKeys) { first, _ in first }
        return RevisionLayout.plan(number: number, target: target, base: previous.checkpoint, baseKeys: baseKeys)
    }
}

extension FicusCore.Configuration {
    /// The rules whose names no route of `previous` has, in route order: the ones whose names may have been retired.
    ///
    /// Only routes that differ from their previous version are read; the names of `previous`'s other routes are
    /// gathered only when one of them has a name its previous version lacked (a rule added or moved), so a flip of
    /// one route among a thousand decodes none of the others.
    func rulesWithNewNames(since previous: FicusCore.Configuration) -> [Rule] {
        let previousIndex = previous.routes.firstIndexByName
        var candidates: [Rule] = []
        for index in self.routes.indices {
            let old = previousIndex[self.routes.name(at: index)]
            if let old, self.routes.isSame(at: index, as: previous.routes, at: old) {
                continue
            }
            let kept = Set(old.map { previous.routes[$0].rules.map(\.name) } ?? [])
            candidates += self.routes[index].rules.filter { !kept.contains($0.name) }
        }
        guard !candidates.isEmpty else {
            return []
        }
        let current = Set(previous.routes.flatMap { $0.rules.map(\.name) })
        return candidates.filter { !current.contains($0.name) }
    }
}
