import FicusProxy
import Logging
import ServiceLifecycle

/// Re-reads the listener's certificate files on a timer, so that a renewed certificate is served without a restart.
///
/// The files' contents are compared, so a timer that finds nothing new swaps nothing; new connections handshake with
/// the new context and connections already open keep theirs. SIGHUP (`ficus serve`) asks for a reload at once through
/// `FicusNode.reloadCertificates()`. A reload that fails is logged and the certificate in force keeps serving.
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

    /// Reloads the proxy's certificate files and logs what happened; returns whether the context was replaced.
    @discardableResult
    static func reload(_ proxy: ProxyServer, force: Bool, logger: Logger) -> Bool {
        do {
            let replaced = try proxy.reloadTLS(force: force)
            if replaced {
                logger.notice("TLS certificate reloaded: new connections use it")
            }
            return replaced
        } catch {
            logger.error(
                "TLS certificate reload failed: the certificate in force keeps serving",
                metadata: ["error": "\(error)"]
            )
            return false
        }
    }
}
