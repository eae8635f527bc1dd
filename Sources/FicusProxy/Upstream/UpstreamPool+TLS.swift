import FicusCore
import NIOCore
import NIOSSL

/// The TLS handlers of one new connection to an `https://` address.
struct TLSClientSetup {
    /// The TLS session, with SNI and the host name to check.
    let handler: NIOSSLClientHandler
    /// Holds the connection back from the pool until the handshake is done.
    let waiter: TLSHandshakeWaiter

    /// Puts the TLS handler and the handshake waiter first in `channel`'s pipeline.
    func addHandlers(to channel: Channel) throws {
        try channel.pipeline.syncOperations.addHandler(self.handler)
        try channel.pipeline.syncOperations.addHandler(self.waiter)
    }
}

extension UpstreamPool {
    /// Remembers `upstream`'s own TLS settings (`ca_file`, `client_cert`, `client_key`) for its next connects.
    ///
    /// Three nil checks on the common path; a dictionary write only for upstreams that have settings, or had them
    /// in an earlier revision.
    func noteTLSSettings(_ upstream: Upstream) {
        if upstream.caFile != nil || upstream.clientCert != nil || upstream.clientKey != nil {
            self.tlsSettings[upstream.name] = UpstreamTLSSettings(upstream)
        } else if !self.tlsSettings.isEmpty, self.tlsSettings[upstream.name] != nil {
            self.tlsSettings[upstream.name] = nil
        }
    }

    /// The TLS handlers for a connect to `target`, or nil for a plain address; throws when the upstream's TLS files
    /// cannot be used (the connect then fails with the file and the reason).
    func tlsSetup(for target: StateMachine.ConnectTarget) throws -> TLSClientSetup? {
        guard target.endpoint.tls else { return nil }
        return try self.tlsContexts.clientSetup(
            for: self.tlsSettings[target.upstream] ?? UpstreamTLSSettings(),
            endpoint: target.endpoint,
            eventLoop: self.eventLoop,
            timeout: self.timeouts.connect
        )
    }
}
