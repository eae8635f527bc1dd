import FicusProxy
import Logging
import ServiceLifecycle

/// Re-reads the proxy's TLS files on a timer — the listener's certificate and the upstreams' `ca_file`,
/// `client_cert` and `client_key` — so that renewed certificates are used without a restart.
///
/// The files' contents are compared, so a timer that finds nothing new swaps nothing; new connections handshake with
/// the new context and connections already open (pooled upstream connections included) keep theirs. SIGHUP (`ficus
/// serve`) asks for a reload at once through `FicusNode.reloadCertificates()`. A reload that fails is logged with the
/// file and the context in force keeps serving (docs/PROXY.md, "TLS termination" and "TLS to upstreams").
struct CertificateWatch: Service {
    let proxy: ProxyServer
    let interval: Duration
    let clock: any NodeClock
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await self.clock.sleep(for: self.interval)
                } catch {
                    return
                }
                Self.reload(self.proxy, force: false, logger: self.logger)
            }
        }
    }

    /// Reloads the proxy's TLS files and logs what happened; returns whether any context was replaced.
    @discardableResult
    static func reload(_ proxy: ProxyServer, force: Bool, logger: Logger) -> Bool {
        var replaced = false
        do {
            if try proxy.reloadTLS(force: force) {
                logger.notice("TLS certificate reloaded: new connections use it")
                replaced = true
            }
        } catch {
            logger.error(
                "TLS certificate reload failed: the certificate in force keeps serving",
                metadata: ["error": "\(error)"]
            )
        }
        let upstreams = proxy.reloadUpstreamTLS(force: force)
        for files in upstreams.replaced {
            logger.notice(
                "upstream TLS files reloaded: new upstream connections use them",
                metadata: ["files": "\(files.joined(separator: ", "))"]
            )
        }
        for failure in upstreams.failures {
            logger.error(
                "upstream TLS file cannot be used: the last good one stays in force",
                metadata: ["file": "\(failure.file)", "error": "\(failure.reason)"]
            )
        }
        return replaced || !upstreams.replaced.isEmpty
    }
}
