import CoreMetrics
import Foundation
import NIOConcurrencyHelpers

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

    private let fileDescriptor: Int32
    private let capacity: Int
    /// 0: nothing to write; 1: bytes are waiting.
    private let condition = ConditionLock(value: 0)
    /// Guarded by `condition`.
    private var pending: [UInt8] = []
    private var writing = false
    private var droppedLines = 0
    private let counter = NIOLockedValueBox<Counter?>(nil)

    init(fileDescriptor: Int32, capacity: Int) {
        self.fileDescriptor = fileDescriptor
        self.capacity = capacity
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
        let accepted = line.withUTF8 { bytes -> Bool in
            self.condition.lock()
            guard self.pending.count + bytes.count <= self.capacity else {
                self.droppedLines += 1
                self.condition.unlock(withValue: self.pending.isEmpty ? 0 : 1)
                return false
            }
            self.pending.append(contentsOf: bytes)
            self.condition.unlock(withValue: 1)
            return true
        }
        if !accepted { self.counter.withLockedValue { $0 }?.increment() }
        return accepted
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
        while Date() < deadline {
            self.condition.lock()
            let done = self.pending.isEmpty && !self.writing
            self.condition.unlock()
            if done { return }
            usleep(1_000)
        }
    }

    private func run() {
        while true {
            self.condition.lock(whenValue: 1)
            var bytes: [UInt8] = []
            swap(&bytes, &self.pending)
            self.writing = true
            self.condition.unlock(withValue: 0)
            self.write(bytes)
            self.condition.lock()
            self.writing = false
            self.condition.unlock(withValue: self.pending.isEmpty ? 0 : 1)
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
