import FicusCore
import Foundation
import GRDB
import Testing

@testable import FicusStore

/// Revisions stored as content-addressed object versions with checkpoints and deltas (docs/FLEET.md, "How revisions
/// are stored"): the pure layout logic, then both backends.
@Suite("Revisions as object versions")
struct RevisionObjectsTests {
    typealias Key = ConfigurationObject.Key

    static func route(_ name: String) -> Key { Key(kind: .route, name: name) }
    static func upstream(_ name: String) -> Key { Key(kind: .upstream, name: name) }

    // MARK: - Layout (pure)

    @Test("the first revision is a checkpoint holding the whole list")
    func firstRevisionIsACheckpoint() {
        let layout = RevisionLayout.plan(
            number: 1,
            target: [(1, Key(kind: .settings, name: "")), (2, Self.route("a"))],
            base: nil,
            baseKeys: [:]
        )
        #expect(layout == RevisionLayout(checkpoint: 1, objects: [1, 2]))
        #expect(layout.isCheckpoint(of: 1))
        #expect(layout.resolve(base: layout.objects) == [1, 2])
    }

    @Test("one changed route among many is one replacement against the checkpoint, in place")
    func oneChangeIsOneReplacement() throws {
        let base = Array(1...200)
        var target = base.map { ($0, Self.route("r\($0)")) }
        target[99] = (500, Self.route("r100"))
        let keys = Dictionary(uniqueKeysWithValues: base.map { ($0, Self.route("r\($0)")) })
        let layout = RevisionLayout.plan(number: 7, target: target, base: (3, base), baseKeys: keys)
        #expect(layout == RevisionLayout(checkpoint: 3, replaced: [[100, 500]]))
        #expect(layout.resolve(base: base) == target.map(\.0))
        // The layout column round-trips, and stays a few bytes however long the list.
        let decoded = try RevisionLayout(checkpoint: 3, json: layout.json)
        #expect(decoded == layout)
        #expect(layout.json.utf8.count < 40, "\(layout.json)")
    }

    @Test("removals and additions give each kind's order; an addition lands at the end of its kind")
    func removalsAndAdditions() {
        let base = [1, 2, 3, 4]
        let keys: [Int: Key] = [1: Self.upstream("u1"), 2: Self.upstream("u2"), 3: Self.route("a"), 4: Self.route("b")]
        // u2 removed, a new upstream u3 (appended after the routes in the flat list), route c added after b.
        let target: [(id: Int, key: Key)] = [(1, Self.upstream("u1")), (9, Self.upstream("u3")), (3, Self.route("a")),
            (4, Self.route("b")), (10, Self.route("c"))]
        let layout = RevisionLayout.plan(number: 2, target: target, base: (1, base), baseKeys: keys)
        #expect(layout == RevisionLayout(checkpoint: 1, removed: [2], added: [9, 10]))
        #expect(layout.resolve(base: base) == [1, 3, 4, 9, 10])
    }

    @Test("a reordering that replacements and appends cannot say becomes a checkpoint")
    func reorderingIsACheckpoint() {
        let base = [1, 2, 3]
        let keys: [Int: Key] = [1: Self.route("a"), 2: Self.route("b"), 3: Self.route("c")]
        let target: [(id: Int, key: Key)] = [(3, Self.route("c")), (1, Self.route("a")), (2, Self.route("b"))]
        let layout = RevisionLayout.plan(number: 5, target: target, base: (1, base), baseKeys: keys)
        #expect(layout == RevisionLayout(checkpoint: 5, objects: [3, 1, 2]))
    }

    @Test("changes past a quarter of the list (at least 64) start a new checkpoint")
    func driftStartsACheckpoint() {
        let base = Array(1...400)
        let keys = Dictionary(uniqueKeysWithValues: base.map { ($0, Self.route("r\($0)")) })
        func changing(_ count: Int) -> RevisionLayout {
            let target = base.map { id in (id <= count ? id + 1000 : id, Self.route("r\(id)")) }
            return RevisionLayout.plan(number: 9, target: target, base: (2, base), baseKeys: keys)
        }
        #expect(changing(100).checkpoint == 2)
        #expect(changing(100).deltaCount == 100)
        #expect(changing(101).checkpoint == 9)
    }

    @Test("a configuration splits into objects and comes back equal, in kind order")
    func objectsRoundTrip() throws {
        var configuration = StoreFixtures.configuration()
        configuration.flags = [Flag(name: "f", enabled: true)]
        configuration.killed = true
        let objects = configuration.objects
        #expect(objects.first?.key == Key(kind: .settings, name: ""))
        #expect(FicusCore.Configuration(objects: objects) == configuration)
        let read = try objects.map { object in
            try ConfigurationObject.decode(kind: object.key.kind, body: try object.encoded())
        }
        #expect(read == objects)
        // The address covers kind and content: equal content, equal address; any change, another.
        let body = try objects[1].encoded()
        #expect(ConfigurationObject.digest(kind: .upstream, body: body)
            == ConfigurationObject.digest(kind: .upstream, body: body))
        #expect(ConfigurationObject.digest(kind: .upstream, body: body)
            != ConfigurationObject.digest(kind: .route, body: body))
    }

    @Test("the object cache keeps one configuration's versions and four checkpoints")
    func cacheIsBounded() throws {
        let cache = ObjectCache()
        let objects = (1...400).map { StoredObject(id: $0, object: .flag(Flag(name: "f\($0)", enabled: true))) }
        #expect(cache.assemble(Array(1...400), adding: objects)?.configuration.flags.count == 400)
        #expect(cache.missing([1, 2, 401]) == [401])
        // A read of 10 ids trims the cache to those 10 (400 > 2 × 10 + 256).
        #expect(cache.assemble(Array(1...10), adding: []) != nil)
        #expect(cache.missing([11]) == [11])
        #expect(cache.assemble([11], adding: []) == nil)
        for number in 1...6 {
            cache.remember(checkpoint: number, ids: [number])
        }
        #expect(cache.checkpoint(1) == nil)
        #expect(cache.checkpoint(6) == [6])
    }

    @Test("versions trimmed from the cache by another read meanwhile are fetched again; absent ones are named")
    func assemblySurvivesATrimmedCache() throws {
        let objects = (1...400).map { StoredObject(id: $0, object: .flag(Flag(name: "f\($0)", enabled: true))) }
        let cache = ObjectCache()
        #expect(cache.assemble(Array(1...400), adding: objects) != nil)
        var assembly = ResolvedRevision.Assembly(Array(1...400), cache: cache)
        #expect(assembly.wanted.isEmpty)
        // Another read of one version trims the cache to it before this one assembles.
        #expect(cache.assemble([1], adding: []) != nil)
        #expect(try assembly.take([]) == nil)
        #expect(assembly.wanted.count == 399)
        let wanted = Set(assembly.wanted)
        let made = try assembly.take(objects.filter { wanted.contains($0.id) })
        #expect(made?.configuration.flags.count == 400)

        var damaged = ResolvedRevision.Assembly([1, 999, 999], cache: cache)
        #expect(damaged.wanted == [999])
        #expect(throws: ResolvedRevision.ObjectMissing.self) { try damaged.take([]) }
    }

    @Test("a list that differs by replacements is assembled from the last one, equal to a fresh assembly")
    func cachePatchesTheLastAssembly() throws {
        let objects: [StoredObject] =
            [StoredObject(id: 1, object: .settings(.init(killed: false, identity: nil)))]
            + (2...5).map { StoredObject(id: $0, object: .flag(Flag(name: "f\($0)", enabled: true))) }
            + (6...9).map { StoredObject(id: $0, object: .route(Route(name: "r\($0)", path: "/r\($0)", legacy: "u"))) }
            + [
                StoredObject(id: 10, object: .route(Route(name: "r7", path: "/r7", legacy: "u", defaultUpstream: "v"))),
                StoredObject(id: 11, object: .settings(.init(killed: true, identity: nil))),
                StoredObject(id: 12, object: .flag(Flag(name: "f3", enabled: false))),
            ]
        let cache = ObjectCache()
        let first = try #require(cache.assemble([1, 6, 2, 7, 3, 8, 4, 9, 5], adding: objects))
        #expect(first.ids == [1, 2, 3, 4, 5, 6, 7, 8, 9])
        for list in [[1, 6, 2, 10, 3, 8, 4, 9, 5], [11, 6, 2, 10, 12, 8, 4, 9, 5], [11, 6, 2, 10, 12, 8, 4, 9, 5],
            [1, 6, 2, 7, 3, 8, 4, 9, 5], [1, 6, 2, 7, 10, 8, 4, 9, 5]]
        {
            let fresh = ObjectCache()
            let expected = try #require(fresh.assemble(list, adding: objects))
            let patched = try #require(cache.assemble(list, adding: []))
            #expect(patched.configuration == expected.configuration, "\(list)")
            #expect(patched.ids == expected.ids, "\(list)")
        }
    }

    // MARK: - Both backends

    /// The fixture configuration with `count` more routes of three rules each.
    static func large(_ count: Int) -> FicusCore.Configuration {
        var configuration = StoreFixtures.configuration()
        for index in 0..<count {
            configuration.routes.append(
                Route(
                    name: "route-\(index)",
                    path: "/r\(index)",
                    legacy: "legacy",
                    rules: (0..<3).map { rule in
                        Rule(
                            name: "route-\(index)-rule-\(rule)",
                            condition: .match(Predicate(.header("X-Beta"), .equals, ["\(rule)"])),
                            upstream: "orders-v2"
                        )
                    }
                )
            )
        }
        return configuration
    }

    static func flip(_ store: any ConfigurationStore, _ route: String, to upstream: String) async throws
        -> StoredRevision
    {
        try await store.commit(StoreFixtures.author("flip"), expectRevision: nil) { configuration in
            guard let index = configuration.routes.firstIndex(where: { $0.name == route }) else {
                throw StoreError.rejected("no route \(route)")
            }
            configuration.routes[index].defaultUpstream = upstream
        }
    }

    @Test("a flip stores one route version and a delta; a rollback stores none", arguments: StoreFixtures.backends)
    func flipWritesOneObject(backend: StoreFixtures.Backend) async throws {
        try await backend.withStore(seeded: false) { store in
            try await Self.checkFlipWritesOneObject(store)
        }
    }

    static func checkFlipWritesOneObject(_ store: any UnsafeSQLStore) async throws {
        let first = try await store.commit(StoreFixtures.author("apply"), expectRevision: 0) { configuration in
            configuration = Self.large(300)
        }
        let initial = try await store.revisionStorage(first.number)
        #expect(initial.checkpoint == first.number)
        #expect(initial.objects == 1 + StoreFixtures.upstreams.count + 302)

        let flipped = try await Self.flip(store, "route-150", to: "orders-v2")
        let storage = try await store.revisionStorage(flipped.number)
        #expect(storage.checkpoint == first.number, "a delta against revision 1")
        #expect(storage.changes == 1)
        #expect(storage.objects == initial.objects + 1)
        #expect(storage.layoutBytes < 40)
        #expect(try await store.revision(flipped.number) == flipped)
        #expect(try await store.latest() == flipped)
        #expect(flipped.configuration.routes.map(\.name) == first.configuration.routes.map(\.name))

        // Flipping it back: the route is the checkpoint's version again, so the delta is empty.
        let again = try await Self.flip(store, "route-150", to: "legacy")
        #expect(try await store.revisionStorage(again.number).changes == 0)
        #expect(try await store.revisionStorage(again.number).checkpoint == first.number)
        #expect(again.configuration == first.configuration)

        // A rollback names versions the store holds: nothing new is stored, and it reads back as revision 2.
        let before = try await store.revisionStorage(again.number).objects
        let rolledBack = try await store.rollback(to: flipped.number, StoreFixtures.author("rollback"))
        #expect(try await store.revisionStorage(rolledBack.number).objects == before)
        #expect(rolledBack.configuration == flipped.configuration)
        #expect(try await store.revision(rolledBack.number).configuration == flipped.configuration)

        // Adding and removing routes and upstreams keeps every revision readable as it was committed.
        let added = try await store.commit(StoreFixtures.author("route.add"), expectRevision: nil) { configuration in
            configuration.routes.remove(at: 10)
            configuration.routes.append(Route(name: "late", path: "/late", legacy: "legacy"))
            configuration.upstreams.append(Upstream(name: "extra", addresses: [Endpoint(host: "127.0.0.1", port: 1)]))
        }
        #expect(try await store.revision(added.number) == added)
        #expect(added.configuration.routes.last?.name == "late")
        #expect(added.configuration.upstreams.last?.name == "extra")
        for number in 1...added.number {
            let revision = try await store.revision(number)
            #expect(revision.number == number)
        }
        #expect(try await store.revision(flipped.number) == flipped)
        #expect(try await store.revision(first.number) == first)
    }

    @Test(
        "a commit decodes only the routes it uses: a damaged route elsewhere does not stop a flip, using it does",
        arguments: StoreFixtures.backends)
    func commitsDecodeOnlyWhatTheyUse(backend: StoreFixtures.Backend) async throws {
        let damaged = "UPDATE config_objects SET body = '{\"name\":\"route-7\",\"path\":7}' "
            + "WHERE name IN ('route-7', 'route-8')"
        switch backend {
        case .sqlite:
            let file = try TemporaryStoreFile()
            let store = try await StoreFixtures.store(file, seeded: false)
            try await Self.checkCommitsDecodeOnlyWhatTheyUse(
                store,
                damage: ["DROP TRIGGER config_objects_are_immutable", damaged],
                fresh: { try SQLiteConfigurationStore(path: file.path) }
            )
        case .postgres:
            try await PostgresTesting.withDatabase { url in
                var opened = [try await PostgresConfigurationStore.open(url, creating: true)]
                do {
                    try await Self.checkCommitsDecodeOnlyWhatTheyUse(
                        opened[0],
                        damage: ["ALTER TABLE config_objects DISABLE TRIGGER config_objects_append_only", damaged],
                        fresh: {
                            let store = try await PostgresConfigurationStore.open(url, creating: false)
                            opened.append(store)
                            return store
                        }
                    )
                } catch {
                    for store in opened { await store.close() }
                    throw error
                }
                for store in opened { await store.close() }
            }
        }
    }

    /// Stored versions of route-7 and route-8 that no longer decode (written behind the store's back): every read
    /// that hands a configuration on fails as before; a flip of another route, by a store that has not read the
    /// damaged ones, goes through without decoding them; a flip of route-7 fails, writes nothing and says where;
    /// replacing route-7 whole and removing route-8, without reading them, repair the store.
    static func checkCommitsDecodeOnlyWhatTheyUse(
        _ store: any UnsafeSQLStore,
        damage: [String],
        fresh: () async throws -> any ConfigurationStore
    ) async throws {
        let first = try await store.commit(StoreFixtures.author("apply"), expectRevision: 0) { configuration in
            configuration = Self.large(20)
        }
        for statement in damage {
            try await store.unsafeExecute(statement)
        }
        await #expect(throws: StoreError.self) { try await fresh().latest() }

        let flipped = try await Self.flip(try await fresh(), "route-3", to: "orders-v2")
        #expect(flipped.number == first.number + 1)
        #expect(try await store.revisionStorage(flipped.number).changes == 1)

        let refused = try await fresh()
        do {
            _ = try await Self.flip(refused, "route-7", to: "orders-v2")
            Issue.record("a flip of the damaged route was committed")
        } catch StoreError.unreadable(_, let detail) {
            #expect(detail.contains("revision \(flipped.number) cannot be decoded"), "\(detail)")
            #expect(detail.contains("route 'route-7'"), "\(detail)")
        }
        #expect(try await refused.history(limit: 1, route: nil).first?.number == flipped.number, "nothing written")

        let repaired = try await fresh().commit(StoreFixtures.author("route.set"), expectRevision: nil) { configuration
            in
            guard let index = configuration.routes.firstIndex(named: "route-7") else {
                throw StoreError.rejected("no route-7")
            }
            configuration.routes[index] = Route(name: "route-7", path: "/r7", legacy: "legacy")
        }
        await #expect(throws: StoreError.self) { try await fresh().latest() }  // route-8 is damaged too
        let removed = try await fresh().commit(StoreFixtures.author("route.rm"), expectRevision: nil) { configuration
            in
            guard let index = configuration.routes.firstIndex(named: "route-8") else {
                throw StoreError.rejected("no route-8")
            }
            configuration.routes.removeRoute(at: index)
        }
        #expect(removed.number == repaired.number + 1)
        let read = try await fresh().latest()
        #expect(read?.number == removed.number)
        #expect(read?.configuration.routes.first { $0.name == "route-7" }?.rules.isEmpty == true)
        #expect(read?.configuration.routes.firstIndex(named: "route-8") == nil)
        #expect(read?.configuration.routes.count == first.configuration.routes.count - 1)
    }

    @Test("many changes to many routes roll over to new checkpoints and every revision reads back",
        arguments: StoreFixtures.backends)
    func checkpointsRollOver(backend: StoreFixtures.Backend) async throws {
        try await backend.withStore(seeded: false) { store in
            try await Self.checkCheckpointsRollOver(store)
        }
    }

    static func checkCheckpointsRollOver(_ store: any UnsafeSQLStore) async throws {
        var committed: [StoredRevision] = []
        committed.append(
            try await store.commit(StoreFixtures.author("apply"), expectRevision: 0) { configuration in
                configuration = Self.large(100)
            })
        // Each commit changes 25 other routes; a delta may hold 64 changes, so the changes since the checkpoint
        // outgrow it at every third commit.
        for step in 1...9 {
            committed.append(
                try await store.commit(StoreFixtures.author("apply"), expectRevision: nil) { configuration in
                    for index in 0..<25 {
                        let route = 2 + (step * 25 + index) % 100
                        configuration.routes[route].timeouts = RouteTimeouts(connectMilliseconds: step * 1000)
                    }
                })
        }
        var checkpoints: Set<Int> = []
        for revision in committed {
            #expect(try await store.revision(revision.number) == revision)
            checkpoints.insert(try await store.revisionStorage(revision.number).checkpoint)
        }
        #expect(checkpoints.count >= 3, "\(checkpoints.sorted())")
        #expect(checkpoints.count < committed.count, "deltas between checkpoints")
    }

    @Test("an SQLite store written before object versions is converted revision by revision on opening")
    func sqliteStoreIsMigrated() async throws {
        let file = try TemporaryStoreFile()
        var revisions = [Self.large(30)]
        var next = revisions[0]
        next.routes[5].defaultUpstream = "orders-v2"
        revisions.append(next)
        next.routes.removeFirst()
        next.killed = true
        revisions.append(next)
        revisions.append(revisions[0])
        try SQLiteConfigurationStore.createStore(path: file.path, migratedUpTo: "v6-telemetry-file", revisions: revisions)
        let store = try SQLiteConfigurationStore(path: file.path)
        #expect(try await store.appliedMigrations() == StoreFixtures.migrations)
        for (index, configuration) in revisions.enumerated() {
            #expect(try await store.revision(index + 1).configuration == configuration)
        }
        // Revision 2 became a delta of its checkpoint; revision 4 names revision 1's versions.
        #expect(try await store.revisionStorage(2).checkpoint == 1)
        #expect(try await store.revisionStorage(2).changes == 1)
        #expect(try await store.revisionStorage(4).objects == 1 + StoreFixtures.upstreams.count + 32 + 2)
        // Still immutable after the table was rebuilt.
        await #expect(throws: StoreError.self) { try await store.unsafeExecute("UPDATE revisions SET reason = 'x'") }
        await #expect(throws: StoreError.self) { try await store.unsafeExecute("DELETE FROM config_objects") }
        let flipped = try await Self.flip(store, "route-3", to: "orders-v2")
        #expect(flipped.number == 5)
    }

    @Test(
        "a PostgreSQL store of schema 2 is converted to object versions in one transaction",
        .enabled(if: PostgresTesting.enabled, "needs FICUS_TEST_POSTGRES (a PostgreSQL server)")
    )
    func postgresStoreIsMigrated() async throws {
        try await PostgresTesting.withDatabase { url in
            try await Self.checkPostgresMigration(url)
        }
    }

    static func checkPostgresMigration(_ url: PostgresStoreURL) async throws {
        var revisions = [Self.large(30)]
        var next = revisions[0]
        next.routes[7].defaultUpstream = "orders-v2"
        revisions.append(next)
        revisions.append(revisions[0])
        let old = try PostgresConfigurationStore(
            url: url, logger: .init(label: "ficus.test"), connectTimeout: .seconds(5), safetyNet: .seconds(1))
        try await old.migrate(creating: true, upTo: 2)
        for (index, configuration) in revisions.enumerated() {
            let snapshot = try SQLiteConfigurationStore.encodeSnapshot(configuration)
            try await old.unsafeExecute(
                """
                INSERT INTO revisions (number, author, reason, created_at, summary, routes_changed, snapshot)
                VALUES (\(index + 1), 'tester', 'old schema', now(), 'old', '{}', '\(snapshot.replacingOccurrences(of: "'", with: "''"))')
                """
            )
        }
        await old.close()
        let store = try await PostgresConfigurationStore.open(url, creating: false)
        do {
            #expect(try await store.schemaVersion() == 3)
            for (index, configuration) in revisions.enumerated() {
                #expect(try await store.revision(index + 1).configuration == configuration)
            }
            #expect(try await store.revisionStorage(2).checkpoint == 1)
            #expect(try await store.revisionStorage(2).changes == 1)
            await #expect(throws: StoreError.self) {
                try await store.unsafeExecute("UPDATE revisions SET reason = 'x'")
            }
            await #expect(throws: StoreError.self) {
                try await store.unsafeExecute("DELETE FROM config_objects")
            }
            let flipped = try await Self.flip(store, "route-3", to: "orders-v2")
            #expect(flipped.number == 4)
            await store.close()
        } catch {
            await store.close()
            throw error
        }
    }
}
