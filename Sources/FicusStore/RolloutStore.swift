import FicusCore
import Foundation

/// One canary's stored row: its state as the rollout module encoded it, and what the wiring needs to act on it.
///
/// The store keeps the state as opaque JSON: FicusStore does not depend on FicusRollout, so the state machine's types
/// can change without a store migration, and `active` is kept beside it so that listing running canaries is a query.
public struct CanaryRow: Sendable, Equatable {
    /// The route the canary moves; one canary per route.
    ///
    /// The primary key: a new canary on a route replaces a finished one.
    public var route: String

    /// `CanaryState.jsonData()` as written after the latest event.
    ///
    /// Decoded by the wiring only.
    public var stateJSON: Data

    /// Whether the canary is pending, running or paused (not promoted or aborted).
    ///
    /// Set by the writer, which knows the phase; the controller and operator overrides only look at active rows.
    public var active: Bool

    /// The name of the canary's percentage rule, chosen at start and never reused.
    ///
    /// Buckets hash the rule name, so the name must stay the same for the whole canary and differ from every other.
    public var ruleName: String

    /// What identifies a user for the canary's buckets; nil: the client address.
    ///
    /// Not part of `CanarySpec`, so it is kept here and copied into every `.setWeight` revision.
    public var stickiness: Attribute?

    /// Grows by one at every write; the compare-and-swap token of `writeCanary`.
    ///
    /// Lets any process (the controller, or the CLI applying a command) write an event's outcome without a lock.
    public var version: Int

    /// When the row was last written.
    ///
    /// For status output and diagnostics.
    public var updatedAt: Date

    /// Creates a row.
    ///
    /// See the properties.
    public init(
        route: String,
        stateJSON: Data,
        active: Bool,
        ruleName: String,
        stickiness: Attribute?,
        version: Int,
        updatedAt: Date
    ) {
        self.route = route
        self.stateJSON = stateJSON
        self.active = active
        self.ruleName = ruleName
        self.stickiness = stickiness
        self.version = version
        self.updatedAt = updatedAt
    }
}

/// A row of the lease table: which proxy drives a route's canary, and until when.
///
/// Mirrors `Lease` of FicusRollout without depending on it.
public struct CanaryLeaseRow: Sendable, Equatable {
    /// The holder's identity.
    ///
    /// Unique per proxy process.
    public var holder: String

    /// When the lease lapses unless renewed.
    ///
    /// Stored as given, so that a compare-and-swap compares exactly what was read.
    public var expiresAt: Date

    /// Creates a row.
    ///
    /// See the properties.
    public init(holder: String, expiresAt: Date) {
        self.holder = holder
        self.expiresAt = expiresAt
    }
}

/// What happens to one active canary when an operator's kill, rollback or flip commits.
///
/// Returned by the hook of `commit(_:overridingCanaries:...)`, which runs inside the operator's transaction.
public struct CanaryOverrideOutcome: Sendable {
    /// The canary's state after the override.
    ///
    /// Written in the same transaction as the operator's revision.
    public var stateJSON: Data

    /// Whether the canary is still active afterwards (normally not).
    ///
    /// See `CanaryRow.active`.
    public var active: Bool

    /// The audit line recording the override, tied to the operator's revision; nil records nothing.
    ///
    /// So that `ficus history` shows why the canary ended.
    public var auditLine: String?

    /// Creates an outcome.
    ///
    /// See the properties.
    public init(stateJSON: Data, active: Bool, auditLine: String?) {
        self.stateJSON = stateJSON
        self.active = active
        self.auditLine = auditLine
    }
}

/// Which active canaries an operator's commit takes over, and what becomes of each.
///
/// The hook runs inside the commit's transaction, so no controller can write a canary step between the operator's
/// revision and the canary's abort.
public struct CanaryOverrideHook: Sendable {
    /// The routes whose active canaries are overridden; nil: every route.
    ///
    /// A flip names its route, a kill all of them.
    public var routes: Set<String>?

    /// Called once per active canary of `routes` after the operator's change was applied and before it is validated;
    /// may edit the configuration (to remove the canary's rule) and returns the canary's new state.
    ///
    /// For a whole rollback the configuration passed is a copy that is not written: a rollback restores a revision
    /// exactly.
    public var apply: @Sendable (CanaryRow, inout Configuration) throws -> CanaryOverrideOutcome

    /// Creates a hook.
    ///
    /// See the properties.
    public init(
        routes: Set<String>?,
        apply: @escaping @Sendable (CanaryRow, inout Configuration) throws -> CanaryOverrideOutcome
    ) {
        self.routes = routes
        self.apply = apply
    }
}

extension CanaryOverrideHook {
    /// Runs `apply` on each of `rows` (the active canaries of `routes`, read in the operator's transaction); an error
    /// of the hook passes unchanged (wrapped in `ChangeFailed` until the store unwraps it).
    ///
    /// Shared by both backends, so an override means the same on SQLite and PostgreSQL.
    func outcomes(
        for rows: [CanaryRow],
        configuration: inout FicusCore.Configuration
    ) throws -> [(CanaryRow, CanaryOverrideOutcome)] {
        var outcomes: [(CanaryRow, CanaryOverrideOutcome)] = []
        for row in rows where self.routes?.contains(row.route) ?? true {
            do {
                outcomes.append((row, try self.apply(row, &configuration)))
            } catch {
                throw ChangeFailed(error: error)
            }
        }
        return outcomes
    }
}

/// A canary's row changed since it was read, or a canary is already running where a new one was to start.
///
/// The caller reloads and handles its event again on the fresh state, or reports the conflict.
public struct CanaryConflict: Error, Sendable, Equatable, CustomStringConvertible {
    /// The route of the canary.
    ///
    /// Named in the message.
    public var route: String

    /// What was found instead of what was expected.
    ///
    /// Ends the message.
    public var detail: String

    /// Creates the error.
    ///
    /// See the properties.
    public init(route: String, detail: String) {
        self.route = route
        self.detail = detail
    }

    /// Throws the conflict unless a write expecting `expectVersion` may replace `stored`: the version it read, or
    /// (nil: a start) no active canary on the route.
    ///
    /// The compare-and-swap of `RolloutStore.writeCanary`, the same on every backend.
    static func check(route: String, stored: CanaryRow?, expectVersion: Int?) throws {
        if let expectVersion {
            guard let stored, stored.version == expectVersion else {
                throw CanaryConflict(
                    route: route,
                    detail: "changed meanwhile (version \(stored?.version ?? 0), expected \(expectVersion))"
                )
            }
        } else if let stored, stored.active {
            throw CanaryConflict(route: route, detail: "a canary is already running on this route")
        }
    }

    /// `canary 'orders' changed meanwhile: ...`.
    ///
    /// Matches the object names of validation errors.
    public var description: String {
        "canary '\(self.route)': \(self.detail)"
    }
}

/// Where canaries and their leases live: one row per route, written by compare-and-swap, beside the revisions.
///
/// A separate protocol from `ConfigurationStore` so that the proxy's wiring asks for exactly what the controller needs;
/// SQLite implements both, so a canary step and its revision commit in one transaction.
public protocol RolloutStore: Sendable {
    /// The canary row of `route`, active or finished, or nil when the route never had one.
    ///
    /// Status reads finished canaries too.
    func canary(route: String) async throws -> CanaryRow?

    /// Every canary row, or only the active ones, sorted by route.
    ///
    /// The controller drives the active ones.
    func canaries(activeOnly: Bool) async throws -> [CanaryRow]

    /// Writes `row`'s state, rule name and stickiness with version `expectVersion + 1`, plus either one revision made by
    /// `change` (whose reason and audit line are `author.reason`) or, without a change, one audit entry; all in one
    /// transaction.
    ///
    /// `expectVersion` nil means "start": refused when the route has an active canary. Otherwise the stored version must
    /// equal it, else `CanaryConflict` and nothing is written. A change that leaves the configuration as it is writes
    /// the state and an audit entry, so that re-applying a step after a restart is harmless. Returns the row written
    /// and the revision, if one was.
    @discardableResult
    func writeCanary(
        _ row: CanaryRow,
        expectVersion: Int?,
        author: ChangeAuthor,
        change: (@Sendable (inout Configuration) throws -> Void)?
    ) async throws -> (row: CanaryRow, revision: StoredRevision?)

    /// `ConfigurationStore.commit(_:expectRevision:allowingRuleNamesFrom:change:)`, with `hook` applied to the active
    /// canaries of its routes in the same transaction.
    ///
    /// For `ficus kill` and `ficus flip`: the operator's revision and the canary's abort commit together.
    @discardableResult
    func commit(
        _ author: ChangeAuthor,
        expectRevision: Int?,
        allowingRuleNamesFrom restoredFrom: Int?,
        overridingCanaries hook: CanaryOverrideHook,
        change: @Sendable (inout Configuration) throws -> Void
    ) async throws -> StoredRevision

    /// `ConfigurationStore.rollback(to:_:)`, with `hook` applied to the active canaries of its routes in the same
    /// transaction.
    ///
    /// For `ficus rollback`.
    @discardableResult
    func rollback(
        to number: Int,
        _ author: ChangeAuthor,
        overridingCanaries hook: CanaryOverrideHook
    ) async throws -> StoredRevision

    /// The lease row of `route`'s canary, or nil.
    ///
    /// Read before `Lease.decide`.
    func canaryLease(route: String) async throws -> CanaryLeaseRow?

    /// Writes `lease` where `replacing` is stored (nil: no row), as a compare-and-swap; false when the row differs.
    ///
    /// False means another proxy won the race: stand by.
    func writeCanaryLease(route: String, _ lease: CanaryLeaseRow, replacing: CanaryLeaseRow?) async throws -> Bool

    /// Deletes `route`'s lease if `holder` holds it.
    ///
    /// A proxy that stops, or whose canary finished, hands over at once instead of after expiry.
    func releaseCanaryLease(route: String, holder: String) async throws
}
