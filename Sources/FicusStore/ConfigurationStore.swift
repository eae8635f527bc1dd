import FicusCore
import Foundation

/// One numbered, immutable state of the whole configuration, with who made it and why.
public struct StoredRevision: Sendable, Equatable {
    public var number: Int
    public var author: String
    public var reason: String
    public var createdAt: Date
    /// A one-line account of what changed from the previous revision ("~ route orders: default legacy → orders-v2",
    /// "rollback to 3"): the `RevisionDiff` lines joined with "; " and shortened, or "rollback to N".
    public var summary: String
    public var configuration: Configuration

    public init(
        number: Int,
        author: String,
        reason: String,
        createdAt: Date,
        summary: String,
        configuration: Configuration
    ) {
        self.number = number
        self.author = author
        self.reason = reason
        self.createdAt = createdAt
        self.summary = summary
        self.configuration = configuration
    }
}

/// A revision without its snapshot, for history listings.
public struct RevisionSummary: Sendable, Equatable {
    public var number: Int
    public var author: String
    public var reason: String
    public var createdAt: Date
    public var summary: String
    /// Routes whose definition differs from the previous revision (for `ficus history --route`).
    public var routesChanged: [String]

    public init(
        number: Int,
        author: String,
        reason: String,
        createdAt: Date,
        summary: String,
        routesChanged: [String]
    ) {
        self.number = number
        self.author = author
        self.reason = reason
        self.createdAt = createdAt
        self.summary = summary
        self.routesChanged = routesChanged
    }
}

/// One line of the append-only audit log.
public struct AuditEntry: Sendable, Equatable {
    public var id: Int
    public var revision: Int?
    public var time: Date
    public var author: String
    public var reason: String
    /// What was done, e.g. "flip", "apply", "rollback", "kill", "canary.abort".
    public var action: String
    public var detail: String

    public init(id: Int, revision: Int?, time: Date, author: String, reason: String, action: String, detail: String) {
        self.id = id
        self.revision = revision
        self.time = time
        self.author = author
        self.reason = reason
        self.action = action
        self.detail = detail
    }
}

/// A running proxy's heartbeat row.
public struct ProxyHeartbeat: Sendable, Equatable {
    public var id: String
    public var listen: String
    public var revision: Int
    public var startedAt: Date
    public var lastSeen: Date

    public init(id: String, listen: String, revision: Int, startedAt: Date, lastSeen: Date) {
        self.id = id
        self.listen = listen
        self.revision = revision
        self.startedAt = startedAt
        self.lastSeen = lastSeen
    }
}

/// Who makes a change and why; stored with the revision and in the audit log.
public struct ChangeAuthor: Sendable, Equatable {
    public var author: String
    public var reason: String
    /// The audit action name ("route.add", "flip", "apply", ...).
    public var action: String

    public init(author: String, reason: String, action: String) {
        self.author = author
        self.reason = reason
        self.action = action
    }
}

/// What a watcher reports.
public enum StoreEvent: Sendable {
    /// A newer revision was committed (by this or another process).
    case revision(StoredRevision)
    /// The store file was replaced (another file now at its path) or restored to an earlier state; `revision` is the
    /// newest revision found there, to be served even when it is older than the one served so far.
    ///
    /// `detail` says what happened in words an operator can check against what was done to the file.
    case replaced(StoredRevision, detail: String)
    /// The store could not be read or a revision could not be loaded; the last good revision stays in force.
    case failed(String)
    /// Something other than a revision was committed (a canary, blue-green or lease row, a heartbeat): what the canary
    /// controller wakes on instead of polling. SQLite reports a change of `PRAGMA data_version` that brought no new
    /// revision; PostgreSQL a `NOTIFY` that names no revision.
    case changed
}

/// Errors a store reports, each with a message a person can act on.
public enum StoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file is not a Ficus store or is damaged.
    case unreadable(path: String, detail: String)
    /// `expectRevision` did not match: someone else changed the store since the plan was made.
    case revisionMismatch(expected: Int, actual: Int)
    /// Another writer held the store for too long; retrying is safe.
    case busy(detail: String)
    /// A revision number that does not exist.
    case noSuchRevision(Int)
    /// The store has no revision yet (run `ficus init`).
    case empty
    /// The change left the configuration unchanged; no revision was written.
    case noChange
    /// The change itself failed (unknown route, and so on).
    case rejected(String)
    /// Telemetry (shadow records, metric windows) was not stored and has been dropped; configuration is unaffected.
    case telemetryDropped(String)
    /// The configuration brings back a rule name that an earlier revision used and the previous one no longer has.
    ///
    /// Buckets hash the rule's name, so a new rule under a retired name would inherit the old rule's users.
    case ruleNameRetired(name: String, route: String, revision: Int)
    /// The store's server cannot be reached (a PostgreSQL store that is down, refuses or times out); nothing was
    /// written. `store` is the URL without its password.
    case unreachable(store: String, detail: String)

    public var description: String {
        switch self {
        case .unreadable(let path, let detail): return "store '\(path)' cannot be read: \(detail)"
        case .revisionMismatch(let expected, let actual):
            return "the store is at revision \(actual), not \(expected): it changed since the plan was made; plan again"
        case .busy(let detail): return "the store is busy (another writer holds it): \(detail); retry"
        case .noSuchRevision(let number): return "there is no revision \(number)"
        case .empty: return "the store has no configuration yet: run 'ficus init'"
        case .noChange: return "nothing to change: the configuration already is as requested"
        case .rejected(let message): return message
        case .telemetryDropped(let detail): return "telemetry dropped (not stored): \(detail)"
        case .ruleNameRetired(let name, let route, let revision):
            return "rule name '\(name)' was used before (route '\(route)', revision \(revision)) and is retired: "
                + "rule names are never reused, pick another"
        case .unreachable(let store, let detail):
            return "store '\(store)' cannot be reached: \(detail); nothing was changed"
        }
    }
}

/// Where configuration revisions live; the proxy's wiring and the CLI use only this protocol.
///
/// SQLite and PostgreSQL (fleet mode, docs/FLEET.md) implement it, so nothing here may assume one process or one
/// machine.
public protocol ConfigurationStore: Sendable {
    /// The newest revision, or nil when the store is empty.
    func latest() async throws -> StoredRevision?

    /// A given revision.
    func revision(_ number: Int) async throws -> StoredRevision

    /// Revisions, newest first.
    func history(limit: Int?, route: String?) async throws -> [RevisionSummary]

    /// Applies `change` to the newest configuration (an empty one when the store is empty), validates the whole
    /// result and commits it as revision N+1 with an audit entry, all in one transaction. Throws
    /// `ConfigurationInvalid` (nothing written) when the result is invalid, `StoreError.revisionMismatch` when
    /// `expectRevision` is given and differs from the newest revision (0 for an empty store), `StoreError.noChange` when
    /// nothing changed, `StoreError.ruleNameRetired` when the result brings back a rule name that an earlier revision
    /// used and the newest one does not have. An error thrown by `change` comes out unchanged, and nothing is written.
    @discardableResult
    func commit(
        _ author: ChangeAuthor,
        expectRevision: Int?,
        change: @Sendable (inout Configuration) throws -> Void
    ) async throws -> StoredRevision

    /// `commit(_:expectRevision:change:)`, except that rules of revision `restoredFrom` may come back under their
    /// retired names when they come back exactly as they were there.
    ///
    /// For partial rollbacks (one route from an older revision): restoring a rule as it was gives its users back the
    /// buckets they had, which is what a rollback is for; a different rule under that name is still refused. Throws
    /// `StoreError.noSuchRevision` when `restoredFrom` does not exist; nil allows nothing, like the plain `commit`.
    @discardableResult
    func commit(
        _ author: ChangeAuthor,
        expectRevision: Int?,
        allowingRuleNamesFrom restoredFrom: Int?,
        change: @Sendable (inout Configuration) throws -> Void
    ) async throws -> StoredRevision

    /// Every rule name any revision has held, including rules removed since.
    ///
    /// Rule names are never reused (buckets hash them), so a generated name must avoid all of these, not only the
    /// names of the newest revision.
    func ruleNamesEverUsed() async throws -> Set<String>

    /// Writes a new revision equal to revision `number` (history is never rewritten).
    ///
    /// Retired rule names may come back here: the rules return exactly as they were, with their users' buckets.
    @discardableResult
    func rollback(to number: Int, _ author: ChangeAuthor) async throws -> StoredRevision

    /// Appends an audit entry that is not a configuration change (e.g. a canary step).
    func appendAudit(_ author: ChangeAuthor, revision: Int?, detail: String) async throws

    /// The audit log, newest first.
    func audit(limit: Int?) async throws -> [AuditEntry]

    /// Records that a proxy is alive and which revision it serves.
    func heartbeat(_ proxy: ProxyHeartbeat) async throws

    /// Proxies seen within `interval` seconds.
    func proxies(seenWithin interval: TimeInterval) async throws -> [ProxyHeartbeat]

    /// Newer revisions as they are committed, by any process, polling every `pollInterval` seconds; starts with the
    /// newest revision when there is one. Ends when the consuming task is cancelled.
    func watch(pollInterval: TimeInterval) -> AsyncStream<StoreEvent>
}

extension ConfigurationStore {
    /// The plain commit of every backend: `commit(_:expectRevision:allowingRuleNamesFrom:change:)` allowing no
    /// retired rule names back.
    @discardableResult
    public func commit(
        _ author: ChangeAuthor,
        expectRevision: Int?,
        change: @Sendable (inout Configuration) throws -> Void
    ) async throws -> StoredRevision {
        try await self.commit(author, expectRevision: expectRevision, allowingRuleNamesFrom: nil, change: change)
    }
}
