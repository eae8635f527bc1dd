import Foundation
import Testing

/// The outcome of one `ficus` run.
struct FicusResult: Sendable, CustomStringConvertible {
    var status: Int32
    var stdout: String
    var stderr: String

    var description: String {
        "exit \(self.status)\n--- stdout\n\(self.stdout)--- stderr\n\(self.stderr)"
    }

    /// The revision number a mutating command printed (`revision N`).
    var revision: Int? {
        self.stdout.split(separator: "\n").last { $0.hasPrefix("revision ") }.flatMap { Int($0.dropFirst(9)) }
    }
}

/// Runs the `ficus` executable that `swift build --build-tests` put beside the test bundle.
///
/// The tests drive the real binary, as operators and scripts do, so argument parsing, exit codes and output are
/// tested together with the store.
enum FicusProcess {
    /// The built binary: `ficus` in the directory of the test bundle (`.build/<config>/`) or one above it.
    static let binary: URL = {
        var candidates: [URL] = []
        let argument = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var directory = argument.deletingLastPathComponent()
        for _ in 0..<5 {
            candidates.append(directory.appendingPathComponent("ficus"))
            directory = directory.deletingLastPathComponent()
        }
        let bundle = Bundle.main.bundleURL.resolvingSymlinksInPath()
        candidates.append(bundle.deletingLastPathComponent().appendingPathComponent("ficus"))
        candidates.append(bundle.appendingPathComponent("ficus"))
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        candidates.append(repository.appendingPathComponent(".build/debug/ficus"))
        for candidate in candidates where FileManager.default.isExecutableFile(atPath: candidate.path) {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: candidate.path, isDirectory: &isDirectory), !isDirectory.boolValue
            {
                return candidate
            }
        }
        fatalError(
            "the ficus binary was not found; run 'swift build --build-tests' first "
                + "(looked at \(candidates.map(\.path)))"
        )
    }()

    /// The repository root, for rules/ and docs/.
    static let repository: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// Runs `ficus` with `arguments` in `directory` and waits for it.
    ///
    /// The environment is reduced to what the CLI reads, so a developer's FICUS_STORE never leaks into a test.
    static func run(
        _ arguments: [String],
        in directory: URL,
        environment: [String: String] = [:],
        executable: URL? = nil
    ) throws -> FicusResult {
        let process = Process()
        process.executableURL = executable ?? self.binary
        process.arguments = arguments
        process.currentDirectoryURL = directory
        var base = ["USER": "tester", "PATH": "/usr/bin:/bin", "HOME": directory.path]
        base.merge(environment) { _, new in new }
        process.environment = base
        let id = UUID().uuidString
        let outURL = directory.appendingPathComponent(".out-\(id)")
        let errURL = directory.appendingPathComponent(".err-\(id)")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        defer {
            try? FileManager.default.removeItem(at: outURL)
            try? FileManager.default.removeItem(at: errURL)
        }
        let out = try FileHandle(forWritingTo: outURL)
        let err = try FileHandle(forWritingTo: errURL)
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        try out.close()
        try err.close()
        return FicusResult(
            status: process.terminationStatus,
            stdout: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOf: errURL, encoding: .utf8)) ?? ""
        )
    }
}

/// A temporary directory with a store path in it, removed when the test ends.
///
/// One per test, so tests never see each other's revisions.
final class Sandbox: @unchecked Sendable {
    let directory: URL
    let store: String

    init() throws {
        self.directory = FileManager.default.temporaryDirectory.appendingPathComponent("ficus-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
        self.store = self.directory.appendingPathComponent("ficus.sqlite").path
    }

    deinit {
        try? FileManager.default.removeItem(at: self.directory)
    }

    /// Runs `ficus ARGUMENTS --store STORE`.
    @discardableResult
    func ficus(_ arguments: String..., store: String? = nil) throws -> FicusResult {
        try self.ficus(arguments, store: store)
    }

    /// Runs `ficus ARGUMENTS --store STORE`.
    @discardableResult
    func ficus(_ arguments: [String], store: String? = nil) throws -> FicusResult {
        try FicusProcess.run(arguments + ["--store", store ?? self.store], in: self.directory)
    }

    /// Runs `ficus ARGUMENTS` without adding `--store`.
    @discardableResult
    func bare(_ arguments: [String], environment: [String: String] = [:]) throws -> FicusResult {
        try FicusProcess.run(arguments, in: self.directory, environment: environment)
    }

    /// Runs a command that must succeed, recording its output when it does not.
    @discardableResult
    func ok(_ arguments: String..., sourceLocation: SourceLocation = #_sourceLocation) throws -> FicusResult {
        let result = try self.ficus(arguments)
        #expect(
            result.status == 0, "ficus \(arguments.joined(separator: " ")): \(result)", sourceLocation: sourceLocation)
        return result
    }

    /// Writes `text` to `name` in the sandbox and returns its path.
    @discardableResult
    func write(_ name: String, _ text: String) throws -> String {
        let url = self.directory.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    /// A store set up with two upstreams, a route and a segment, at revision 4.
    func seeded() throws -> Sandbox {
        try self.ok("init")
        try self.ok("upstream", "add", "legacy", "127.0.0.1:9001")
        try self.ok("upstream", "add", "orders-v2", "127.0.0.1:9002")
        try self.ok("route", "add", "orders", "--prefix", "/orders", "--to", "legacy")
        try self.ok("segment", "add", "beta", "--header", "X-Beta=1")
        return self
    }

    /// What "the store is unchanged" is checked against.
    ///
    /// A refused command must leave the files exactly as they were: the snapshot is the main file's bytes, the
    /// WAL's bytes (empty when absent), and, as a semantic cross-check independent of the file layout, the output
    /// of `ficus export` and `ficus history --json`. Opening an up-to-date store writes nothing, so no byte of the
    /// file is exempt.
    struct Snapshot: Equatable {
        var database: Data
        var wal: Data
        var export: String
        var history: String
    }

    func snapshot() throws -> Snapshot {
        let database = FileManager.default.contents(atPath: self.store) ?? Data()
        let wal = FileManager.default.contents(atPath: self.store + "-wal") ?? Data()
        let export = try self.ficus("export")
        let history = try self.ficus("history", "--json")
        return Snapshot(database: database, wal: wal, export: export.stdout, history: history.stdout)
    }

    /// Runs a command that must fail with `status` and leave the store exactly as it was.
    ///
    /// `whileServing`: a `ficus serve` on this store is running, and its heartbeats and telemetry change the files
    /// at any moment; then the configuration and its history (what a refused command must not touch) are compared
    /// instead of the files' bytes.
    @discardableResult
    func refused(
        _ arguments: [String],
        status: Int32,
        mentioning text: String? = nil,
        whileServing: Bool = false,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> FicusResult {
        let before = try self.snapshot()
        let result = try self.ficus(arguments)
        let after = try self.snapshot()
        let command = "ficus \(arguments.joined(separator: " "))"
        #expect(result.status == status, "\(command): \(result)", sourceLocation: sourceLocation)
        if whileServing {
            #expect(
                before.export == after.export && before.history == after.history,
                "\(command) changed the configuration", sourceLocation: sourceLocation)
        } else {
            #expect(before == after, "\(command) changed the store", sourceLocation: sourceLocation)
        }
        if let text {
            #expect(
                result.stderr.contains(text), "\(command): stderr lacks '\(text)': \(result)",
                sourceLocation: sourceLocation)
        }
        #expect(
            result.stdout.isEmpty || !result.stdout.contains("revision "), "\(command): \(result)",
            sourceLocation: sourceLocation)
        return result
    }
}

/// Decodes the JSON a `--json` command printed.
func decodeJSON(_ text: String) throws -> Any {
    try JSONSerialization.jsonObject(with: Data(text.utf8))
}

/// The top-level suite: every CLI test starts processes, so all of them run one after the other.
///
/// Two cores are shared with other work; parallel process storms would make timings and the concurrency test
/// meaningless.
@Suite(.serialized)
struct CLITests {}
