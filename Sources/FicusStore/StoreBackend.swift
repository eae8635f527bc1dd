import FicusCore
import Foundation

/// Where blue-green state lives beside the revisions: one row per upstream, written by compare-and-swap together with
/// the revision that switches its slot.
///
/// A protocol so that the blue-green wiring and commands do not know which backend they talk to.
public protocol BlueGreenStore: Sendable {
    /// The stored blue-green state of `upstream`, or nil if no blue-green command wrote one.
    ///
    /// Read before deciding; the decision's write names the row's version.
    func blueGreen(upstream: String) async throws -> BlueGreenRow?

    /// Stores `stateJSON` for `upstream` and applies `change` as one revision, in one transaction; the revision, or
    /// nil when `change` is nil or changed nothing (then the audit log gets `author`'s reason without a revision).
    ///
    /// `expectVersion` (0: no row yet) and `expectRevision` make the write a compare-and-swap over both the state and
    /// the configuration the decision was made on; a lost race throws `BlueGreenConflict`.
    @discardableResult
    func writeBlueGreen(
        upstream: String,
        stateJSON: Data,
        expectVersion: Int,
        expectRevision: Int,
        author: ChangeAuthor,
        change: (@Sendable (inout FicusCore.Configuration) throws -> Void)?
    ) async throws -> StoredRevision?
}

/// A whole store: revisions, rollouts, blue-green state and telemetry, whichever backend holds them.
///
/// What `StoreFactory.open` returns, so that the CLI and the runtime never name a backend (docs/FLEET.md).
public protocol StoreBackend: ConfigurationStore, RolloutStore, ShadowStore, BlueGreenStore, HistoryStore {
    /// The store as it may be printed and logged: a file path, or a PostgreSQL URL without its password.
    var location: String { get }

    /// Whether shadow records and metric windows can be stored (both backends do); a backend that refused them would
    /// say false, so that a proxy does not compare or drive canaries only to have every write refused.
    var storesTelemetry: Bool { get }

    /// How revision `number` is stored (checkpoint or delta, its bytes) and the object versions the store holds.
    func revisionStorage(_ number: Int) async throws -> RevisionStorage

    /// Closes the store's connections; the store must not be used afterwards.
    ///
    /// An SQLite store closes with its last reference; a PostgreSQL store closes its sockets here.
    func close() async
}

extension SQLiteConfigurationStore: BlueGreenStore, StoreBackend {
    public var location: String { self.path }

    public var storesTelemetry: Bool { true }

    public func close() async {}
}
