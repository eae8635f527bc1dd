import Foundation
import Testing

extension CLITests {
    /// `ficus store copy`: a store's whole history moves to a new store, and reads the same there.
    @Suite struct StoreCopy {
        /// What commands show of a store's history: the revisions list, and every revision exported.
        static func views(_ sandbox: Sandbox, _ store: String) throws -> [String] {
            let history = try sandbox.ficus(["history", "--json"], store: store)
            #expect(history.status == 0, "\(history)")
            var views = [history.stdout]
            let count = (try decodeJSON(history.stdout) as? [[String: Any]] ?? []).count
            for revision in 1...max(1, count) {
                let exported = try sandbox.ficus(["export", "--revision", "\(revision)"], store: store)
                views.append(exported.stdout)
            }
            views.append(try sandbox.ficus(["diff", "1", "\(count)"], store: store).stdout)
            return views
        }

        /// A store with flips, a rule, a rollback and a finished-by-hand canary.
        static func seeded() throws -> Sandbox {
            let sandbox = try Sandbox().seeded()
            try sandbox.ok("flip", "orders", "--to", "orders-v2", "--reason", "first cut")
            try sandbox.ok("rule", "add", "orders", "--to", "legacy", "--segment", "beta")
            try sandbox.ok("rollback", "--to", "5")
            try sandbox.ok("flag", "on", "dark-mode")
            return sandbox
        }

        @Test func sqliteToSqliteKeepsEveryRevisionAndRefusesWhatWouldLoseOne() throws {
            let sandbox = try Self.seeded()
            let copy = sandbox.directory.appendingPathComponent("copy.sqlite").path
            let result = try sandbox.bare(["store", "copy", "--from", sandbox.store, "--to", copy])
            #expect(result.status == 0, "\(result)")
            #expect(result.stderr.contains("copied 8 revisions"), "\(result)")
            #expect(result.stdout == "revision 8\n")
            #expect(try Self.views(sandbox, copy) == (try Self.views(sandbox, sandbox.store)))
            // The copy goes on from revision 9.
            #expect(try sandbox.ficus(["flag", "on", "after"], store: copy).revision == 9)

            // Into a store that holds revisions: refused, nothing written.
            let again = try sandbox.bare(["store", "copy", "--from", sandbox.store, "--to", copy])
            #expect(again.status == 1, "\(again)")
            #expect(again.stderr.contains("is not empty (9 revisions"), "\(again)")
            #expect(try sandbox.ficus(["history", "--json"], store: copy).stdout.contains("\"revision\" : 9"))
            // The same store twice, a source that does not exist, an empty source.
            let same = try sandbox.bare(["store", "copy", "--from", sandbox.store, "--to", "sqlite:" + sandbox.store])
            #expect(same.status == 2, "\(same)")
            let missing = try sandbox.bare(["store", "copy", "--from", copy + ".none", "--to", copy + ".new"])
            #expect(missing.status == 1, "\(missing)")
            #expect(!FileManager.default.fileExists(atPath: copy + ".new"))
            try sandbox.ficus(["init"], store: copy + ".empty")
            let empty = try sandbox.bare(["store", "copy", "--from", copy + ".empty", "--to", copy + ".new"])
            #expect(empty.status == 1, "\(empty)")
            #expect(empty.stderr.contains("holds no revision"), "\(empty)")
        }
    }
}

extension CLITests.Fleet {
    @Test func storeCopyMovesAnSQLiteHistoryToPostgresAndBack() throws {
        let database = try FleetPostgres.createDatabase()
        defer { FleetPostgres.drop(database) }
        let sandbox = try CLITests.StoreCopy.seeded()
        let toPostgres = try sandbox.bare(["store", "copy", "--from", sandbox.store, "--to", database])
        #expect(toPostgres.status == 0, "\(toPostgres)")
        let original = try CLITests.StoreCopy.views(sandbox, sandbox.store)
        #expect(try CLITests.StoreCopy.views(sandbox, database) == original)
        // ... and back into a new SQLite file: still the same history.
        let back = sandbox.directory.appendingPathComponent("back.sqlite").path
        let toSQLite = try sandbox.bare(["store", "copy", "--from", database, "--to", back])
        #expect(toSQLite.status == 0, "\(toSQLite)")
        #expect(try CLITests.StoreCopy.views(sandbox, back) == original)
        // PostgreSQL goes on from the copied numbers.
        #expect(try sandbox.ficus(["flag", "on", "after"], store: database).revision == 9)
    }
}
