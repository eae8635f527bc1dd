import CoreMetrics
import FicusProxy
import Foundation
import NIOConcurrencyHelpers
import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

/// Writes log lines to standard error from a thread of its own, through a bounded buffer.
///
/// A log line is formatted on the thread that logs (an event loop, for access logs) and handed over as bytes; the
/// write itself, which blocks when standard error is a pipe whose reader is slow, never happens on an event loop.
/// When the buffer is full the line is dropped and counted (`ficus_log_lines_dropped_total`) rather than making a
/// client wait for a log collector.
final class LogWriter: @unchecked Sendable {
    /// The writer every `FicusLogHandler` of the process shares, so lines never interleave.
    static let standardError = LogWriter(fileDescriptor: 2, capacity: 8 * 1024 * 1024)

    /// Queued bytes past which the writer is woken at once; below it, it writes every `interval`. A logging thread
    /// (an event loop) therefore wakes the writer once per 64 KiB of lines, not once per line (nginx's
    /// `access_log ... buffer=64k` idea), and a line waits at most `interval` before it is written.
    static let wakeBytes = 64 * 1024
    static let interval: TimeInterval = 0.05

    private let fileDescriptor: Int32
    private let capacity: Int
    private let condition = NSCondition()
    /// Guarded by `condition`.
    private var pending: [UInt8] = []
    private var writing = false
    private var woken = false
    private var droppedLines = 0
    private let counter = NIOLockedValueBox<Counter?>(nil)

    init(fileDescriptor: Int32, capacity: Int) {
        self.fileDescriptor = fileDescriptor
        self.capacity = capacity
        self.pending.reserveCapacity(Self.wakeBytes * 2)
        let thread = Thread { [unowned self] in self.run() }
        thread.name = "ficus-log-writer"
        thread.start()
    }

    /// Counts dropped lines in `factory` from now on (the CLI makes the registry after logging is set up).
    func countDrops(in factory: MetricsFactory) {
        let counter = Counter(label: "ficus_log_lines_dropped_total", factory: factory)
        self.counter.withLockedValue { $0 = counter }
    }

    /// Queues `line` for writing; false (and the line dropped and counted) when the buffer is full.
    @discardableResult
    func append(_ line: String) -> Bool {
        var line = line
        return line.withUTF8 { self.append(bytes: UnsafeRawBufferPointer($0)) }
    }

    /// Queues `line`'s readable bytes (copied: the caller may reuse the buffer).
    @discardableResult
    func append(_ line: ByteBuffer) -> Bool {
        line.withUnsafeReadableBytes { self.append(bytes: $0) }
    }

    private func append(bytes: UnsafeRawBufferPointer) -> Bool {
        self.condition.lock()
        guard self.pending.count + bytes.count <= self.capacity else {
            self.droppedLines += 1
            self.condition.unlock()
            self.counter.withLockedValue { $0 }?.increment()
            return false
        }
        self.pending.append(contentsOf: bytes)
        if self.pending.count >= Self.wakeBytes, !self.woken {
            self.woken = true
            self.condition.signal()
        }
        self.condition.unlock()
        return true
    }

    /// Lines dropped because the buffer was full.
    var dropped: Int {
        self.condition.lock()
        defer { self.condition.unlock() }
        return self.droppedLines
    }

    /// Waits (up to `timeout`) until everything queued has been written: before the process exits.
    func flush(timeout: TimeInterval = 2) {
        let deadline = Date().addingTimeInterval(timeout)
        self.condition.lock()
        self.woken = true
        self.condition.signal()
        self.condition.unlock()
        while Date() < deadline {
            self.condition.lock()
            let done = self.pending.isEmpty && !self.writing
            self.condition.unlock()
            if done { return }
            usleep(1_000)
        }
    }

    private func run() {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Self.wakeBytes * 2)
        while true {
            self.condition.lock()
            while self.pending.isEmpty || !self.woken {
                if !self.condition.wait(until: Date().addingTimeInterval(Self.interval)) { break }
            }
            swap(&bytes, &self.pending)
            self.woken = false
            self.writing = !bytes.isEmpty
            self.condition.unlock()
            if !bytes.isEmpty {
                self.write(bytes)
                bytes.removeAll(keepingCapacity: true)
            }
            self.condition.lock()
            self.writing = false
            self.condition.unlock()
        }
    }

    private func write(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = Glibc.write(self.fileDescriptor, raw.baseAddress! + offset, raw.count - offset)
                if written < 0 {
                    if errno == EINTR || errno == EAGAIN { continue }
                    return  // standard error is gone: nothing to tell anyone
                }
                offset += written
            }
        }
    }
}

/// Access log lines to standard error through the shared writer: formatted on the event loop, written off it.
struct StandardErrorAccessLog: AccessLogSink {
    func write(_ line: ByteBuffer) {
        LogWriter.standardError.append(line)
    }
}
