import NIOCore
import NIOHTTP1

/// The request side of one test-upstream connection: collects request parts, records them, and answers one
/// request at a time in arrival order.
///
/// Kept apart from the channel handler so that pipelining and keep-alive are events and actions, not flags spread
/// through `channelRead`.
struct UpstreamConnectionStateMachine {
    /// A complete request waiting for, or getting, its answer.
    struct PendingRequest {
        var recorded: TestUpstream.RecordedRequest
        var keepAlive: Bool
        var isHEAD: Bool
    }

    enum Action {
        case record(TestUpstream.RecordedRequest)
        case recordAndReset(TestUpstream.RecordedRequest)
        case answer(PendingRequest)
        case answerBadRequestAndClose
        case close
    }

    private enum Receiving {
        case idle
        case request(PendingRequest)
        case ignoringRest
    }

    private let connectionID: Int
    private var receiving: Receiving = .idle
    private var waiting: [PendingRequest] = []
    private var answering = false
    private var closesAfterAnswer = false
    private var finished = false

    init(connectionID: Int) {
        self.connectionID = connectionID
    }

    mutating func headReceived(_ head: HTTPRequestHead, resetsOnHead: Bool) -> [Action] {
        guard !self.finished else {
            return []
        }
        let recorded = TestUpstream.RecordedRequest(
            method: head.method.rawValue,
            uri: head.uri,
            version: head.version.description,
            headers: head.headers.map { ($0.name, $0.value) },
            body: [],
            trailers: nil,
            connectionID: self.connectionID
        )
        if resetsOnHead {
            self.finished = true
            self.receiving = .ignoringRest
            return [.recordAndReset(recorded)]
        }
        let pending = PendingRequest(recorded: recorded, keepAlive: head.isKeepAlive, isHEAD: head.method == .HEAD)
        self.receiving = .request(pending)
        return []
    }

    mutating func bodyReceived(_ bytes: ByteBufferView) {
        guard case .request(var pending) = self.receiving else {
            return
        }
        self.receiving = .idle
        pending.recorded.body.append(contentsOf: bytes)
        self.receiving = .request(pending)
    }

    mutating func endReceived(trailers: HTTPHeaders?) -> [Action] {
        guard case .request(var pending) = self.receiving else {
            return []
        }
        self.receiving = .idle
        if let trailers, !trailers.isEmpty {
            pending.recorded.trailers = trailers.map { ($0.name, $0.value) }
        }
        var actions: [Action] = [.record(pending.recorded)]
        if self.answering {
            self.waiting.append(pending)
        } else {
            self.answering = true
            actions.append(.answer(pending))
        }
        return actions
    }

    /// The answer in progress has been written; `closeConnection` says whether the connection must end with it.
    ///
    /// Only then may the next pipelined request be answered, so that answers never interleave.
    mutating func answerFinished(closeConnection: Bool) -> [Action] {
        guard !self.finished else {
            return []
        }
        if closeConnection || self.closesAfterAnswer {
            self.finished = true
            self.waiting.removeAll()
            return [.close]
        }
        guard !self.waiting.isEmpty else {
            self.answering = false
            return []
        }
        return [.answer(self.waiting.removeFirst())]
    }

    mutating func parseFailed() -> [Action] {
        guard !self.finished else {
            return []
        }
        self.receiving = .ignoringRest
        self.waiting.removeAll()
        if self.answering {
            self.closesAfterAnswer = true
            return []
        }
        self.finished = true
        return [.answerBadRequestAndClose]
    }

    mutating func connectionClosed() {
        self.finished = true
        self.receiving = .ignoringRest
        self.waiting.removeAll()
    }
}
