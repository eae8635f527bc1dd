import FicusCore
import Foundation

/// The demo's rules file, embedded, and the substitution of its placeholder addresses.
///
/// The binary must run from any directory, so it cannot read examples/demo.yaml; a test keeps the two texts equal.
enum DemoRules {
    /// The address every upstream of the embedded file has until the demo knows its services' ports.
    ///
    /// Port 0 is what a listener binds to when it wants any free port, so the placeholder reads as "filled in later".
    static let placeholder = "127.0.0.1:0"

    /// examples/demo.yaml, byte for byte.
    ///
    /// `ficus demo --print-config` prints it, and the CLI tests compare that output with the file.
    static let yaml = #"""
        # The configuration of `ficus demo`: a legacy monolith, one new service, and two routes between them.
        #
        # The demo starts both services on loopback and replaces each 127.0.0.1:0 below with the port its service
        # got from the kernel; everything else is applied as written, loaded and validated exactly as `ficus apply`
        # does. The binary embeds this file (a test keeps the two equal), so the demo runs from any directory;
        # `ficus demo --print-config` prints it. It lives outside rules/, which `ficus apply rules/` reads as one
        # configuration, because port 0 is not a valid address until the demo fills it in.
        upstreams:
          # The monolith that answers every request today.
          - name: legacy
            addresses:
              - 127.0.0.1:0

          # The new service. It answers orders a little differently from the monolith (the total as a string, no
          # currency, 404 for orders it has not migrated yet) and users exactly alike.
          - name: orders-v2
            addresses:
              - 127.0.0.1:0

        routes:
          # Orders: legacy keeps answering every client; each GET is also sent to orders-v2 and the two answers are
          # compared field by field. Clients never see orders-v2's answers.
          - name: orders
            path: /orders
            legacy: legacy
            shadow:
              to: orders-v2
              percent: 100
              # One shadowed request in four is sent to legacy a second time: fields that differ between two answers
              # of the monolith itself (the generatedAt timestamp) are learnt as noise, not reported as regressions.
              noise_percent: 25
              # Each service names itself in X-Served-By so that the demo can show where traffic goes; that
              # difference is by design, so it is never reported.
              ignore:
                - header:x-served-by

          # Users: the new service answers exactly like the monolith, so this route comes out `ready`. The demo
          # flips it to orders-v2 (one revision, as `ficus flip users --to orders-v2` does), then rolls the flip back.
          - name: users
            path: /users
            legacy: legacy
            shadow:
              to: orders-v2
              percent: 100
              noise_percent: 25
              ignore:
                - header:x-served-by

        """#

    /// The rules file with each upstream's placeholder replaced by the address in `addresses` (by upstream name).
    ///
    /// Replaced in the text, before loading, because port 0 is not a valid upstream address: the file that is
    /// loaded and validated is then exactly what an operator would apply with `ficus apply`.
    static func yaml(addresses: [String: Endpoint]) throws -> String {
        var upstream: String?
        var replaced: Set<String> = []
        var lines: [String] = []
        for line in self.yaml.split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("- name: ") {
                upstream = String(trimmed.dropFirst("- name: ".count))
            }
            if line.contains(self.placeholder), let name = upstream, let address = addresses[name] {
                lines.append(line.replacingOccurrences(of: self.placeholder, with: address.description))
                replaced.insert(name)
            } else {
                lines.append(String(line))
            }
        }
        let missing = Set(addresses.keys).subtracting(replaced)
        guard missing.isEmpty else {
            throw CLIError.failed("the demo rules have no placeholder address for \(missing.sorted())")
        }
        return lines.joined(separator: "\n")
    }
}
