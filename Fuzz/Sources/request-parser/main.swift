import CFuzzDriver
import FicusFuzzTargets

#if canImport(Glibc)
import Glibc
#endif

/// libFuzzer's entry point: one input through the request-parser target.
///
/// Exported under the C name libFuzzer looks for, so that the binary also links with libFuzzer's own main if a build
/// ever provides it; the invariants live in FicusFuzzTargets, where `swift test` replays the corpus through them.
@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    FuzzTargets.requestParser(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
    return 0
}

exit(ficus_fuzz_run(CommandLine.argc, CommandLine.unsafeArgv) { data, size in testOneInput(data, size) })
