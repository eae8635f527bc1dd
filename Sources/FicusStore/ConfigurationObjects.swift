import Crypto
import FicusCore
import Foundation

/// One part of a configuration stored on its own: an upstream, a segment, a flag, a route, or the store-wide settings
/// (kill switch and identity).
///
/// Revisions are lists of object versions (docs/FLEET.md, "How revisions are stored"): each distinct version of an
/// object is stored once, under the SHA-256 of its kind and canonical JSON, so a flip writes one route, not the whole
/// configuration, and a rollback writes none.
enum ConfigurationObject: Sendable, Equatable {
    case settings(Settings)
    case upstream(Upstream)
    case segment(Segment)
    case flag(Flag)
    case route(Route)
    /// A route as read from the store, decoded on first use (see `RouteList`).
    case storedRoute(StoredRoute)

    /// Equal values; a stored route equals itself without decoding, and a route equals the same route stored.
    static func == (lhs: ConfigurationObject, rhs: ConfigurationObject) -> Bool {
        switch (lhs, rhs) {
        case (.settings(let left), .settings(let right)): left == right
        case (.upstream(let left), .upstream(let right)): left == right
        case (.segment(let left), .segment(let right)): left == right
        case (.flag(let left), .flag(let right)): left == right
        default:
            if let left = lhs.routeSlot, let right = rhs.routeSlot {
                RouteList.Slot.same(left, right)
            } else {
                false
            }
        }
    }

    /// The route as an element of a configuration's routes; nil for other kinds.
    var routeSlot: RouteList.Slot? {
        switch self {
        case .route(let route): .route(route)
        case .storedRoute(let stored): .stored(stored)
        default: nil
        }
    }

    /// The kill switch and the identity: the configuration's fields that are not lists.
    struct Settings: Sendable, Equatable, Codable {
        var killed: Bool
        var identity: Attribute?
    }

    /// The kinds, in the order a configuration lists them.
    enum Kind: String, Sendable, CaseIterable {
        case settings, upstream, segment, flag, route

        /// The kind's place in a configuration's list of objects.
        var order: Int {
            switch self {
            case .settings: 0
            case .upstream: 1
            case .segment: 2
            case .flag: 3
            case .route: 4
            }
        }
    }

    /// What two versions of one object share: its kind and name ("" for the settings).
    struct Key: Hashable, Sendable {
        var kind: Kind
        var name: String
    }

    var kind: Kind {
        switch self {
        case .settings: .settings
        case .upstream: .upstream
        case .segment: .segment
        case .flag: .flag
        case .route, .storedRoute: .route
        }
    }

    var key: Key {
        switch self {
        case .settings: Key(kind: .settings, name: "")
        case .upstream(let upstream): Key(kind: .upstream, name: upstream.name)
        case .segment(let segment): Key(kind: .segment, name: segment.name)
        case .flag(let flag): Key(kind: .flag, name: flag.name)
        case .route(let route): Key(kind: .route, name: route.name)
        case .storedRoute(let stored): Key(kind: .route, name: stored.name)
        }
    }

    /// The canonical JSON text: sorted keys, unescaped slashes (as whole snapshots were written).
    func encoded() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data: Data
        switch self {
        case .settings(let settings): data = try encoder.encode(settings)
        case .upstream(let upstream): data = try encoder.encode(upstream)
        case .segment(let segment): data = try encoder.encode(segment)
        case .flag(let flag): data = try encoder.encode(flag)
        case .route(let route): data = try encoder.encode(route)
        case .storedRoute(let stored): data = try encoder.encode(try stored.route())
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// Decodes an object of `kind` from its JSON text.
    static func decode(kind: Kind, body: String) throws -> ConfigurationObject {
        let decoder = JSONDecoder()
        let data = Data(body.utf8)
        switch kind {
        case .settings: return .settings(try decoder.decode(Settings.self, from: data))
        case .upstream: return .upstream(try decoder.decode(Upstream.self, from: data))
        case .segment: return .segment(try decoder.decode(Segment.self, from: data))
        case .flag: return .flag(try decoder.decode(Flag.self, from: data))
        case .route: return .route(try decoder.decode(Route.self, from: data))
        }
    }

    /// The content address of a version: hex SHA-256 of the kind, a newline and the canonical JSON.
    static func digest(kind: Kind, body: String) -> String {
        var hasher = SHA256()
        hasher.update(data: Data(kind.rawValue.utf8))
        hasher.update(data: Data([0x0A]))
        hasher.update(data: Data(body.utf8))
        return hasher.finalize().map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }
}

extension FicusCore.Configuration {
    /// The configuration's objects: the settings, then upstreams, segments, flags and routes, each in list order.
    var objects: [ConfigurationObject] {
        var objects: [ConfigurationObject] = [.settings(.init(killed: self.killed, identity: self.identity))]
        objects.reserveCapacity(1 + self.upstreams.count + self.segments.count + self.flags.count + self.routes.count)
        objects += self.upstreams.map(ConfigurationObject.upstream)
        objects += self.segments.map(ConfigurationObject.segment)
        objects += self.flags.map(ConfigurationObject.flag)
        objects += self.routes.slots.map { slot in
            switch slot {
            case .route(let route): ConfigurationObject.route(route)
            case .stored(let stored): ConfigurationObject.storedRoute(stored)
            }
        }
        return objects
    }

    /// The configuration made of `objects`: each list in the order its objects come, the last settings object.
    init(objects: some Sequence<ConfigurationObject>) {
        self.init()
        for object in objects {
            self.place(object, at: nil)
        }
    }

    /// Puts `object` at `position` of its kind's list (appends it when nil); the settings replace the kill switch and
    /// the identity.
    mutating func place(_ object: ConfigurationObject, at position: Int?) {
        func put<Value>(_ value: Value, _ list: inout [Value]) {
            if let position {
                list[position] = value
            } else {
                list.append(value)
            }
        }
        switch object {
        case .settings(let settings):
            self.killed = settings.killed
            self.identity = settings.identity
        case .upstream(let upstream): put(upstream, &self.upstreams)
        case .segment(let segment): put(segment, &self.segments)
        case .flag(let flag): put(flag, &self.flags)
        case .route(let route): self.routes.place(.route(route), at: position)
        case .storedRoute(let stored): self.routes.place(.stored(stored), at: position)
        }
    }
}

/// An object version as stored: its row id, key and value.
struct StoredObject: Sendable {
    var id: Int
    var object: ConfigurationObject

    init(id: Int, object: ConfigurationObject) {
        self.id = id
        self.object = object
    }

    /// A `config_objects` row decoded (either backend); a kind this binary does not know or a body that does not
    /// decode fails naming the version.
    init(id: Int, kind kindName: String, name: String, body: String) throws {
        guard let kind = ConfigurationObject.Kind(rawValue: kindName) else {
            throw StoreError.rejected("object version \(id) has an unknown kind '\(kindName)'")
        }
        @Sendable func failed(_ error: any Error) -> StoreError {
            StoreError.rejected("object version \(id) (\(kindName) '\(name)') cannot be decoded (\(error))")
        }
        guard kind != .route else {
            // Decoded on first use: a commit that changes one route among a thousand decodes one. Readers that hand
            // the configuration on decode every route first (`RouteList.decodeAll`), and fail as eagerly as before.
            self.init(
                id: id,
                object: .storedRoute(
                    StoredRoute(name: name) {
                        do {
                            let route = try JSONDecoder().decode(Route.self, from: Data(body.utf8))
                            guard route.name == name else {
                                throw StoreError.rejected("it is named '\(route.name)'")
                            }
                            return route
                        } catch {
                            throw failed(error)
                        }
                    }
                )
            )
            return
        }
        do {
            self.init(id: id, object: try ConfigurationObject.decode(kind: kind, body: body))
        } catch {
            throw failed(error)
        }
    }
}

/// A version about to be stored: its value as it reads back, canonical JSON and content address.
struct NewObject: Sendable {
    var object: ConfigurationObject
    var body: String
    var digest: String

    /// Encodes `object` and reads it back, so that what a commit returns equals what every reader will load.
    init(_ object: ConfigurationObject) throws {
        let body = try object.encoded()
        let kind = object.key.kind
        self.object = try ConfigurationObject.decode(kind: kind, body: body)
        self.body = body
        self.digest = ConfigurationObject.digest(kind: kind, body: body)
    }
}

/// How one revision's list of object versions is stored: whole (a checkpoint), or as the changes from the
/// checkpoint before it.
///
/// A delta is taken against its checkpoint, not its predecessor, so reading any revision reads at most two lists; a
/// new checkpoint is written when the changes since the last one grow past a quarter of the list (or cannot be said
/// as replacements, removals and additions at the end). A flip's revision is then a few ids however large the
/// configuration, and no revision costs more than a quarter of a checkpoint.
struct RevisionLayout: Sendable, Equatable, Codable {
    /// The revision whose `objects` are the whole list: this revision's own number when it is a checkpoint.
    var checkpoint: Int
    /// A checkpoint's whole list, in order; empty for a delta.
    var objects: [Int] = []
    /// A delta's replacements: the checkpoint's id, the id in its place.
    var replaced: [[Int]] = []
    /// A delta's removals: checkpoint ids no longer in the list.
    var removed: [Int] = []
    /// A delta's additions, appended in order.
    var added: [Int] = []

    private enum CodingKeys: String, CodingKey {
        case objects, replaced, removed, added
    }

    init(checkpoint: Int, objects: [Int] = [], replaced: [[Int]] = [], removed: [Int] = [], added: [Int] = []) {
        self.checkpoint = checkpoint
        self.objects = objects
        self.replaced = replaced
        self.removed = removed
        self.added = added
    }

    /// Decodes the `layout` column of the revision whose checkpoint is `checkpoint`.
    init(checkpoint: Int, json: String) throws {
        let decoded = try JSONDecoder().decode(Self.self, from: Data(json.utf8))
        self = decoded
        self.checkpoint = checkpoint
        guard self.replaced.allSatisfy({ $0.count == 2 }) else {
            throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "a replacement is not a pair"))
        }
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.checkpoint = 0
        self.objects = try container.decodeIfPresent([Int].self, forKey: .objects) ?? []
        self.replaced = try container.decodeIfPresent([[Int]].self, forKey: .replaced) ?? []
        self.removed = try container.decodeIfPresent([Int].self, forKey: .removed) ?? []
        self.added = try container.decodeIfPresent([Int].self, forKey: .added) ?? []
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        if !self.objects.isEmpty || (self.replaced.isEmpty && self.removed.isEmpty && self.added.isEmpty) {
            try container.encode(self.objects, forKey: .objects)
        }
        if !self.replaced.isEmpty { try container.encode(self.replaced, forKey: .replaced) }
        if !self.removed.isEmpty { try container.encode(self.removed, forKey: .removed) }
        if !self.added.isEmpty { try container.encode(self.added, forKey: .added) }
    }

    /// The `layout` column's JSON text.
    var json: String {
        // Encoding integer arrays cannot fail.
        String(decoding: (try? JSONEncoder().encode(self)) ?? Data("{}".utf8), as: UTF8.self)
    }

    /// Whether this revision is its own checkpoint.
    func isCheckpoint(of number: Int) -> Bool {
        self.checkpoint == number
    }

    /// The revision's whole list, given its checkpoint's (for a checkpoint, its own `objects`).
    func resolve(base: [Int]) -> [Int] {
        let replacements = Dictionary(self.replaced.map { ($0[0], $0[1]) }, uniquingKeysWith: { first, _ in first })
        let removed = Set(self.removed)
        var list: [Int] = []
        list.reserveCapacity(base.count + self.added.count)
        for id in base where !removed.contains(id) {
            list.append(replacements[id] ?? id)
        }
        return list + self.added
    }

    /// The ids a reader needs besides the checkpoint's list.
    var deltaCount: Int {
        self.replaced.count + self.removed.count + self.added.count
    }

    /// Lays out revision `number`, whose whole list is `target` (with each id's key), against `base`: the newest
    /// revision's checkpoint number and whole list, with the keys of the base ids that `target` no longer has.
    ///
    /// A checkpoint when there is no base, when the changes exceed a quarter of the list (at least 64), or when
    /// replacing, removing and appending cannot give `target`'s order within each kind.
    static func plan(
        number: Int,
        target: [(id: Int, key: ConfigurationObject.Key)],
        base: (number: Int, ids: [Int])?,
        baseKeys: [Int: ConfigurationObject.Key]
    ) -> RevisionLayout {
        let whole = RevisionLayout(checkpoint: number, objects: target.map(\.id))
        guard let base else {
            return whole
        }
        let targetIDs = Set(target.map(\.id))
        let baseIDs = Set(base.ids)
        let new = target.filter { !baseIDs.contains($0.id) }
        var newByKey: [ConfigurationObject.Key: Int] = [:]
        for entry in new where newByKey[entry.key] == nil {
            newByKey[entry.key] = entry.id
        }
        var layout = RevisionLayout(checkpoint: base.number)
        var used: Set<Int> = []
        for id in base.ids where !targetIDs.contains(id) {
            if let key = baseKeys[id], let replacement = newByKey[key], !used.contains(replacement) {
                layout.replaced.append([id, replacement])
                used.insert(replacement)
            } else {
                layout.removed.append(id)
            }
        }
        layout.added = new.map(\.id).filter { !used.contains($0) }
        guard layout.deltaCount <= max(64, base.ids.count / 4) else {
            return whole
        }
        // Within each kind the order must come out as `target`'s; across kinds it does not matter, since a
        // configuration groups its objects by kind.
        let kinds = Dictionary(target.map { ($0.id, $0.key.kind) }, uniquingKeysWith: { first, _ in first })
        func byKind(_ ids: [Int]) -> [ConfigurationObject.Kind: [Int]]? {
            var grouped: [ConfigurationObject.Kind: [Int]] = [:]
            for id in ids {
                guard let kind = kinds[id] else { return nil }
                grouped[kind, default: []].append(id)
            }
            return grouped
        }
        let resolved = layout.resolve(base: base.ids)
        guard resolved.count == target.count, let got = byKind(resolved), got == byKind(target.map(\.id)) else {
            return whole
        }
        return layout
    }
}

/// Decoded object versions by id, kept by a store between reads so that a proxy applying a revision decodes only
/// the versions it has not seen; and the lists of recent checkpoints.
///
/// Bounded: once it holds more than twice the versions a read used (plus 256), it keeps only those; with them the
/// last configuration it assembled and the last four checkpoints' lists. Thread-safe.
final class ObjectCache: @unchecked Sendable {
    private let lock = NSLock()
    private var objects: [Int: ConfigurationObject] = [:]
    private var checkpoints: [(number: Int, ids: [Int])] = []

    init() {}

    /// The ids among `ids` that are not cached, each once.
    func missing(_ ids: [Int]) -> [Int] {
        var seen: Set<Int> = []
        return self.lock.withLock {
            ids.filter { self.objects.index(forKey: $0) == nil && seen.insert($0).inserted }
        }
    }

    /// The last configuration assembled, with its list, and where each list entry sits in the configuration (its
    /// index within its kind's list), so that the next one can be made by replacing what differs.
    private var last: (list: [Int], configuration: FicusCore.Configuration, ids: [Int], positions: [Int])?

    /// Stores `fetched` and assembles the configuration whose objects are `ids`, with the ids in the configuration's
    /// order (grouped by kind, stable within each), or nil when one is missing; keeps only `ids` when the cache
    /// holds more than twice their number.
    ///
    /// A list that differs from the last one assembled only by replacements (a flip, a canary step) is made from it
    /// by replacing those objects: a proxy applying a flip of one route among a thousand copies nothing else.
    /// Otherwise one pass and one copy of each object.
    func assemble(
        _ ids: [Int],
        adding fetched: [StoredObject]
    ) -> (configuration: FicusCore.Configuration, ids: [Int])? {
        self.lock.withLock {
            for stored in fetched {
                self.objects[stored.id] = stored.object
            }
            defer {
                if self.objects.count > 2 * ids.count + 256 {
                    let keep = Set(ids)
                    self.objects = self.objects.filter { keep.contains($0.key) }
                }
            }
            if let patched = self.patchLast(ids) {
                return patched
            }
            var configuration = FicusCore.Configuration()
            var grouped = Array(repeating: [Int](), count: ConfigurationObject.Kind.allCases.count)
            var positions: [Int] = []
            positions.reserveCapacity(ids.count)
            for id in ids {
                guard let object = self.objects[id] else { return nil }
                let kind = object.kind.order
                positions.append(grouped[kind].count)
                grouped[kind].append(id)
                configuration.place(object, at: nil)
            }
            let ordered = Array(grouped.joined())
            self.last = (ids, configuration, ordered, positions)
            return (configuration, ordered)
        }
    }

    /// The configuration of `ids` made from the last one assembled, when the lists have one length and differ in at
    /// most 64 places, each replacing an object by one of the same kind; nil otherwise (or when one is missing).
    private func patchLast(_ ids: [Int]) -> (configuration: FicusCore.Configuration, ids: [Int])? {
        guard var last = self.last, last.list.count == ids.count else {
            return nil
        }
        var changed: [Int] = []
        for index in ids.indices where ids[index] != last.list[index] {
            changed.append(index)
            if changed.count > 64 {
                return nil
            }
        }
        var offsets = Array(repeating: 0, count: ConfigurationObject.Kind.allCases.count)
        let counts = [1, last.configuration.upstreams.count, last.configuration.segments.count,
            last.configuration.flags.count, last.configuration.routes.count]
        for kind in 1..<offsets.count {
            offsets[kind] = offsets[kind - 1] + counts[kind - 1]
        }
        var configuration = last.configuration
        var ordered = last.ids
        for index in changed {
            guard let new = self.objects[ids[index]], let old = self.objects[last.list[index]], new.kind == old.kind
            else {
                return nil
            }
            let position = last.positions[index]
            ordered[offsets[new.kind.order] + (new.kind == .settings ? 0 : position)] = ids[index]
            configuration.place(new, at: position)
        }
        last.list = ids
        last.configuration = configuration
        last.ids = ordered
        self.last = last
        return (configuration, ordered)
    }

    func checkpoint(_ number: Int) -> [Int]? {
        self.lock.withLock { self.checkpoints.first { $0.number == number }?.ids }
    }

    func remember(checkpoint number: Int, ids: [Int]) {
        self.lock.withLock {
            self.checkpoints.removeAll { $0.number == number }
            self.checkpoints.append((number, ids))
            if self.checkpoints.count > 4 {
                self.checkpoints.removeFirst()
            }
        }
    }

    /// Forgets everything: for a store file replaced under its path, whose ids mean other objects.
    func clear() {
        self.lock.withLock {
            self.objects = [:]
            self.checkpoints = []
            self.last = nil
        }
    }
}

/// How one revision is stored, and what the store holds of object versions: for tests, `ficus-store-probe` and the
/// benchmark of what a flip writes.
public struct RevisionStorage: Sendable, Equatable {
    /// The revision holding the whole list this one is read against (its own number for a checkpoint).
    public var checkpoint: Int
    /// The bytes of the revision's `layout` column.
    public var layoutBytes: Int
    /// Replacements, removals and additions of a delta; 0 for a checkpoint.
    public var changes: Int
    /// The object versions the store holds, all revisions together.
    public var objects: Int
    /// The bytes of their JSON bodies.
    public var objectBytes: Int

    public init(checkpoint: Int, layoutBytes: Int, changes: Int, objects: Int, objectBytes: Int) {
        self.checkpoint = checkpoint
        self.layoutBytes = layoutBytes
        self.changes = changes
        self.objects = objects
        self.objectBytes = objectBytes
    }
}
