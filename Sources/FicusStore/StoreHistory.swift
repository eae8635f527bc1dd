import FicusCore
import Foundation

/// Everything a store keeps that is not telemetry: revisions (with their snapshots as stored), the audit log, the
/// rule names ever used, canaries and blue-green states. What `ficus store copy` moves from one backend to another,
/// so that a team that starts on SQLite moves to PostgreSQL without losing its audit trail (docs/FLEET.md).
///
/// Heartbeats and canary leases are left out: they describe running proxies, which re-create them within seconds.
/// Telemetry (shadow records, metric windows) is left out too: it is bounded and ages out by design.
public struct StoreHistory: Sendable, Equatable {
    /// One revision: what history lists, and its configuration (stored again as object versions by the importing
    /// store, which lays the history out as its own revisions would be).
    public struct Revision: Sendable, Equatable {
        public var summary: RevisionSummary
        public var configuration: FicusCore.Configuration

        public init(summary: RevisionSummary, configuration: FicusCore.Configuration) {
            self.summary = summary
            self.configuration = configuration
        }

        public var number: Int { self.summary.number }
    }

    /// One `rule_names` row: a rule name, its route and the revision that first used it.
    public struct RuleName: Sendable, Equatable {
        public var name: String
        public var route: String
        public var firstRevision: Int

        public init(name: String, route: String, firstRevision: Int) {
            self.name = name
            self.route = route
            self.firstRevision = firstRevision
        }
    }

    /// One `bluegreen` row.
    public struct BlueGreen: Sendable, Equatable {
        public var upstream: String
        public var stateJSON: Data
        public var version: Int
        public var updatedAt: Date

        public init(upstream: String, stateJSON: Data, version: Int, updatedAt: Date) {
            self.upstream = upstream
            self.stateJSON = stateJSON
            self.version = version
            self.updatedAt = updatedAt
        }
    }

    /// By number, oldest first; gapless from 1.
    public var revisions: [Revision] = []
    /// Oldest first.
    public var audit: [AuditEntry] = []
    /// By name.
    public var ruleNames: [RuleName] = []
    /// By route, finished ones included.
    public var canaries: [CanaryRow] = []
    /// By upstream.
    public var blueGreen: [BlueGreen] = []

    public init() {}

    /// Checks what an import relies on: revisions numbered 1…N without a gap, audit entries and rule names that name
    /// existing revisions. Throws `StoreError.rejected` naming the first row that is wrong.
    public func check() throws {
        for (index, revision) in self.revisions.enumerated() where revision.number != index + 1 {
            throw StoreError.rejected("revision \(revision.number) is out of order: expected \(index + 1) (no gaps)")
        }
        let latest = self.revisions.count
        for entry in self.audit {
            if let revision = entry.revision, !(1...max(1, latest)).contains(revision) || latest == 0 {
                throw StoreError.rejected("audit entry \(entry.id) names revision \(revision), which is not copied")
            }
        }
        for name in self.ruleNames where !(1...max(1, latest)).contains(name.firstRevision) || latest == 0 {
            throw StoreError.rejected(
                "rule name '\(name.name)' names revision \(name.firstRevision), which is not copied")
        }
    }

    /// Counts for messages: "12 revisions, 30 audit entries, 4 rule names, 1 canary, 0 blue-green states".
    public var counts: String {
        func plural(_ count: Int, _ one: String, _ many: String) -> String {
            "\(count) \(count == 1 ? one : many)"
        }
        return [
            plural(self.revisions.count, "revision", "revisions"),
            plural(self.audit.count, "audit entry", "audit entries"),
            plural(self.ruleNames.count, "rule name", "rule names"),
            plural(self.canaries.count, "canary", "canaries"),
            plural(self.blueGreen.count, "blue-green state", "blue-green states"),
        ].joined(separator: ", ")
    }
}

/// A store whose whole history can be read and written as a `StoreHistory`.
public protocol HistoryStore: Sendable {
    /// The whole history, read in one transaction (a consistent snapshot while others write).
    func exportHistory() async throws -> StoreHistory

    /// Writes `history` into this store, which must hold no revision and no audit entry, in one transaction:
    /// numbers, ids and times are kept. Throws `StoreError.rejected` (nothing written) when the store is not empty or
    /// `history` does not check.
    func importHistory(_ history: StoreHistory) async throws
}
