/// A failure of the test support itself: a wait that timed out, a response cut short or unreadable.
///
/// Tests assert on `kind` and print `description`; `partial` keeps the bytes already received so that a failing
/// test shows what the peer actually sent.
public struct FicusTestingError: Error, Sendable, CustomStringConvertible {
    /// What went wrong.
    ///
    /// Kept coarse so that tests can match on it without depending on the wording of `message`.
    public enum Kind: Sendable, Equatable {
        case timedOut
        case closedMidResponse
        case malformedResponse
        case shutDown
    }

    public var kind: Kind
    public var message: String
    public var partial: [UInt8]

    public init(_ kind: Kind, _ message: String, partial: [UInt8] = []) {
        self.kind = kind
        self.message = message
        self.partial = partial
    }

    public var description: String {
        guard !self.partial.isEmpty else {
            return "\(self.kind): \(self.message)"
        }
        let shown = String(decoding: self.partial.prefix(512), as: UTF8.self)
        return "\(self.kind): \(self.message) (\(self.partial.count) bytes received: \(shown.debugDescription))"
    }
}
