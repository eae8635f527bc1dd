import Foundation
import Testing

@testable import ficus

#if canImport(Glibc)
    import Glibc
#endif

/// Access logs never block an event loop: a log collector that stops reading costs dropped, counted lines.
@Suite struct LogWriterTests {
    @Test func aStalledReaderNeverBlocksTheLoggerAndDropsAreCounted() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer {
            close(fds[0])
            close(fds[1])
        }
        let writer = LogWriter(fileDescriptor: fds[1], capacity: 4096)
        let line = String(repeating: "x", count: 99) + "\n"
        let started = Date()
        var accepted = 0
        // Far more than the pipe (64 KiB) and the buffer (4 KiB) hold together: nothing reads the pipe.
        for _ in 0..<5_000 where writer.append(line) { accepted += 1 }
        let elapsed = Date().timeIntervalSince(started)
        #expect(elapsed < 2, "appending blocked for \(elapsed) s")
        #expect(accepted < 5_000)
        #expect(writer.dropped == 5_000 - accepted)
        // What was accepted is written whole, line by line, once the reader reads.
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        _ = fcntl(fds[0], F_SETFL, O_NONBLOCK)
        let deadline = Date().addingTimeInterval(5)
        while received.count < accepted * 100 && Date() < deadline {
            let count = read(fds[0], &buffer, buffer.count)
            if count > 0 { received += buffer[0..<count] } else { usleep(1_000) }
        }
        #expect(received.count == accepted * 100)
        #expect(received.split(separator: 0x0A).allSatisfy { $0.count == 99 })
    }
}
