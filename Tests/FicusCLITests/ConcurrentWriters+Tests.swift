import Foundation
import Testing

extension CLITests {
    /// Two `ficus` processes writing at the same time never lose a change.
    @Suite struct ConcurrentWriters {
        @Test func twoWritersInParallelKeepEveryChange() throws {
            let sandbox = try Sandbox().seeded()
            let perWriter = 15
            let failures = Failures()
            DispatchQueue.concurrentPerform(iterations: 2) { writer in
                for index in 0..<perWriter {
                    // Alternate kinds of change so both writers rewrite the same snapshot, not disjoint rows.
                    let arguments: [String] =
                        index.isMultiple(of: 3)
                        ? ["upstream", "add", "w\(writer)-\(index)", "127.0.0.1:\(10000 + writer * 100 + index)"]
                        : ["flag", "on", "w\(writer)-\(index)"]
                    do {
                        let result = try sandbox.ficus(arguments)
                        if result.status != 0 {
                            failures.append("\(arguments): \(result)")
                        }
                    } catch {
                        failures.append("\(arguments): \(error)")
                    }
                }
            }
            #expect(failures.all.isEmpty, "\(failures.all)")
            let flags = try decodeJSON(try sandbox.ok("flag", "list", "--json").stdout) as? [[String: Any]] ?? []
            let upstreams =
                try decodeJSON(try sandbox.ok("upstream", "list", "--json").stdout) as? [[String: Any]] ?? []
            let names = Set((flags + upstreams).compactMap { $0["name"] as? String })
            for writer in 0..<2 {
                for index in 0..<perWriter {
                    #expect(names.contains("w\(writer)-\(index)"), "lost w\(writer)-\(index)")
                }
            }
            let history = try decodeJSON(try sandbox.ok("history", "--json").stdout) as? [[String: Any]] ?? []
            #expect(history.count == 4 + 2 * perWriter)
            #expect(history.compactMap { $0["revision"] as? Int } == Array((1...(4 + 2 * perWriter)).reversed()))
        }
    }
}

/// Failure messages collected from several threads.
final class Failures: @unchecked Sendable {
    private let lock = NSLock()
    private var messages: [String] = []

    func append(_ message: String) {
        self.lock.withLock { self.messages.append(message) }
    }

    var all: [String] {
        self.lock.withLock { self.messages }
    }
}
