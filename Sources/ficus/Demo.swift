import ArgumentParser
import FicusCore
import FicusRules
import FicusReport
import FicusStore
import Foundation
import Logging
import NIOCore
import NIOPosix

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `ficus demo`: a whole strangler-fig migration in about half a minute, on loopback, with nothing to set up.
///
/// A newcomer should see routing, shadowing, diffing, a flip and a rollback work before reading any documentation;
/// the demo runs the same code as `ficus apply`, `ficus serve`, `ficus flip`, `ficus rollback` and `ficus report`
/// against two built-in services, and removes everything it created when it ends.
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run a migration end to end on loopback: shadow, compare, flip, roll back, report.",
        discussion: """
            Starts two built-in services (a legacy monolith and a new service that answers orders a little \
            differently), applies examples/demo.yaml (embedded) to a temporary store, starts the proxy, sends traffic, \
            flips the 'users' route to the new service and rolls it back, and writes an HTML report. Nothing is \
            installed or left behind except the report; everything listens on 127.0.0.1 only.
            """
    )

    @Option(help: ArgumentHelp("Seconds of traffic to send before the flip.", valueName: "seconds"))
    var duration: Double = 30

    @Option(help: ArgumentHelp("Where to write the HTML report.", valueName: "path"))
    var out = "ficus-demo-report.html"

    @ArgumentParser.Flag(help: "Keep the temporary store (and print how to look at it) instead of deleting it.")
    var keep = false

    @ArgumentParser.Flag(name: .customLong("print-config"), help: "Print the demo's rules file and exit.")
    var printConfig = false

    /// The number of steps, for the `[n/8]` prefix.
    static let steps = 8

    func validate() throws {
        guard self.duration >= 1, self.duration <= 600 else {
            throw ArgumentParser.ValidationError("--duration \(self.duration): expected 1 to 600 seconds")
        }
        guard !self.out.isEmpty else {
            throw ArgumentParser.ValidationError("--out: expected a file path")
        }
    }

    func run() async throws {
        if self.printConfig {
            FileHandle.standardOutput.write(Data(DemoRules.yaml.utf8))
            return
        }
        LoggingSystem.bootstrap { label in FicusLogHandler(label: label, format: .text, logLevel: .warning) }
        defer { LogWriter.standardError.flush() }
        try await ErrorReport.run {
            let run = DemoRun(duration: self.duration, out: self.out, keep: self.keep)
            try await run.run()
        }
    }
}

/// One run of the demo: its steps, and what must be cleaned up whichever step fails.
final class DemoRun: @unchecked Sendable {
    let duration: Double
    let out: String
    let keep: Bool
    let logger = Logger(label: "ficus.demo")
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    let directory: URL
    private var services: [DemoService] = []
    private var proxy: DemoProxy?
    private var interrupt: DispatchSourceSignal?

    init(duration: Double, out: String, keep: Bool) {
        self.duration = duration
        self.out = out
        self.keep = keep
        self.directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("ficus-demo-\(UUID().uuidString.prefix(8).lowercased())")
    }

    var storePath: String { self.directory.appendingPathComponent("ficus.sqlite").path }
    var rulesPath: String { self.directory.appendingPathComponent("demo.yaml").path }

    /// Runs every step, then cleans up; on failure, cleans up and rethrows after naming the step.
    func run() async throws {
        self.removeOnInterrupt()
        do {
            try await self.steps()
        } catch {
            await self.cleanUp(quietly: true)
            throw error
        }
    }

    private func steps() async throws {
        Console.out("ficus demo: a strangler-fig migration on 127.0.0.1, from first shadow to report.")

        let (legacy, new) = try await self.step(1, "Starting two built-in services") {
            let legacy = try await DemoService.start(.legacy, group: self.group)
            self.services.append(legacy)
            let new = try await DemoService.start(.new, group: self.group)
            self.services.append(new)
            Console.out("      legacy monolith  http://127.0.0.1:\(legacy.port)  the system being replaced")
            Console.out("      new service      http://127.0.0.1:\(new.port)  upstream orders-v2, replacing it:")
            Console.out("                       GET /orders/{id} has the total as a string, no currency, and 404 for")
            Console.out("                       orders not migrated yet; GET /users/{id} answers exactly like legacy")
            return (legacy, new)
        }

        let store = try await self.step(2, "Creating a temporary store and applying the demo configuration") {
            try await self.applyConfiguration(legacy: legacy, new: new)
        }

        let proxy = try await self.step(3, "Starting the proxy") {
            let proxy = try await DemoProxy.start(store: store, group: self.group, logger: self.logger)
            self.proxy = proxy
            Console.out(
                "      listening on http://127.0.0.1:\(proxy.port), serving revision \(proxy.routing.current.revision)")
            Console.out("      every GET is answered by legacy and shadowed to orders-v2; the answers are compared")
            Console.out("      try it while the demo runs: curl -i http://127.0.0.1:\(proxy.port)/orders/7")
            return proxy
        }
        let traffic = DemoTraffic(client: DemoClient(port: proxy.port, group: self.group))

        try await self.step(4, "Sending traffic for \(Self.seconds(self.duration)): GET /orders/{id} and /users/{id}") {
            let tally = await traffic.run(for: self.duration, progress: DemoProgress())
            try Self.check(tally, expecting: DemoService.Role.legacy.rawValue)
            Console.out("      answered: \(tally.servedBySummary); clients never saw orders-v2's answers")
        }

        let applied = proxy.routing.current.revision
        try await self.step(5, "Flipping route 'users' to orders-v2 (as 'ficus flip users --to orders-v2' does)") {
            let author = ChangeAuthor(author: "ficus demo", reason: "users answers like legacy", action: "flip")
            let revision = try await store.commit(author, expectRevision: nil) { configuration in
                let index = try configuration.routeIndex("users")
                configuration.routes[index].defaultUpstream = "orders-v2"
            }
            try await proxy.waitForRevision(revision.number)
            Console.out("      revision \(revision.number): \(revision.summary)")
            let tally = await traffic.users(count: 20)
            try Self.check(tally, expecting: DemoService.Role.new.rawValue)
            Console.out("      20 × GET /users/{id} now: \(tally.servedBySummary)")
        }

        try await self.step(6, "Rolling back (as 'ficus rollback --to \(applied)' does)") {
            let author = ChangeAuthor(author: "ficus demo", reason: "demo: undo the flip", action: "rollback")
            let revision = try await store.rollback(to: applied, author)
            try await proxy.waitForRevision(revision.number)
            Console.out("      revision \(revision.number): \(revision.summary) (history is never rewritten)")
            let tally = await traffic.users(count: 20)
            try Self.check(tally, expecting: DemoService.Role.legacy.rawValue)
            Console.out("      20 × GET /users/{id} now: \(tally.servedBySummary)")
        }

        try await self.step(7, "Writing the report (as 'ficus report --format html' does)") {
            // The comparer stores what is still queued when the proxy stops, so the report sees every request.
            await proxy.stop()
            self.proxy = nil
            let report = try await ReportBuilder(store: store).build()
            let url = URL(fileURLWithPath: self.out)
            do {
                try HTMLRenderer().render(report).write(to: url, atomically: true, encoding: .utf8)
            } catch {
                throw CLIError.failed("cannot write '\(self.out)': \(error.localizedDescription)")
            }
            let colour = isatty(STDOUT_FILENO) == 1 && ProcessInfo.processInfo.environment["NO_COLOR"] == nil
            Console.out("")
            Console.out(TextRenderer(colour: colour).render(report).trimmingCharacters(in: .newlines))
            Console.out("")
            Console.out("      HTML report: \(url.standardizedFileURL.path)")
            Console.out("      open it in a browser: GET /orders/{id} shows $.total changing type, $.currency")
            Console.out("      missing and the 404s, with sample answers side by side; GET /users/{id} differs")
            Console.out("      only in noise (generatedAt), so it is ready to move")
        }

        try await self.step(8, "Shutting down") {
            await self.cleanUp(quietly: false)
        }
        Console.out("")
        Console.out("Done. Next: the Quick start in README.md, and docs/CLI.md for every command.")
    }

    /// Writes the rules file with the services' ports, then loads, validates and commits it as `ficus apply` does.
    private func applyConfiguration(legacy: DemoService, new: DemoService) async throws -> SQLiteConfigurationStore {
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
        let yaml = try DemoRules.yaml(addresses: [
            "legacy": Endpoint(host: "127.0.0.1", port: legacy.port),
            "orders-v2": Endpoint(host: "127.0.0.1", port: new.port),
        ])
        try yaml.write(toFile: self.rulesPath, atomically: true, encoding: .utf8)
        let store = try SQLiteConfigurationStore(path: self.storePath)
        let files = try RulesFiles.load([self.rulesPath])
        let configuration = files.standalone
        try files.validate(configuration)
        try ApplyCommand.refuseRetiredRuleNames(
            configuration, base: Configuration(), everUsed: try await store.ruleNamesEverUsed(), files: files)
        Console.out("      store  \(self.storePath)")
        Console.out("      rules  \(self.rulesPath)  (examples/demo.yaml with the ports filled in)")
        for line in RevisionDiff(from: Configuration(), to: configuration).lines {
            Console.out("        " + line)
        }
        let author = ChangeAuthor(author: "ficus demo", reason: "demo configuration", action: "apply")
        let revision = try await store.commit(author, expectRevision: 0) { current in
            current = configuration
        }
        Console.out("      revision \(revision.number)")
        return store
    }

    /// Prints the step's title, runs it, and names the step on standard error if it fails.
    private func step<Value>(
        _ number: Int,
        _ title: String,
        _ body: () async throws -> Value
    ) async throws -> Value {
        Console.out("")
        Console.out("[\(number)/\(Demo.steps)] \(title)")
        do {
            return try await body()
        } catch {
            Console.err("ficus demo: step \(number) failed: \(title)")
            throw error
        }
    }

    /// Fails when requests went unanswered or another service than `expected` answered.
    private static func check(_ tally: DemoTally, expecting expected: String) throws {
        guard tally.failed == 0 else {
            throw CLIError.failed("\(tally.failed) of \(tally.requests) requests got no answer through the proxy")
        }
        let others = tally.servedBy.filter { $0.key != expected }
        guard others.isEmpty else {
            throw CLIError.failed("expected every answer from the \(expected), got: \(tally.servedBySummary)")
        }
    }

    private static func seconds(_ value: Double) -> String {
        value == value.rounded() ? "\(Int(value)) s" : "\(value) s"
    }

    /// Stops the proxy and the services, and deletes the temporary store unless `--keep` was given.
    private func cleanUp(quietly: Bool) async {
        if let proxy = self.proxy {
            await proxy.stop()
            self.proxy = nil
        }
        for service in self.services {
            await service.stop()
        }
        self.services = []
        try? await self.group.shutdownGracefully()
        self.interrupt?.cancel()
        if self.keep {
            if !quietly {
                Console.out("      kept the store: \(self.storePath)")
                Console.out("      look at it with: ficus history --store \(self.storePath)")
                Console.out("                       ficus report --store \(self.storePath)")
            }
        } else {
            try? FileManager.default.removeItem(at: self.directory)
            if !quietly {
                Console.out("      stopped the proxy and both services; deleted \(self.directory.path)")
            }
        }
    }

    /// Deletes the temporary store when the demo is interrupted (Ctrl-C), then exits as an interrupted process does.
    ///
    /// The demo promises to leave nothing behind but its report, and Ctrl-C during the traffic step is the most
    /// likely way to leave it.
    private func removeOnInterrupt() {
        signal(SIGINT, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        let directory = self.directory
        let keep = self.keep
        source.setEventHandler {
            if !keep {
                try? FileManager.default.removeItem(at: directory)
            }
            let note = keep ? "temporary store kept: \(directory.path)" : "temporary store removed"
            FileHandle.standardError.write(Data("\nficus demo: interrupted; \(note)\n".utf8))
            exit(130)
        }
        source.resume()
        self.interrupt = source
    }
}
