import FicusCore
import Foundation
import GRDB

extension SQLiteConfigurationStore {
    /// Migration "v3-rule-names": the table of every rule name ever committed, filled from every existing revision.
    ///
    /// Buckets hash `"<rule name>:<stickiness value>"`, so a name must never come back for another rule; the history
    /// of names is what lets a commit tell a retired name from a new one. The backfill reads the snapshots' JSON with
    /// SQL rather than decoding `Configuration`, so that this shipped migration never changes with the model.
    static func migrateRuleNames(_ db: Database) throws {
        try db.execute(
            sql: """
                CREATE TABLE rule_names (
                    name TEXT PRIMARY KEY,
                    route TEXT NOT NULL,
                    first_revision INTEGER NOT NULL REFERENCES revisions(number)
                ) WITHOUT ROWID;
                CREATE TRIGGER rule_names_are_kept_update BEFORE UPDATE ON rule_names BEGIN
                    SELECT RAISE(ABORT, 'rule names are never reused: the record of their first use is kept');
                END;
                CREATE TRIGGER rule_names_are_kept_delete BEFORE DELETE ON rule_names BEGIN
                    SELECT RAISE(ABORT, 'rule names are never reused: the record of their first use is kept');
                END;
                INSERT OR IGNORE INTO rule_names (name, route, first_revision)
                SELECT json_extract(rule.value, '$.name'), json_extract(route.value, '$.name'), MIN(revisions.number)
                FROM revisions, json_each(revisions.snapshot, '$.routes') AS route,
                    json_each(route.value, '$.rules') AS rule
                WHERE json_type(rule.value, '$.name') = 'text' AND json_type(route.value, '$.name') = 'text'
                GROUP BY json_extract(rule.value, '$.name');
                """
        )
    }

    public func ruleNamesEverUsed() async throws -> Set<String> {
        try await self.perform {
            try await self.pool.read { db in
                Set(try String.fetchAll(db, sql: "SELECT name FROM rule_names"))
            }
        }
    }

    /// Records the rule names of `configuration`, committed as revision `revision`, keeping earlier first uses.
    ///
    /// Runs inside the transaction that inserts the revision, so the record of names never lags behind history.
    static func recordRuleNames(_ db: Database, routes: [Route], revision: Int) throws {
        for route in routes {
            for rule in route.rules {
                try db.execute(
                    sql: "INSERT OR IGNORE INTO rule_names (name, route, first_revision) VALUES (?, ?, ?)",
                    arguments: [rule.name, route.name, revision]
                )
            }
        }
    }

    /// Throws `StoreError.ruleNameRetired` for the first rule of `configuration` whose name an earlier revision used
    /// and `previous` does not have, unless it is restored exactly as revision `restoredFrom` had it.
    ///
    /// Runs in the commit's transaction before anything is written. A name still in `previous` is not retired: moving
    /// or editing a rule keeps its name (and its users' buckets), which is the point of stable names.
    func refuseRetiredRuleNames(
        _ db: Database,
        _ cache: ObjectCache,
        _ configuration: FicusCore.Configuration,
        previous: FicusCore.Configuration,
        restoredFrom: Int?
    ) throws {
        var restorable: [String: Rule]?
        for rule in configuration.rulesWithNewNames(since: previous) {
            let row = try Row.fetchOne(
                db,
                sql: "SELECT route, first_revision FROM rule_names WHERE name = ?",
                arguments: [rule.name]
            )
            guard let row else {
                continue
            }
            if let restoredFrom {
                if restorable == nil {
                    guard let source = try Self.fetchRevision(db, number: restoredFrom, path: self.path, cache: cache)
                    else {
                        throw StoreError.noSuchRevision(restoredFrom)
                    }
                    let rules = source.configuration.routes.flatMap(\.rules)
                    restorable = Dictionary(rules.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
                }
                if restorable?[rule.name] == rule {
                    continue
                }
            }
            throw StoreError.ruleNameRetired(name: rule.name, route: row["route"], revision: row["first_revision"])
        }
    }

    /// Creates a store file at `path` with only the migrations up to `last`, holding `revisions` as revisions 1, 2, ...
    ///
    /// For tests of later migrations: it writes the file as an older Ficus would have, without the later tables, so
    /// opening it with `init(path:)` runs the later migrations on real history.
    static func createStore(
        path: String,
        migratedUpTo last: String,
        revisions: [FicusCore.Configuration]
    ) throws {
        let queue = try DatabaseQueue(path: path)
        defer {
            try? queue.close()
        }
        try Self.migrator.migrate(queue, upTo: last)
        try queue.write { db in
            for (index, configuration) in revisions.enumerated() {
                try db.execute(
                    sql: """
                        INSERT INTO revisions (number, author, reason, created_at, summary, snapshot)
                        VALUES (?, 'tester', 'old schema', ?, 'old', ?)
                        """,
                    arguments: [index + 1, Date(), try Self.encodeSnapshot(configuration)]
                )
            }
        }
    }
}
