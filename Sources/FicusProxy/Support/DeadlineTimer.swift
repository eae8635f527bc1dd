import NIOCore

/// A per-connection deadline that costs a variable write to move, not a timer per request.
///
/// A scheduled task per request is a real cost on the hot path (an allocation and a heap operation each). This keeps
/// at most one scheduled task per connection: moving the deadline later only updates a field, and the task, when it
/// fires early, re-arms itself for the remaining time. Loop-confined: every call must happen on `eventLoop`.
final class DeadlineTimer {
    private let eventLoop: EventLoop
    private var deadline: NIODeadline?
    private var scheduled: Scheduled<Void>?
    private var scheduledFor: NIODeadline = .distantFuture
    private var onExpiry: (() -> Void)?

    /// `onExpiry` may capture its owner strongly: `cancel()`, which the owner calls when its connection closes,
    /// drops it. (A weak capture would move the owner's reference count to a side table and slow down every retain
    /// and release of it on the hot path.)
    init(eventLoop: EventLoop, onExpiry: @escaping () -> Void) {
        self.eventLoop = eventLoop
        self.onExpiry = onExpiry
    }

    /// Arms (or moves) the deadline to `amount` from now, by the event loop's clock.
    ///
    /// The loop's clock, not the wall clock, so that tests on an `EmbeddedEventLoop` control time.
    func set(after amount: TimeAmount) {
        self.set(self.eventLoop.now + amount)
    }

    /// Arms (or moves) the deadline.
    func set(_ deadline: NIODeadline) {
        self.deadline = deadline
        if self.scheduled == nil || deadline < self.scheduledFor {
            self.scheduled?.cancel()
            self.schedule(at: deadline)
        }
    }

    /// Disarms the deadline; a scheduled task that fires later finds nothing to do.
    func clear() {
        self.deadline = nil
    }

    /// Cancels everything and lets go of the owner; used when the connection closes.
    func cancel() {
        self.deadline = nil
        self.scheduled?.cancel()
        self.scheduled = nil
        self.onExpiry = nil
    }

    private func schedule(at deadline: NIODeadline) {
        self.scheduledFor = deadline
        let box = UnsafeTransfer(self)
        self.scheduled = self.eventLoop.scheduleTask(deadline: deadline) {
            box.value.fired()
        }
    }

    private func fired() {
        self.scheduled = nil
        guard let deadline = self.deadline else { return }
        if deadline > self.eventLoop.now {
            self.schedule(at: deadline)
            return
        }
        self.deadline = nil
        self.onExpiry?()
    }
}

/// Carries a loop-confined reference into a `@Sendable` closure that runs on the same event loop.
struct UnsafeTransfer<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
