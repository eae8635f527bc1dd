import FicusTesting
import Foundation
import Testing

extension CLITests.Fleet {
    /// `sslmode=verify-full` with a private CA, and passwords from `PGPASSWORD` or a password file, against a server
    /// of the test's own that demands TLS-checked names and SCRAM passwords (docs/FLEET.md, "Credentials").
    @Test func verifyFullAndPasswordsFromTheEnvironmentOrAPasswordFile() throws {
        let directory = try TestTLS.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let authority = try TestCertificateAuthority(name: "Ficus PostgreSQL test CA")
        // Named for localhost only: 127.0.0.1 is not a name it holds, which verify-full must notice.
        let server = try authority.issue(commonName: "localhost", dnsNames: ["localhost"], ipAddresses: [])
        let files = try server.write(to: directory, name: "server")
        let rootCA = directory.appendingPathComponent("ca.pem").path
        try Data(authority.certificatePEM.utf8).write(to: URL(fileURLWithPath: rootCA))
        let password = "pw:with\\colon-\(UUID().uuidString.prefix(6))"
        let cluster = directory.appendingPathComponent("cluster").path
        let printed = try FleetPostgres.cluster(
            "start", cluster,
            environment: [
                "FICUS_PG_TLS_CERT": files.certificate, "FICUS_PG_TLS_KEY": files.key, "FICUS_PG_PASSWORD": password,
            ]
        )
        defer { _ = try? FleetPostgres.cluster("stop", cluster) }
        let port = try #require(printed.split(separator: ":").last?.split(separator: "/").first.map(String.init))
        let base = "postgres://postgres@localhost:\(port)/postgres"
        let verified = base + "?sslmode=verify-full&sslrootcert=\(rootCA)"
        let sandbox = try Sandbox()

        func ficus(_ store: String, _ environment: [String: String] = [:], _ arguments: String...) throws -> FicusResult {
            let result = try sandbox.bare(arguments + ["--store", store], environment: environment)
            #expect(!result.stdout.contains(password) && !result.stderr.contains(password), "the password was shown")
            return result
        }

        // PGPASSWORD over a verified TLS connection: the schema is created.
        let initialised = try ficus(verified, ["PGPASSWORD": password], "init")
        #expect(initialised.status == 0, "\(initialised)")
        // No password: the server refuses, and the command says so with the store's exit code.
        let anonymous = try ficus(verified, [:], "history")
        #expect(anonymous.status == 1, "\(anonymous)")
        #expect(anonymous.stderr.contains("the server asks for a password and none was given"), "\(anonymous)")
        // verify-full without the private CA (the system's roots) or for a name the certificate does not hold fails.
        let untrusted = try ficus(base + "?sslmode=verify-full", ["PGPASSWORD": password], "history")
        #expect(untrusted.status == 1, "\(untrusted)")
        #expect(untrusted.stderr.contains("TLS with the server failed"), "\(untrusted)")
        #expect(untrusted.stderr.contains("CERTIFICATE_VERIFY_FAILED"), "\(untrusted)")
        let wrongName = try ficus(
            "postgres://postgres@127.0.0.1:\(port)/postgres?sslmode=verify-full&sslrootcert=\(rootCA)",
            ["PGPASSWORD": password], "history")
        #expect(wrongName.status == 1, "\(wrongName)")
        #expect(wrongName.stderr.contains("TLS with the server failed"), "\(wrongName)")
        #expect(wrongName.stderr.contains("failedToValidateHostname"), "\(wrongName)")
        // require encrypts without checking: it connects.
        #expect(try ficus(base + "?sslmode=require", ["PGPASSWORD": password], "history").status == 0)

        // ~/.pgpass (HOME is the sandbox): refused while others may read it, used once it is 0600.
        let escaped = password.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: ":", with: "\\:")
        let pgpass = try sandbox.write(".pgpass", "# host:port:db:user:password\nother:1:*:*:nope\nlocalhost:\(port):*:postgres:\(escaped)\n")
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: pgpass)
        let open = try ficus(verified, [:], "history")
        #expect(open.status == 2, "\(open)")
        #expect(open.stderr.contains("password file '\(pgpass)': group or others may read it"), "\(open)")
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: pgpass)
        let fromFile = try ficus(verified, [:], "flag", "on", "beta")
        #expect(fromFile.status == 0, "\(fromFile)")
        // passfile= names another file, which must exist.
        let named = try sandbox.write("secrets/pass", "*:*:*:postgres:\(escaped)\n")
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: named)
        try FileManager.default.removeItem(atPath: pgpass)
        #expect(try ficus(verified + "&passfile=\(named)", [:], "history").status == 0)
        let missing = try ficus(verified + "&passfile=\(named).gone", [:], "history")
        #expect(missing.status == 2, "\(missing)")
        #expect(missing.stderr.contains("password file '\(named).gone': does not exist"), "\(missing)")
    }
}
