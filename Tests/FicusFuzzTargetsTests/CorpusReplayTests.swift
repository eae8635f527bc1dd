import FicusFuzzTargets
import Foundation
import Testing

/// Every input of Fuzz/Corpus and Fuzz/Regressions replayed through the fuzz targets, as the fuzzers run them.
///
/// A crash the fuzzer found stays fixed only if something runs its input on every change; the targets trap on a
/// failed invariant, so a regression here fails the whole test run, as it would fail the fuzzer.
@Suite struct CorpusReplayTests {
    static let fuzz = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz")

    /// The files of `Fuzz/<kind>/<target>/`, sorted; none when the directory does not exist.
    static func inputs(_ kind: String, _ target: String) -> [URL] {
        let directory = Self.fuzz.appendingPathComponent(kind).appendingPathComponent(target)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted().map { directory.appendingPathComponent($0) }
    }

    /// The regressions whose cause is still open (Fuzz/Regressions/open.txt), as `target/file` paths.
    static let open: Set<String> = {
        let list = Self.fuzz.appendingPathComponent("Regressions").appendingPathComponent("open.txt")
        let text = (try? String(contentsOf: list, encoding: .utf8)) ?? ""
        return Set(
            text.split(separator: "\n").filter { !$0.hasPrefix("#") }.compactMap {
                $0.split(separator: " ", maxSplits: 1).first.map(String.init)
            }
        )
    }()

    @Test(arguments: FuzzTargets.all.map(\.name))
    func corpusAndRegressionsReplay(target: String) throws {
        let run = try #require(FuzzTargets.named(target))
        let corpus = Self.inputs("Corpus", target)
        #expect(!corpus.isEmpty, "Fuzz/Corpus/\(target) has no seed inputs")
        let regressions = Self.inputs("Regressions", target).filter {
            !Self.open.contains("\(target)/\($0.lastPathComponent)")
        }
        for file in corpus + regressions {
            run(Array(try Data(contentsOf: file)))
        }
    }

    /// Every open regression is a file that exists (a typo would otherwise skip nothing and hide nothing).
    @Test func openRegressionsExist() {
        for path in Self.open {
            let file = Self.fuzz.appendingPathComponent("Regressions").appendingPathComponent(path)
            #expect(FileManager.default.fileExists(atPath: file.path), "open.txt names \(path), which is missing")
        }
    }

    /// Every corpus directory belongs to a target (a renamed target would otherwise leave its inputs unreplayed).
    @Test func everyCorpusDirectoryIsATarget() throws {
        for kind in ["Corpus", "Regressions"] {
            let directory = Self.fuzz.appendingPathComponent(kind)
            let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
            for name in names where !name.hasPrefix(".") && name != "open.txt" {
                #expect(FuzzTargets.named(name) != nil, "Fuzz/\(kind)/\(name) names no target")
            }
        }
    }

    /// The known hostile inputs of issue 14 run through the targets without a trap.
    @Test func knownHostileInputsAreHandled() {
        let chunked = Array(
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n7fffffffffffffff\r\n".utf8)
        FuzzTargets.requestParser([0] + chunked)
        FuzzTargets.requestParser([7] + chunked)
        let response = Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n7fffffffffffffff\r\n".utf8)
        FuzzTargets.responseParser([0, 0] + response)
        FuzzTargets.rulesLoader(Array("a: &a [x, x]\nb: &b [*a, *a, *a]\n".utf8))
        FuzzTargets.rulesLoader(Array(String(repeating: "[", count: 200).utf8))
    }
}
