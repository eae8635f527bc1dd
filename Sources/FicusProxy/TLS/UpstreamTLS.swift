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

    /// The files these settings name, in the order `ca_file`, `client_cert`, `client_key` (each once).
    var files: [String] {
        var files: [String] = []
        for file in [self.caFile, self.clientCert, self.clientKey].compactMap({ $0 }) where !files.contains(file) {
            files.append(file)
        }
        return files
    }
}

/// Client TLS contexts for the `https://` addresses of upstreams, built once per distinct settings and shared by
/// the proxy's event loops, its shadow loop and its health checks.
///
/// Building a context reads its files (and the system's roots): `ProxyServer.start` builds those of the starting
/// configuration before it listens, off the event loops; settings that first appear in a later revision are built at
/// their first TLS connect (a short blocking read, once). One that cannot be built is not kept, so a fixed file is
/// picked up at the next connect. `reload` re-reads the files of every context kept and swaps in a new context when
/// their contents changed (docs/PROXY.md, "TLS to upstreams"): connections open keep the context they were made with.
final class UpstreamTLSContexts: Sendable {
    /// A context and the file contents it was made from (to tell a change from a touch).
    private struct Loaded {
        var context: NIOSSLContext
        var contents: [[UInt8]]
        /// The last reload's failure, reported once rather than at every check until the files change.
        var failure: TLSFileError?
    }

    private let contexts = NIOLockedValueBox<[UpstreamTLSSettings: Loaded]>([:])

    /// What one `reload` did.
    struct Reload: Sendable {
        /// The settings whose context was replaced.
        var replaced: [UpstreamTLSSettings] = []
        /// The files that could not be used; their settings keep the last good context.
        var failures: [TLSFileError] = []
    }

    /// The context for `settings`, built now if it is the first.
    func context(for settings: UpstreamTLSSettings) throws -> NIOSSLContext {
        if let loaded = self.contexts.withLockedValue({ $0[settings] }) { return loaded.context }
        let contents = try Self.contents(of: settings)
        let context = try Self.makeContext(settings, contents)
        self.contexts.withLockedValue { $0[settings] = Loaded(context: context, contents: contents) }
        return context
    }

    /// The settings of every upstream of `upstreams` that has an `https://` address (in either slot).
    static func settings(of upstreams: [Upstream]) -> Set<UpstreamTLSSettings> {
        Set(upstreams.filter { $0.addressesOfEverySlot.contains(where: \.tls) }.map(UpstreamTLSSettings.init))
    }

    /// Builds the contexts of every upstream of `upstreams` that has an `https://` address; returns the errors of
    /// those that cannot be built (they are tried again at their first connect).
    func prepare(_ upstreams: [Upstream]) -> [(String, Error)] {
        var failures: [(String, Error)] = []
        for upstream in upstreams {
            guard upstream.addressesOfEverySlot.contains(where: \.tls) else { continue }
            do {
                _ = try self.context(for: UpstreamTLSSettings(upstream))
            } catch {
                failures.append((upstream.name, error))
            }
        }
        return failures
    }

    /// Re-reads the files of every context kept and replaces those whose contents changed (all of them with
    /// `force`); a file that cannot be read or used leaves its context in force and is reported (once, until the
    /// failure changes or `force` asks again).
    ///
    /// Contexts whose settings are not in `inUse` (no upstream of the configuration in force names those files any
    /// more) are dropped rather than read: a file deleted with its upstream is no error, and a revision that names
    /// the files again builds their context at its first connect. Blocking file I/O: call it off the event loops.
    /// Connects that race a reload get the old or the new context, each whole.
    func reload(force: Bool = false, inUse: Set<UpstreamTLSSettings>) -> Reload {
        var result = Reload()
        let kept = self.contexts.withLockedValue { contexts in
            contexts = contexts.filter { inUse.contains($0.key) }
            return contexts
        }
        for (settings, loaded) in kept where settings.isCustom {
            let failure: TLSFileError
            do {
                let contents = try Self.contents(of: settings)
                if !force, contents == loaded.contents { continue }
                let context = try Self.makeContext(settings, contents)
                self.contexts.withLockedValue { $0[settings] = Loaded(context: context, contents: contents) }
                result.replaced.append(settings)
                continue
            } catch let error as TLSFileError {
                failure = error
            } catch {
                failure = TLSFileError(file: settings.files.joined(separator: ", "), reason: "\(error)")
            }
            if !force, loaded.failure == failure { continue }
            self.contexts.withLockedValue { $0[settings]?.failure = failure }
            result.failures.append(failure)
        }
        return result
    }

    /// The TLS handlers of a new connection to `endpoint` with `settings`: SNI and the host name to check, and a
    /// waiter that fails the connection if its handshake is not done within `timeout`.
    func clientSetup(
        for settings: UpstreamTLSSettings, endpoint: Endpoint, eventLoop: EventLoop, timeout: TimeAmount
    ) throws -> TLSClientSetup {
        TLSClientSetup(
            handler: try NIOSSLClientHandler(
                context: try self.context(for: settings),
                serverHostname: Self.serverHostname(endpoint)
            ),
            waiter: TLSHandshakeWaiter(eventLoop: eventLoop, endpoint: endpoint, timeout: timeout)
        )
    }

    /// The contents of `settings`' files, in the order of `UpstreamTLSSettings.files`.
    private static func contents(of settings: UpstreamTLSSettings) throws -> [[UInt8]] {
        try settings.files.map { try Self.read($0) }
    }

    /// Full verification (chain and host name) against `ca_file` or the system's roots, TLS 1.2 at least, ALPN
    /// `http/1.1` (the pools speak HTTP/1.1 only), the client certificate when there is one.
    private static func makeContext(_ settings: UpstreamTLSSettings, _ contents: [[UInt8]]) throws -> NIOSSLContext {
        let files = Dictionary(uniqueKeysWithValues: zip(settings.files, contents))
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        tls.certificateVerification = .fullVerification
        tls.applicationProtocols = ["http/1.1"]
        if let caFile = settings.caFile {
            tls.trustRoots = .certificates(try ServerTLSContext.certificates(files[caFile] ?? [], file: caFile))
        }
        if let certificateFile = settings.clientCert, let keyFile = settings.clientKey {
            let chain = try ServerTLSContext.certificates(files[certificateFile] ?? [], file: certificateFile)
            tls.certificateChain = chain.map { .certificate($0) }
            do {
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: files[keyFile] ?? [], format: .pem))
            } catch {
                throw TLSFileError(file: keyFile, reason: "holds no PEM private key (\(error))")
            }
        }
        do {
            return try NIOSSLContext(configuration: tls)
        } catch {
            throw TLSFileError(
                file: settings.files.joined(separator: ", "),
                reason: "cannot make a TLS client context (\(error))"
                    + (settings.clientCert == nil ? "" : "; is the key the certificate's?")
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

/// The client TLS of an upstream for a tool that speaks to its addresses outside a proxy (`ficus bluegreen check`).
///
/// The same verification, SNI and client certificate as the proxy's pools, so that a check from the command line
/// passes or fails where the proxy's requests would.
public enum UpstreamTLSClient {
    /// A context for `upstream`'s `https://` addresses, made from its `ca_file`, `client_cert` and `client_key` (or
    /// the system's roots); throws `TLSFileError` naming a file that cannot be used. Reads files: not on an event
    /// loop.
    public static func context(for upstream: Upstream) throws -> NIOSSLContext {
        try UpstreamTLSContexts().context(for: UpstreamTLSSettings(upstream))
    }

    /// The name to send as SNI and check against `endpoint`'s certificate; nil for an IP literal.
    public static func serverHostname(_ endpoint: Endpoint) -> String? {
        UpstreamTLSContexts.serverHostname(endpoint)
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
