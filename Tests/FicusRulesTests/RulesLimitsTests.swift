import FicusCore
import FicusRules
import Foundation
import Testing

/// Hostile rules files: each limit is refused with a located problem that names it, and nothing traps.
@Suite struct RulesLimitsTests {
    /// The problems `load(text:file:)` reports for `text`, or none when it loads.
    static func problems(_ text: String, file: String = "hostile.yaml") -> [RulesProblem] {
        do {
            _ = try RulesFiles.load(text: text, file: file)
            return []
        } catch {
            return error.problems
        }
    }

    /// A small valid file, so that each test changes one thing.
    static let valid = """
        upstreams:
          - name: legacy
            addresses: ["127.0.0.1:8080"]
        routes:
          - name: all
            path: /
            legacy: legacy
        """

    @Test func aValidFileLoadsFromText() throws {
        let files = try RulesFiles.load(text: Self.valid, file: "valid.yaml")
        #expect(files.files == ["valid.yaml"])
        #expect(files.configuration.routes.map(\.name) == ["all"])
        try files.check(files.standalone)
    }

    /// An upstream with both `addresses` and `slots` is refused at the second field (found by the rules-loader fuzz
    /// target: the addresses were silently ignored, and an export lost them).
    @Test func addressesAndSlotsTogetherAreRefused() {
        let text = """
            upstreams:
              - name: legacy
                addresses: ["127.0.0.1:8081"]
                slots:
                  blue: ["127.0.0.1:8091"]
                  green: ["127.0.0.1:8092"]
                  active: blue
            """
        let problems = Self.problems(text)
        #expect(problems.count == 1)
        #expect(problems.first?.line == 4, "\(problems)")
        #expect(problems.first?.message.contains("'addresses' and 'slots' together") == true, "\(problems)")
    }

    // MARK: Aliases

    /// The classic billion laughs: nine levels of ten aliases each, about a billion strings once expanded.
    @Test func aBillionLaughsIsRefusedAtTheAliasThatCrossesTheLimit() {
        var lines = ["a0: &a0 [" + Array(repeating: "\"lol\"", count: 10).joined(separator: ", ") + "]"]
        for level in 1...9 {
            let refs = Array(repeating: "*a\(level - 1)", count: 10).joined(separator: ", ")
            lines.append("a\(level): &a\(level) [\(refs)]")
        }
        let started = ContinuousClock.now
        let problems = Self.problems(lines.joined(separator: "\n"))
        #expect(ContinuousClock.now - started < .seconds(5))
        #expect(problems.count == 1)
        let problem = problems.first
        #expect(problem?.message.contains("aliases expand to more than 10000 nodes") == true, "\(problems)")
        #expect(problem?.description.hasPrefix("hostile.yaml:") == true)
        // a3 is the first level whose expansion (10 × 111 nodes, ten times over) passes 10,000 in total.
        #expect(problem?.line == 4, "\(problems)")
    }

    /// An alias used as a mapping key is hashed whole by the composer's duplicate-key check: bounded the same way.
    @Test func aliasesAsKeysAreBoundedBeforeComposing() {
        var lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        for level in 1...12 {
            lines.append("a\(level): &a\(level) [*a\(level - 1), *a\(level - 1), *a\(level - 1), *a\(level - 1)]")
        }
        lines.append("? *a12\n: boom")
        let started = ContinuousClock.now
        let problems = Self.problems(lines.joined(separator: "\n"))
        #expect(ContinuousClock.now - started < .seconds(5))
        #expect(problems.first?.message.contains("aliases expand to more than") == true, "\(problems)")
    }

    /// Aliases within the limit still work (shared conditions are a legitimate use).
    @Test func aFewAliasesStillLoad() throws {
        let text = """
            upstreams:
              - &legacy
                name: legacy
                addresses: ["127.0.0.1:8080"]
            routes:
              - name: all
                path: /
                legacy: legacy
                rules:
                  - name: beta
                    condition: &beta {match: {attribute: "header:x-beta", op: equals, values: ["1"]}}
                    upstream: legacy
                  - name: beta-post
                    condition: {all: [*beta, {method: [POST]}]}
                    upstream: legacy
            """
        let files = try RulesFiles.load(text: text, file: "aliases.yaml")
        #expect(files.configuration.routes.first?.rules.count == 2)
    }

    // MARK: Nesting

    /// 33 lists nested in each other: refused at the list that opens the 33rd level.
    @Test func aNestThirtyThreeDeepIsRefused() {
        let problems = Self.problems(String(repeating: "[", count: 33) + String(repeating: "]", count: 33))
        #expect(problems.count == 1)
        #expect(problems.first?.message.contains("nested deeper than 32 levels") == true, "\(problems)")
        #expect(problems.first?.line == 1)
        #expect(problems.first?.column == 33)
    }

    /// Exactly 32 levels pass the depth check (and are then refused for their shape, not their depth).
    @Test func aNestThirtyTwoDeepPassesTheDepthCheck() {
        let problems = Self.problems(String(repeating: "[", count: 32) + String(repeating: "]", count: 32))
        #expect(!problems.isEmpty)
        #expect(!problems.contains { $0.message.contains("nested deeper") }, "\(problems)")
    }

    /// Block nesting counts the same as flow nesting.
    @Test func deepBlockNestingIsRefused() {
        var text = ""
        for level in 0..<40 {
            text += String(repeating: "  ", count: level) + "k\(level):\n"
        }
        text += String(repeating: "  ", count: 40) + "leaf: 1\n"
        let problems = Self.problems(text)
        #expect(problems.first?.message.contains("nested deeper than 32 levels") == true, "\(problems)")
        // The 33rd mapping is the value of k31, which starts on the line of k32.
        #expect(problems.first?.line == 33)
    }

    /// An alias that brings a deep anchor into a deep place counts its anchor's depth too.
    @Test func anAliasCannotNestPastTheLimit() {
        let deep = String(repeating: "[", count: 20) + "x" + String(repeating: "]", count: 20)
        let text = "a: &deep \(deep)\nb: " + String(repeating: "[", count: 15) + "*deep"
            + String(repeating: "]", count: 15)
        let problems = Self.problems(text)
        #expect(problems.first?.message.contains("alias '*deep' nests deeper than 32 levels") == true, "\(problems)")
    }

    // MARK: Size

    /// 1 MiB + 1 bytes of text is refused without being parsed; exactly 1 MiB is parsed.
    @Test func textOverOneMebibyteIsRefused() {
        let comment = "#" + String(repeating: "x", count: RulesLimits.maximumFileBytes - 1)
        #expect(Self.problems(comment).isEmpty)
        let problems = Self.problems(comment + "x")
        #expect(problems.count == 1)
        #expect(
            problems.first?.description
                == "hostile.yaml:1: 1048577 bytes is over the 1 MiB (1048576 bytes) limit for a rules file"
        )
    }

    /// A file one byte over the limit is refused by its size, before it is read.
    @Test func aFileOverOneMebibyteIsRefused() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ficus-rules-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("big.yaml").path
        let text = Self.valid + "\n#" + String(repeating: "x", count: RulesLimits.maximumFileBytes)
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        do {
            _ = try RulesFiles.load([path])
            Issue.record("a file over 1 MiB loaded")
        } catch {
            #expect(error.problems.count == 1)
            #expect(error.problems.first?.file == path)
            #expect(error.problems.first?.message.contains("limit for a rules file") == true)
        }
    }

    // MARK: Numbers

    /// An integer past `Int` is a located error naming the range, not a trap or a vague type error.
    @Test func anIntegerPastIntIsAnError() {
        let text = Self.valid + "\n    timeouts: {connectMilliseconds: 99999999999999999999999}"
        let problems = Self.problems(text)
        #expect(problems.count == 1)
        #expect(
            problems.first?.message
                == "route 'all': timeouts: connectMilliseconds: 99999999999999999999999 is outside the range of an "
                + "integer (-9223372036854775808 to 9223372036854775807)",
            "\(problems)"
        )
        #expect(problems.first?.line == 8)
    }

    /// YAML 1.1 base-60 integers (`1:30`) that overflow are refused before the decoder multiplies them out.
    @Test func sexagesimalIntegersThatOverflowAreErrors() {
        let values = [
            "1:0:0:0:0:0:0:0:0:0:0:0", "9223372036854775807:0", "-1:-9223372036854775808:0",
            "1_000:0:0:0:0:0:0:0:0:0:0",
        ]
        for value in values {
            let text =
                Self.valid + "\n    rules:\n      - {name: r, condition: {percentage: \(value)}, upstream: legacy}"
            let problems = Self.problems(text)
            #expect(problems.count == 1, "\(value)")
            #expect(problems.first?.message.contains("outside the range of an integer") == true, "\(problems)")
            #expect(problems.first?.line == 9)
        }
        // Small ones still read as YAML 1.1 says: 1:40 is 100.
        let text = Self.valid + "\n    rules:\n      - {name: r, condition: {percentage: 1:40}, upstream: legacy}"
        #expect(Self.problems(text).isEmpty)
    }

    /// Timeouts past a day (which would overflow when turned into nanoseconds) fail validation.
    @Test func timeoutsPastADayFailValidation() throws {
        let text = Self.valid + "\n    timeouts: {responseHeaderMilliseconds: 9223372036854775807}"
        let files = try RulesFiles.load(text: text, file: "t.yaml")
        do {
            try files.check(files.standalone)
            Issue.record("a timeout of Int.max validated")
        } catch {
            #expect(error.problems.first?.message.contains("must be at most 86400000 (24 h)") == true)
            #expect(error.problems.first?.line == 8)
        }
    }

    /// Percentages far out of range (or infinite) are validation errors, not arithmetic.
    @Test func hugePercentagesFailValidation() throws {
        let within = Self.valid + "\n    default: legacy\n    shadow: {to: legacy, percent: 50}"
        let control = try RulesFiles.load(text: within, file: "p.yaml")
        try control.check(control.standalone)
        for value in ["1e400", "-1e400", ".inf", ".nan", "100.0000001"] {
            let text = Self.valid + "\n    default: legacy\n    shadow: {to: legacy, percent: \(value)}"
            let files = try RulesFiles.load(text: text, file: "p.yaml")
            #expect(throws: RulesFilesError.self, "\(value)") { try files.check(files.standalone) }
        }
        let text = Self.valid + "\n    rules:\n      - {name: r, condition: {percentage: 101}, upstream: legacy}"
        let files = try RulesFiles.load(text: text, file: "p.yaml")
        #expect(throws: RulesFilesError.self) { try files.check(files.standalone) }
    }
}
