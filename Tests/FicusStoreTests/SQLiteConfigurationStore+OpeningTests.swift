import FicusCore
import Foundation
import Testing

@testable import FicusStore

@Suite("Opening a store")
struct SQLiteConfigurationStoreOpeningTests {
    @Test("a missing file is created, migrated and empty")
    func createsAndMigratesMissingFile() async throws {
        let file = try TemporaryStoreFile()
        let store = try SQLiteConfigurationStore(path: file.path)
        #expect(FileManager.default.fileExists(atPath: file.path))
        #expect(try await store.appliedMigrations() == StoreFixtures.migrations)
        #expect(try await store.latest() == nil)
        #expect(try await store.history(limit: nil, route: nil).isEmpty)
        #expect(try await store.audit(limit: nil).isEmpty)
    }

    @Test("an empty existing file is migrated")
    func migratesZeroByteFile() async throws {
        let file = try TemporaryStoreFile()
        #expect(FileManager.default.createFile(atPath: file.path, contents: Data()))
        let store = try SQLiteConfigurationStore(path: file.path)
        #expect(try await store.appliedMigrations() == StoreFixtures.migrations)
    }

    @Test("re-opening an existing store keeps its revisions and continues the numbering")
    func reopensExistingStore() async throws {
        let file = try TemporaryStoreFile()
        do {
            let store = try await StoreFixtures.store(file)
            #expect(try await store.latest()?.number == 1)
        }
        let reopened = try SQLiteConfigurationStore(path: file.path)
        #expect(try await reopened.appliedMigrations() == StoreFixtures.migrations)
        #expect(try await reopened.latest()?.configuration == StoreFixtures.configuration())
        let second = try await reopened.commit(StoreFixtures.author(), expectRevision: 1) { configuration in
            configuration.flags.append(Flag(name: "beta"))
        }
        #expect(second.number == 2)
    }

    @Test("two instances opening a new file at once both succeed")
    func concurrentFirstOpen() async throws {
        for _ in 0..<5 {
            let file = try TemporaryStoreFile()
            let path = file.path
            let first = Task.detached { try SQLiteConfigurationStore(path: path) }
            let second = Task.detached { try SQLiteConfigurationStore(path: path) }
            let stores = [try await first.value, try await second.value]
            for store in stores {
                #expect(try await store.appliedMigrations() == StoreFixtures.migrations)
            }
        }
    }

    @Test("garbage over the header is reported as not a database and the file is left as it was")
    func refusesGarbageHeader() async throws {
        let file = try TemporaryStoreFile()
        do {
            _ = try await StoreFixtures.store(file)
        }
        try file.overwriteHeader()
        let before = try file.contents()
        #expect(throws: StoreError.unreadable(path: file.path, detail: "file is not a database")) {
            try SQLiteConfigurationStore(path: file.path)
        }
        #expect(try file.contents() == before)
    }

    @Test("a text file is reported as not a database")
    func refusesTextFile() throws {
        let file = try TemporaryStoreFile()
        let text = Data(String(repeating: "routes:\n  - name: orders\n", count: 100).utf8)
        #expect(FileManager.default.createFile(atPath: file.path, contents: text))
        #expect(throws: StoreError.unreadable(path: file.path, detail: "file is not a database")) {
            try SQLiteConfigurationStore(path: file.path)
        }
        #expect(try file.contents() == text)
    }

    @Test("another application's database is refused before anything is written")
    func refusesForeignDatabase() async throws {
        let file = try TemporaryStoreFile()
        do {
            let store = try SQLiteConfigurationStore(path: file.path)
            try await store.unsafeExecute(
                """
                PRAGMA application_id = 0;
                DROP TABLE proxies; DROP TABLE audit; DROP TABLE revisions; DROP TABLE grdb_migrations;
                CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);
                """
            )
        }
        let before = try file.contents()
        let error = #expect(throws: StoreError.self) {
            try SQLiteConfigurationStore(path: file.path)
        }
        #expect(error?.description.contains("not a Ficus store (no revisions table") == true)
        #expect(try file.contents() == before)
    }

    @Test("a database with another application id is refused")
    func refusesForeignApplicationID() async throws {
        let file = try TemporaryStoreFile()
        do {
            let store = try SQLiteConfigurationStore(path: file.path)
            try await store.unsafeExecute("PRAGMA application_id = 42")
        }
        let error = #expect(throws: StoreError.self) {
            try SQLiteConfigurationStore(path: file.path)
        }
        #expect(error?.description.contains("not a Ficus store (it belongs to another application") == true)
    }

    @Test("a store migrated by a newer Ficus is refused, naming the unknown migration")
    func refusesNewerSchema() async throws {
        let file = try TemporaryStoreFile()
        do {
            let store = try await StoreFixtures.store(file)
            try await store.unsafeExecute("INSERT INTO grdb_migrations (identifier) VALUES ('v9-future')")
        }
        let error = #expect(throws: StoreError.self) {
            try SQLiteConfigurationStore(path: file.path)
        }
        #expect(error?.description.contains("written by a newer Ficus") == true)
        #expect(error?.description.contains("v9-future") == true)
    }

    @Test("a path in a missing directory is reported as unreadable")
    func refusesMissingDirectory() throws {
        let file = try TemporaryStoreFile()
        let path = file.directory.appendingPathComponent("missing/ficus.sqlite").path
        let error = #expect(throws: StoreError.self) {
            try SQLiteConfigurationStore(path: path)
        }
        #expect(error?.description.contains("cannot open the file") == true)
    }
}
