import FicusCore
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import PostgresNIO

/// The configuration store in one PostgreSQL database, shared by every proxy and CLI of a fleet (docs/FLEET.md).
///
/// The tables mirror the SQLite store's (a revision is a JSON snapshot of the whole configuration, see
/// `SQLiteConfigurationStore`), with what one machine never needed: commits from several hosts are serialised by a
/// transaction-scoped advisory lock, so revision numbers stay gapless; triggers refuse any UPDATE, DELETE or TRUNCATE
/// of revisions, the audit log and rule names; every commit sends `NOTIFY ficus_revisions` in its transaction, so
/// proxies hear of it at once (`watch`); and times come from the database's clock, never a host's.
public final class PostgresConfigurationStore: Sendable {
    /// The database, with its password (never printed: `location` is the redacted form).
    public let url: PostgresStoreURL

    /// The connections of this instance.
    let pool: PostgresConnectionPool

    /// Where PostgresNIO's own events go (nowhere unless a caller passes a logger).
    let logger: Logger

    /// The lease rows last read, by route, with the database's value of `expires_at` behind each.
    ///
    /// Leases are judged on the database's clock (docs/FLEET.md): a row is handed to the controller with its expiry
    /// moved onto this host's clock, and a compare-and-swap of that row compares the database's own value.
    let leaseReads = NIOLockedValueBox<[String: (shown: CanaryLeaseRow, stored: Date)]>([:])

    /// The channel commits notify and proxies listen on; the payload is the revision number, or `rolloutPayload`.
    static let channel = "ficus_revisions"

    /// The payload of a notification sent by a canary, blue-green or lease write that made no revision, so that canary
    /// controllers wake at once (`StoreEvent.changed`) without polling.
    static let rolloutPayload = "rollout"

    /// The key of the advisory lock that serialises writes (`pg_advisory_xact_lock`): "ficus" in ASCII.
    static let writeLock: Int64 = 0x66_6963_7573

    /// How often a watcher checks the newest revision even without a notification (lost notifications, reconnects).
    ///
    /// One second by default; tests make it long to show that a revision arrived by notification.
    let safetyNet: Duration

    /// Telemetry the database could not take yet, within its bounds, and what was dropped beyond them.
    let telemetryBuffer: TelemetryBuffer

    /// The object versions decoded so far (commands, canary passes and the watcher share them), so that applying a
    /// revision decodes only what it changed.
    let objects = ObjectCache()

    /// The clock telemetry retention counts from; nil (outside tests) for the database's own (`clock_timestamp()`).
    ///
    /// Injected so that tests can age their records without waiting a week, as they do on SQLite.
    let now: (@Sendable () -> Date)?

    init(
        url: PostgresStoreURL,
        logger: Logger,
        connectTimeout: TimeAmount,
        safetyNet: Duration,
        telemetryBuffer: TelemetryBufferLimits = TelemetryBufferLimits(),
        now: (@Sendable () -> Date)? = nil,
        keepConnections: Int = 0
    ) throws {
        self.url = url
        self.logger = logger
        self.safetyNet = safetyNet
        self.telemetryBuffer = TelemetryBuffer(limits: telemetryBuffer)
        self.now = now
        self.pool = PostgresConnectionPool(
            configuration: try Self.connectionConfiguration(url, connectTimeout: connectTimeout),
            location: url.description,
            logger: logger,
            keepIdle: keepConnections
        )
    }

    /// Connects to the database at `url` and checks its schema: `creating` (for `ficus init`) creates or upgrades it,
    /// otherwise a database without a Ficus schema is refused with the command that creates one.
    ///
    /// A schema newer than this binary knows is always refused (`StoreError.unreadable`), before anything is written.
    /// `telemetryBuffer` bounds the telemetry kept in memory while the database cannot take it; `now` replaces the
    /// database's clock for telemetry retention (tests only). `keepConnections` idle connections are kept for the
    /// next operations (`ficus serve`, which closes the store when it stops); 0 closes each after its operation (a
    /// command, which ends without closing).
    public static func open(
        _ url: PostgresStoreURL,
        creating: Bool,
        connectTimeout: TimeAmount = .seconds(5),
        safetyNet: Duration = .seconds(1),
        telemetryBuffer: TelemetryBufferLimits = TelemetryBufferLimits(),
        now: (@Sendable () -> Date)? = nil,
        keepConnections: Int = 0,
        logger: Logger = Logger(label: "ficus.store.postgres", factory: { _ in SwiftLogNoOpLogHandler() })
    ) async throws -> PostgresConfigurationStore {
        let store = try PostgresConfigurationStore(
            url: url,
            logger: logger,
            connectTimeout: connectTimeout,
            safetyNet: safetyNet,
            telemetryBuffer: telemetryBuffer,
            now: now,
            keepConnections: keepConnections
        )
        do {
            try await store.migrate(creating: creating)
        } catch {
            await store.close()
            throw error
        }
        return store
    }

    /// The PostgresNIO settings for `url`: host, port, user, password, database and TLS after `sslmode`.
    ///
    /// `prefer` and `require` encrypt without checking the server's certificate (as libpq does); `verify-full`
    /// checks the chain against the system's roots, or only those of `sslrootcert`, and the host name.
    static func connectionConfiguration(
        _ url: PostgresStoreURL,
        connectTimeout: TimeAmount
    ) throws -> PostgresConnection.Configuration {
        let tls: PostgresConnection.Configuration.TLS
        switch url.sslMode {
        case .disable:
            tls = .disable
        case .prefer, .require:
            var settings = TLSConfiguration.makeClientConfiguration()
            settings.certificateVerification = .none
            let context = try NIOSSLContext(configuration: settings)
            tls = url.sslMode == .prefer ? .prefer(context) : .require(context)
        case .verifyFull:
            var settings = TLSConfiguration.makeClientConfiguration()
            if let root = url.sslRootCert {
                // Only these roots: a private CA is what sslrootcert is for.
                do {
                    settings.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(root))
                } catch {
                    throw StoreLocationError(
                        text: url.description,
                        problem: "sslrootcert '\(root)' cannot be read as PEM certificates (\(error))"
                    )
                }
            }
            tls = .require(try NIOSSLContext(configuration: settings))
        }
        var configuration = PostgresConnection.Configuration(
            host: url.host,
            port: url.port,
            username: url.user,
            password: url.password,
            database: url.database,
            tls: tls
        )
        configuration.options.connectTimeout = connectTimeout
        // No explicit TLS server name: PostgresNIO sends the host as SNI and NIOSSL checks the certificate against it,
        // or, for an IP address (never valid in SNI), against the address connected to.
        return configuration
    }

    /// Runs `body` on a pooled connection and maps PostgreSQL's errors to `StoreError`s; errors of a change closure
    /// and the store's own errors pass unchanged.
    func perform<Value: Sendable>(_ body: (PostgresSession) async throws -> Value) async throws -> Value {
        do {
            return try await self.pool.withConnection { connection in
                try await body(PostgresSession(connection: connection, logger: self.logger))
            }
        } catch let failure as ChangeFailed {
            throw failure.error
        } catch {
            throw Self.storeError(error, location: self.url.description)
        }
    }

    /// Runs `body` in one transaction that holds the fleet's write lock, on a pooled connection.
    ///
    /// The lock (`pg_advisory_xact_lock`) is taken first and released by COMMIT or ROLLBACK, so two writers on
    /// different hosts read the newest revision one after the other and never pick the same number. An error rolls
    /// everything back; a connection lost mid-way is rolled back by the server, so a write is never half-applied.
    func write<Value: Sendable>(_ body: (PostgresSession) async throws -> Value) async throws -> Value {
        try await self.perform { session in
            try await session.execute("BEGIN")
            do {
                try await session.execute("SELECT pg_advisory_xact_lock(\(Self.writeLock))")
                let value = try await body(session)
                try await session.execute("COMMIT")
                return value
            } catch {
                try? await session.execute("ROLLBACK")
                throw error
            }
        }
    }

    /// The `StoreError` for a PostgresNIO error: server errors by their SQLSTATE, anything else (refused, reset,
    /// timed out, closed) as `StoreError.unreachable`.
    ///
    /// PSQLError's description hides the server's words on purpose; the message and SQLSTATE are taken from it here,
    /// and never the connection settings, so no password reaches a message.
    static func storeError(_ error: any Error, location: String) -> any Error {
        switch error {
        case is StoreError, is CancellationError, is ConfigurationInvalid, is CanaryConflict, is BlueGreenConflict:
            return error
        case let error as PSQLError:
            if let state = error.serverInfo?[.sqlState] {
                let message = error.serverInfo?[.message] ?? "error \(state)"
                switch state {
                case "40001", "40P01", "55P03", "57014":
                    return StoreError.busy(detail: message)
                case "57P01", "57P02", "57P03", "08000", "08003", "08006":
                    return StoreError.unreachable(store: location, detail: "the server is shutting down (\(message))")
                case "28000", "28P01":
                    return StoreError.unreachable(store: location, detail: "authentication failed (\(message))")
                case "3D000":
                    return StoreError.unreachable(store: location, detail: message)
                default:
                    return StoreError.unreadable(path: location, detail: "\(message) (SQLSTATE \(state))")
                }
            }
            if error.code == .authMechanismRequiresPassword {
                return StoreError.unreachable(
                    store: location,
                    detail: "the server asks for a password and none was given: put it in the URL, PGPASSWORD or a "
                        + "password file (passfile=, PGPASSFILE, ~/.pgpass)"
                )
            }
            if let underlying = error.underlying, underlying is NIOSSLError || underlying is NIOSSLExtraError {
                return StoreError.unreachable(
                    store: location,
                    detail: "TLS with the server failed (\(underlying)); with sslmode=verify-full its certificate must "
                        + "come from a trusted CA (sslrootcert=PATH names a private one) and name the URL's host"
                )
            }
            let cause = error.underlying.map { "\($0)" } ?? "\(error.code)"
            return StoreError.unreachable(store: location, detail: "\(cause); check that PostgreSQL runs there")
        case let error as PostgresDecodingError:
            return StoreError.unreadable(path: location, detail: "a stored value cannot be decoded (\(error.code))")
        case let error as DecodingError:
            return StoreError.unreadable(path: location, detail: "a stored value cannot be decoded (\(error))")
        case is ChannelError, is IOError:
            return StoreError.unreachable(store: location, detail: "\(error); check that PostgreSQL runs there")
        default:
            return error
        }
    }

    /// Closes every pooled connection.
    public func close() async {
        await self.pool.close()
    }

    /// Runs SQL outside the model's checks, for tests that need a state the API never produces.
    func unsafeExecute(_ sql: String) async throws {
        try await self.perform { session in
            try await session.execute(PostgresQuery(unsafeSQL: sql))
        }
    }
}

/// One connection's queries, with the logger PostgresNIO wants on every call.
struct PostgresSession {
    let connection: PostgresConnection
    let logger: Logger

    /// Runs a statement and drops its rows.
    func execute(_ query: PostgresQuery) async throws {
        _ = try await self.connection.query(query, logger: self.logger).collect()
    }

    /// Runs a query and returns its rows, addressable by column name.
    func rows(_ query: PostgresQuery) async throws -> [PostgresRandomAccessRow] {
        try await self.connection.query(query, logger: self.logger).collect().map { $0.makeRandomAccess() }
    }

    /// The first row of a query, or nil.
    func row(_ query: PostgresQuery) async throws -> PostgresRandomAccessRow? {
        try await self.rows(query).first
    }
}

/// The connections of one store instance: a new one per operation, or one kept idle from an earlier operation.
///
/// PostgresNIO's `PostgresClient` waits for the server when it is down; a CLI command must fail at once instead, and
/// a proxy must keep serving, so this connects on demand (with PostgresNIO's connect timeout) and reports the failure
/// to the caller. A `PostgresConnection` must be closed, and the close awaited, before it is released, which a store
/// dropped at the end of a command cannot promise: with `keepIdle` 0 (commands) every connection is closed when its
/// operation ends. A long-lived process (`ficus serve`: heartbeats, canary passes, a telemetry batch every fraction
/// of a second while shadowing) keeps up to `keepIdle` idle connections and calls `close()` when it stops, so that
/// an operation does not pay a connection setup and PostgreSQL a backend start. A kept connection the server has
/// closed meanwhile (a restart) fails the one operation that finds it, and is dropped; the next one connects anew.
/// The proxy's hot path never touches the store, and its watcher keeps one connection of its own.
final class PostgresConnectionPool: Sendable {
    let configuration: PostgresConnection.Configuration
    let location: String
    let logger: Logger
    /// How many idle connections are kept for later operations.
    let keepIdle: Int
    /// The id of the next connection, for PostgresNIO's logs.
    private let nextID = NIOLockedValueBox(1)
    private let idle = NIOLockedValueBox<(connections: [PostgresConnection], closed: Bool)>(([], false))

    init(configuration: PostgresConnection.Configuration, location: String, logger: Logger, keepIdle: Int = 0) {
        self.configuration = configuration
        self.location = location
        self.logger = logger
        self.keepIdle = keepIdle
    }

    /// Connections opened so far (tests: how many operations reused one).
    var opened: Int { self.nextID.withLockedValue { $0 - 1 } }

    /// A new connection; the caller closes it.
    func connect() async throws -> PostgresConnection {
        let id = self.nextID.withLockedValue { next in
            defer { next += 1 }
            return next
        }
        return try await PostgresConnection.connect(configuration: self.configuration, id: id, logger: self.logger)
    }

    /// Runs `body` on a kept connection or a new one; afterwards keeps the connection (within `keepIdle`) or closes
    /// it. A connection whose operation failed is always closed: its state (a transaction, the server's) is unknown.
    func withConnection<Value: Sendable>(_ body: (PostgresConnection) async throws -> Value) async throws -> Value {
        let connection: PostgresConnection
        if let kept = self.takeIdle() {
            connection = kept
        } else {
            connection = try await self.connect()
        }
        do {
            let value = try await body(connection)
            await self.giveBack(connection)
            return value
        } catch {
            try? await connection.close()
            throw error
        }
    }

    /// The newest kept connection that is still open; closed ones (the server went away) are dropped.
    private func takeIdle() -> PostgresConnection? {
        self.idle.withLockedValue { idle in
            while let connection = idle.connections.popLast() {
                if !connection.isClosed {
                    return connection
                }
            }
            return nil
        }
    }

    private func giveBack(_ connection: PostgresConnection) async {
        let kept = self.idle.withLockedValue { idle -> Bool in
            guard !idle.closed, !connection.isClosed, idle.connections.count < self.keepIdle else {
                return false
            }
            idle.connections.append(connection)
            return true
        }
        if !kept {
            try? await connection.close()
        }
    }

    /// Closes the kept connections; later operations close theirs when they end.
    func close() async {
        let connections = self.idle.withLockedValue { idle -> [PostgresConnection] in
            idle.closed = true
            defer { idle.connections.removeAll() }
            return idle.connections
        }
        for connection in connections {
            try? await connection.close()
        }
    }
}
