import FicusCore
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import NIOTLS

/// What an upstream's `https://` connections are verified against and present: its `ca_file`, `client_cert` and
/// `client_key`.
///
/// The key of the context cache: upstreams with the same files share one context.
struct UpstreamTLSSettings: Hashable, Sendable {
    /// PEM CA certificates to trust instead of the system's roots.
    var caFile: String?
    /// PEM client certificate chain for mutual TLS.
    var clientCert: String?
    /// PEM key of `clientCert`.
    var clientKey: String?

    /// The settings of `upstream`.
    init(_ upstream: Upstream) {
        self.caFile = upstream.caFile
        self.clientCert = upstream.clientCert
        self.clientKey = upstream.clientKey
    }

    /// Plain system-root verification, no client certificate.
    init() {}

    /// Whether the settings differ from the default (system roots, no client certificate).
    var isCustom: Bool { self.caFile != nil || self.clientCert != nil || self.clientKey != nil }
}

/// Client TLS contexts for the `https://` addresses of upstreams, built once per distinct settings and shared by
/// the proxy's event loops.
///
/// Building a context reads its files (and the system's roots): `ProxyServer.start` builds those of the starting
/// configuration before it listens, off the event loops; settings that first appear in a later revision are built at
/// their first TLS connect (a short blocking read, once). A context is kept for the proxy's life; one that cannot be
/// built is not kept, so a fixed file is picked up at the next connect.
final class UpstreamTLSContexts: Sendable {
    private let contexts = NIOLockedValueBox<[UpstreamTLSSettings: NIOSSLContext]>([:])

    /// The context for `settings`, built now if it is the first.
    func context(for settings: UpstreamTLSSettings) throws -> NIOSSLContext {
        if let context = self.contexts.withLockedValue({ $0[settings] }) { return context }
        let context = try Self.makeContext(settings)
        self.contexts.withLockedValue { $0[settings] = context }
        return context
    }

    /// Builds the contexts of every upstream of `upstreams` that has an `https://` address; returns the errors of
    /// those that cannot be built (they are tried again at their first connect).
    func prepare(_ upstreams: [Upstream]) -> [(String, Error)] {
        var failures: [(String, Error)] = []
        for upstream in upstreams {
            let addresses = upstream.addresses + (upstream.slots.map { $0.blue + $0.green } ?? [])
            guard addresses.contains(where: \.tls) else { continue }
            do {
                _ = try self.context(for: UpstreamTLSSettings(upstream))
            } catch {
                failures.append((upstream.name, error))
            }
        }
        return failures
    }

    /// Full verification (chain and host name) against `ca_file` or the system's roots, TLS 1.2 at least, ALPN
    /// `http/1.1` (the pools speak HTTP/1.1 only), the client certificate when there is one.
    static func makeContext(_ settings: UpstreamTLSSettings) throws -> NIOSSLContext {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        tls.certificateVerification = .fullVerification
        tls.applicationProtocols = ["http/1.1"]
        if let caFile = settings.caFile {
            tls.trustRoots = .certificates(try ServerTLSContext.certificates(Self.read(caFile), file: caFile))
        }
        if let certificateFile = settings.clientCert, let keyFile = settings.clientKey {
            tls.certificateChain = try ServerTLSContext.certificates(Self.read(certificateFile), file: certificateFile)
                .map { .certificate($0) }
            do {
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Self.read(keyFile), format: .pem))
            } catch let error as TLSFileError {
                throw error
            } catch {
                throw TLSFileError(file: keyFile, reason: "holds no PEM private key (\(error))")
            }
        }
        do {
            return try NIOSSLContext(configuration: tls)
        } catch {
            throw TLSFileError(
                file: [settings.caFile, settings.clientCert, settings.clientKey].compactMap { $0 }
                    .joined(separator: ", "),
                reason: "cannot make a TLS client context (\(error))"
            )
        }
    }

    private static func read(_ path: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TLSFileError(file: path, reason: "cannot be read")
        }
        return Array(data)
    }

    /// The name sent as SNI and checked against the certificate: the host of a name address; nil for an IP
    /// literal, whose certificate is then checked against the address connected to (SNI carries no addresses).
    static func serverHostname(_ endpoint: Endpoint) -> String? {
        IPAddress(endpoint.host) == nil ? endpoint.host : nil
    }
}

/// Holds a new upstream connection back from its pool until its TLS handshake is done.
///
/// Sits between the TLS handler and `UpstreamConnection`, and removes itself once the handshake completes: a
/// connection whose certificate is refused, or that does not finish its handshake within the connect timeout,
/// fails like a connect (502 or 503, the reason logged) and is never leased.
final class TLSHandshakeWaiter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    /// Why a TLS handshake with an upstream failed.
    struct HandshakeFailed: Error, CustomStringConvertible {
        /// The address whose handshake failed.
        var endpoint: Endpoint
        /// BoringSSL's or NIO's reason.
        var detail: String
        /// What the log and the connect failure say.
        var description: String { "TLS handshake with \(self.endpoint) failed: \(self.detail)" }
    }

    private let promise: EventLoopPromise<Void>
    private let endpoint: Endpoint
    private let timeout: TimeAmount
    private var timer: Scheduled<Void>?
    private var done = false

    /// Completed when the handshake is done; failed with `HandshakeFailed` or `ChannelError.connectTimeout`.
    var handshake: EventLoopFuture<Void> { self.promise.futureResult }

    /// A waiter for a connection to `endpoint`, giving up after `timeout` from the TCP connection.
    init(eventLoop: EventLoop, endpoint: Endpoint, timeout: TimeAmount) {
        self.promise = eventLoop.makePromise(of: Void.self)
        self.endpoint = endpoint
        self.timeout = timeout
    }

    func channelActive(context: ChannelHandlerContext) {
        let channel = context.channel
        let waiter = NIOLoopBound(self, eventLoop: context.eventLoop)
        let timeout = self.timeout
        self.timer = context.eventLoop.scheduleTask(in: timeout) {
            waiter.value.finish(.failure(ChannelError.connectTimeout(timeout)))
            channel.close(promise: nil)
        }
        context.fireChannelActive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event {
            self.finish(.success(()))
            context.fireUserInboundEventTriggered(event)
            context.pipeline.syncOperations.removeHandler(self, promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        self.finish(.failure(HandshakeFailed(endpoint: self.endpoint, detail: String(describing: error))))
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.finish(.failure(HandshakeFailed(endpoint: self.endpoint, detail: "the connection closed")))
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        // A connect that failed before the channel was active never reaches the events above.
        self.finish(.failure(HandshakeFailed(endpoint: self.endpoint, detail: "the connection closed")))
    }

    private func finish(_ result: Result<Void, Error>) {
        guard !self.done else { return }
        self.done = true
        self.timer?.cancel()
        self.promise.completeWith(result)
    }
}
