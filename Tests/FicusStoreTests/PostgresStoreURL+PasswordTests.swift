import Foundation
import Testing

@testable import FicusStore

/// Where a PostgreSQL store's password comes from when the URL has none (docs/FLEET.md, "Credentials").
@Suite("PostgreSQL passwords")
struct PostgresPasswordTests {
    static let url = "postgres://ficus@db.internal:5433/fleet?sslmode=verify-full"

    /// A password file with `text`, mode `mode`, in a directory of its own that is `HOME`.
    static func home(_ text: String, mode: Int = 0o600) throws -> URL {
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("ficus-home-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
        let file = home.appendingPathComponent(".pgpass")
        try Data(text.utf8).write(to: file)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: file.path)
        return home
    }

    @Test func theURLsPasswordThenPGPASSWORDThenThePasswordFile() throws {
        let home = try Self.home("db.internal:5433:fleet:ficus:from-file\n")
        defer { try? FileManager.default.removeItem(at: home) }
        let environment = ["HOME": home.path, "PGPASSWORD": "from-env"]
        let own = try PostgresStoreURL(parsing: "postgres://ficus:own@db.internal:5433/fleet")
        #expect(try own.resolvingPassword(environment: environment).password == "own")
        let bare = try PostgresStoreURL(parsing: Self.url)
        #expect(try bare.resolvingPassword(environment: environment).password == "from-env")
        #expect(try bare.resolvingPassword(environment: ["HOME": home.path]).password == "from-file")
        #expect(try bare.resolvingPassword(environment: [:]).password == nil)
        // A missing ~/.pgpass is no error: the server says whether it wants a password.
        #expect(try bare.resolvingPassword(environment: ["HOME": "/nonexistent"]).password == nil)
        // Never in what is shown.
        #expect(!(try bare.resolvingPassword(environment: environment).description.contains("from-env")))
    }

    @Test func linesMatchFieldByFieldWithWildcardsAndEscapes() throws {
        let home = try Self.home(
            """
            # comments and blank lines are skipped

            db.internal:5432:fleet:ficus:wrong-port
            db.internal:5433:other:ficus:wrong-database
            *:5433:fleet:someone:wrong-user
            db.internal:*:*:ficus:a\\:b\\\\c:d
            *:*:*:*:catch-all
            """)
        defer { try? FileManager.default.removeItem(at: home) }
        let bare = try PostgresStoreURL(parsing: Self.url)
        #expect(try bare.resolvingPassword(environment: ["HOME": home.path]).password == "a:b\\c:d")
        let other = try PostgresStoreURL(parsing: "postgres://x@elsewhere/db")
        #expect(try other.resolvingPassword(environment: ["HOME": home.path]).password == "catch-all")
    }

    @Test func aBadPasswordFileIsRefusedSayingWhereAndWhat() throws {
        let bare = try PostgresStoreURL(parsing: Self.url)
        let open = try Self.home("*:*:*:*:secret\n", mode: 0o644)
        defer { try? FileManager.default.removeItem(at: open) }
        let path = open.appendingPathComponent(".pgpass").path
        #expect(throws: StoreLocationError(
            text: bare.description, problem: "password file '\(path)': group or others may read it; run 'chmod 0600 \(path)'")
        ) {
            try bare.resolvingPassword(environment: ["HOME": open.path])
        }
        let short = try Self.home("ok:1:db:user:pw\ndb.internal:5433:fleet\n")
        defer { try? FileManager.default.removeItem(at: short) }
        #expect(throws: StoreLocationError(
            text: bare.description,
            problem: "password file '\(short.path)/.pgpass': line 2: expected HOST:PORT:DATABASE:USER:PASSWORD, found 3 fields")
        ) {
            try bare.resolvingPassword(environment: ["HOME": short.path])
        }
        // Named by PGPASSFILE or passfile=: it must exist.
        #expect(throws: StoreLocationError.self) {
            try bare.resolvingPassword(environment: ["PGPASSFILE": "/nonexistent/pass"])
        }
        let named = try PostgresStoreURL(parsing: Self.url + "&passfile=\(short.path)/.pgpass")
        #expect(named.passFile == "\(short.path)/.pgpass")
    }

    @Test func urlParametersAreCheckedByName() throws {
        let url = try PostgresStoreURL(parsing: "postgres://u@h/d?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem")
        #expect(url.sslRootCert == "/etc/ca.pem")
        #expect(url.description == "postgres://u@h:5432/d?sslmode=verify-full&sslrootcert=/etc/ca.pem")
        #expect(throws: StoreLocationError.self) { try PostgresStoreURL(parsing: "postgres://u@h/d?sslrootcert=/ca.pem") }
        #expect(throws: StoreLocationError.self) {
            try PostgresStoreURL(parsing: "postgres://u@h/d?sslmode=disable&sslmode=require")
        }
        #expect(throws: StoreLocationError.self) { try PostgresStoreURL(parsing: "postgres://u@h/d?passfile=") }
    }
}
