import FicusCore
import FicusStore
import Foundation

extension ConfigurationStore {
    /// The newest revision, or a `StoreError.empty` when there is none.
    ///
    /// Read commands that need a configuration say "run ficus init" instead of printing an empty table.
    func requireLatest() async throws -> StoredRevision {
        guard let latest = try await self.latest() else {
            throw StoreError.empty
        }
        return latest
    }

    /// The newest configuration, or an empty one for a store without revisions.
    ///
    /// Commands that only add objects start from nothing in a fresh store.
    func latestConfiguration() async throws -> (configuration: Configuration, revision: Int) {
        guard let latest = try await self.latest() else {
            return (Configuration(), 0)
        }
        return (latest.configuration, latest.number)
    }

    /// Commits one change as one new revision and prints its number.
    ///
    /// Retries a few times when another writer holds the store: a commit is one transaction that re-reads the newest
    /// configuration, so retrying never loses or doubles a change. A change that leaves everything as it is prints
    /// the current revision and a note instead of failing, so that repeating a command is harmless. `restoredFrom` lets
    /// a partial rollback restore rules under their retired names (see `ConfigurationStore.commit`).
    func commitPrinting(
        _ author: ChangeAuthor,
        expectRevision: Int? = nil,
        allowingRuleNamesFrom restoredFrom: Int? = nil,
        change: @escaping @Sendable (inout Configuration) throws -> Void
    ) async throws {
        let revision = try await self.retryingWhenBusy {
            try await self.commit(
                author,
                expectRevision: expectRevision,
                allowingRuleNamesFrom: restoredFrom,
                change: change
            )
        }
        guard let revision else {
            let current = try await self.latest()?.number ?? 0
            Console.err("nothing to change: the configuration already is as requested (revision \(current))")
            Console.out("revision \(current)")
            return
        }
        Console.out("revision \(revision.number)")
    }

    /// Runs `operation`, retrying while the store reports `busy`; nil when the store reports `noChange`.
    ///
    /// Shared by commits and rollbacks, which are both single transactions and safe to repeat.
    func retryingWhenBusy(
        _ operation: () async throws -> StoredRevision
    ) async throws -> StoredRevision? {
        var attempt = 0
        while true {
            do {
                return try await operation()
            } catch StoreError.noChange {
                return nil
            } catch StoreError.busy(let detail) {
                attempt += 1
                guard attempt < 8 else {
                    throw StoreError.busy(detail: detail)
                }
                try await Task.sleep(for: .milliseconds(25 * attempt + Int.random(in: 0...25)))
            }
        }
    }
}
