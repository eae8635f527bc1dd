import Foundation
import Logging

/// Opens the store a `StoreLocation` names, behind the protocols every caller uses.
///
/// The one place that knows which backends exist: the CLI and `ficus serve` hand it the text of `--store`, and what
/// comes back is a `StoreBackend` whichever it is (docs/FLEET.md).
public enum StoreFactory {
    /// Opens `location`. `creating` (for `ficus init`, `serve --init`) lets it create the store: the SQLite file or
    /// the PostgreSQL schema; without it an SQLite path must exist and a PostgreSQL database must hold the schema.
    ///
    /// An SQLite store that does not exist throws `StoreError.unreadable` here; the CLI checks first to say which
    /// command creates it. A PostgreSQL server that cannot be reached throws `StoreError.unreachable` at once.
    /// `keepConnections` idle PostgreSQL connections are kept between operations, for a process that closes the store
    /// when it stops (`ficus serve`); commands keep none.
    public static func open(
        _ location: StoreLocation,
        creating: Bool,
        telemetry: TelemetryLimits = TelemetryLimits(),
        keepConnections: Int = 0,
        logger: Logger = Logger(label: "ficus.store", factory: { _ in SwiftLogNoOpLogHandler() })
    ) async throws -> any StoreBackend {
        switch location {
        case .sqlite(let path):
            if !creating, !FileManager.default.fileExists(atPath: path) {
                throw StoreError.unreadable(path: path, detail: "there is no file there: run 'ficus init' first")
            }
            return try SQLiteConfigurationStore(path: path, telemetry: telemetry)
        case .postgres(let url):
            return try await PostgresConfigurationStore.open(
                url, creating: creating, keepConnections: keepConnections, logger: logger)
        }
    }
}
