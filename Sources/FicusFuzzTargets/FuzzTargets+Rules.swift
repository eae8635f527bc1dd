import FicusCore
import FicusRules
import Foundation

extension FuzzTargets {
    /// The YAML rules loader on arbitrary text, as `ficus validate` runs it (without the file system).
    ///
    /// Invariants: every problem names the file; a configuration that validates also compiles into a routing table
    /// and routes a request to a configured upstream; its export loads back into the same configuration; and after
    /// changes a proxy could receive (routes reversed, an upstream dropped, a rule renamed to another's name), a table
    /// built against the valid one (`previous:`) finds the same problems and decides as one built from scratch.
    public static func rulesLoader(_ data: [UInt8]) {
        let text = String(decoding: data, as: UTF8.self)
        let files: RulesFiles
        do {
            files = try RulesFiles.load(text: text, file: "fuzz.yaml")
        } catch {
            invariant(!error.problems.isEmpty, "a refusal without a problem")
            for problem in error.problems {
                invariant(problem.file == "fuzz.yaml", "a problem without its file: \(problem)")
            }
            return
        }
        let configuration = files.standalone
        do {
            try files.check(configuration)
        } catch {
            invariant(!error.problems.isEmpty, "a failed validation without a problem")
            return
        }
        let table: RoutingTable
        do {
            table = try RoutingTable(configuration: configuration, revision: 1)
        } catch {
            invariant(false, "a validated configuration does not compile: \(error)")
            return
        }
        Self.checkDecision(table, RequestFacts(method: "GET", target: "/", headers: [("Host", "a")]))
        Self.checkIncremental(from: table)

        let exported: String
        do {
            exported = try configuration.yamlDocument(header: ["fuzz"])
        } catch {
            invariant(false, "a valid configuration cannot be exported: \(error)")
            return
        }
        do {
            let again = try RulesFiles.load(text: exported, file: "export.yaml")
            invariant(
                again.standalone == configuration,
                "the export does not load back to the same configuration:\n\(exported)"
            )
        } catch {
            invariant(false, "the export does not load: \(error)\n\(exported)")
        }
    }

    /// Changes a proxy could receive: routes reversed, an upstream dropped, a rule renamed to another's name, a
    /// route flipped with the kill switch toggled.
    static func changes(of base: Configuration) -> [Configuration] {
        var changes: [Configuration] = []
        var reversed = base
        reversed.routes.reverse()
        changes.append(reversed)
        if !base.upstreams.isEmpty {
            var dropped = base
            dropped.upstreams.removeFirst()
            changes.append(dropped)
        }
        if let last = base.routes.last?.rules.last, !base.routes[0].rules.isEmpty {
            var renamed = base
            renamed.routes[0].rules[0].name = last.name
            changes.append(renamed)
        }
        if !base.routes.isEmpty {
            var flipped = base
            flipped.routes[0].defaultUpstream = flipped.routes[0].legacy
            flipped.killed.toggle()
            changes.append(flipped)
        }
        return changes
    }

    /// `configuration` with its routes as JSON, once in their stored form (decoded on use, as a store reads them for
    /// a commit) and once decoded (as every other read gives them); nil when a route does not read back.
    static func stored(_ configuration: Configuration) -> (stored: Configuration, decoded: Configuration)? {
        var stored = configuration
        var decoded = configuration
        var slots: [RouteList.Slot] = []
        decoded.routes = []
        for route in configuration.routes {
            guard let body = try? JSONEncoder().encode(route),
                let read = try? JSONDecoder().decode(Route.self, from: body)
            else {
                invariant(false, "a valid route does not read back from JSON: \(route)")
                return nil
            }
            slots.append(.stored(StoredRoute(name: route.name) { try JSONDecoder().decode(Route.self, from: body) }))
            decoded.routes.append(read)
        }
        stored.routes = RouteList(slots: slots)
        return (stored, decoded)
    }

    /// Builds tables for changed versions of `previous`'s configuration both ways and compares them; validates the
    /// same changes made to the configuration in its stored form, as a commit does, and compares those too.
    static func checkIncremental(from previous: RoutingTable) {
        let changes = Self.changes(of: previous.configuration)
        if let (storedPrevious, decodedPrevious) = Self.stored(previous.configuration) {
            let storedChanges = Self.changes(of: storedPrevious)
            let decodedChanges = Self.changes(of: decodedPrevious)
            invariant(storedPrevious == decodedPrevious, "the stored form reads back differently")
            invariant(storedChanges == decodedChanges, "changes to the stored form come out differently")
            for (stored, decoded) in zip(storedChanges, decodedChanges) {
                let full = decoded.validate()
                let commit = stored.validate(unchangedSince: storedPrevious)
                invariant(
                    Set(full) == Set(commit),
                    "validation of the stored form against its previous version differs: \(commit) instead of \(full)"
                )
            }
        }
        let request = RequestFacts(method: "GET", target: "/", headers: [("Host", "a")])
        for configuration in changes {
            let full = configuration.validate()
            let incremental = configuration.validate(unchangedSince: previous.configuration)
            invariant(
                Set(full) == Set(incremental),
                "incremental validation differs: \(incremental) instead of \(full)"
            )
            guard full.isEmpty else { continue }
            do {
                let scratch = try RoutingTable(configuration: configuration, revision: 2)
                let table = try RoutingTable(configuration: configuration, revision: 2, previous: previous)
                invariant(
                    table.explain(request) == scratch.explain(request),
                    "a table built against the previous one decides differently"
                )
            } catch {
                invariant(false, "a valid configuration does not compile: \(error)")
            }
        }
    }

    /// A routing table with a rule of every condition kind (flag, segment of every attribute, version by header
    /// and by media-type parameter, percentage with stickiness, method, match, all/any/not), blue-green slots with
    /// a preview segment and token, and a shadow policy, loaded through the rules loader like an operator's files.
    static let routingTable: RoutingTable = {
        do {
            let files = try RulesFiles.load(text: Self.routingRules, file: "routing.yaml")
            try files.check(files.standalone)
            return try RoutingTable(configuration: files.standalone, revision: 7)
        } catch {
            fatalError("the fixed routing rules do not load: \(error)")
        }
    }()

    /// A routing decision on request facts cut from the input: lines of method, host, path, query, client address,
    /// then header lines (`name: value`, cookies among them).
    ///
    /// Invariants: deciding is deterministic, `explain` reaches the decision `decide` does, a matched route names a
    /// configured upstream (or a slot of one), a bucket is 1–100, and a rule is named exactly when the reason says
    /// so.
    public static func routingDecision(_ data: [UInt8]) {
        let lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map {
            String(decoding: $0, as: UTF8.self)
        }
        func line(_ index: Int) -> String? {
            index < lines.count ? lines[index] : nil
        }
        var headers: [HeaderField] = []
        for text in lines.dropFirst(5) {
            let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            headers.append(
                HeaderField(
                    name: String(parts[0]),
                    value: parts.count > 1 ? String(parts[1].drop { $0 == " " }) : ""
                )
            )
        }
        let request = RequestFacts(
            method: line(0) ?? "GET",
            host: line(1).flatMap { $0.isEmpty ? nil : $0 },
            path: line(2) ?? "/",
            query: line(3),
            headers: headers,
            clientAddress: line(4).flatMap { IPAddress($0) }
        )
        Self.checkDecision(Self.routingTable, request)
    }

    static func checkDecision(_ table: RoutingTable, _ request: RequestFacts) {
        let decision = table.decide(request)
        invariant(table.decide(request) == decision, "two decisions for one request")
        let explanation = table.explain(request)
        invariant(
            explanation.decision == decision,
            "explain decided \(explanation.decision), decide \(decision)"
        )
        _ = explanation.description
        if let bucket = decision.bucket {
            invariant((1...100).contains(bucket), "bucket \(bucket)")
        }
        switch decision.reason {
        case .noRoute:
            invariant(decision.route == nil && decision.rule == nil, "no route, but \(decision)")
        case .rule:
            invariant(decision.route != nil && decision.rule != nil, "a rule decision without its rule: \(decision)")
        case .routeDefault, .killed:
            invariant(decision.route != nil && decision.rule == nil, "\(decision.reason) with a rule: \(decision)")
        }
        if decision.route != nil {
            invariant(table.upstream(named: decision.upstream) != nil, "unknown upstream '\(decision.upstream)'")
            if let shadow = decision.shadow {
                invariant(table.upstream(named: shadow) != nil, "unknown shadow upstream '\(shadow)'")
                invariant(shadow != decision.upstream, "a shadow copy to the serving upstream")
            }
        }
    }

    static let routingRules = """
        upstreams:
          - name: legacy
            addresses: ["127.0.0.1:8081", "127.0.0.1:8082"]
          - name: orders-v2
            slots:
              blue: ["127.0.0.1:8091"]
              green: ["127.0.0.1:8092"]
              active: blue
              preview_segment: staff
              # The digest of the token "fuzz-preview" (X-Ficus-Preview: green; token=fuzz-preview).
              preview_token_sha256: 9f6960f0771b3344ea963f2e8969504ae39db8f1c505cda7def30f14cd042e91
          - name: users-v2
            addresses: ["[::1]:8093"]
        segments:
          - name: beta-users
            constraints:
              - {attribute: "header:X-Beta-User", op: equals, values: ["true"], case_insensitive: true}
          - name: staff
            constraints:
              - {attribute: client_ip, op: in, values: [10.0.0.0/8, "192.168.0.0/16", "fd00::/8"]}
          - name: ids
            constraints:
              - {attribute: "cookie:uid", op: in, values: ["1", "2", "3", "42"]}
          - name: tenants
            constraints:
              - {attribute: "query:tenant", op: prefix, values: [acme, "ex"]}
              - {attribute: "header:X-Tenant-Tier", op: num_gte, values: ["2"]}
        flags:
          - {name: orders-canary, enabled: true}
          - {name: dark, enabled: false}
        routes:
          - name: orders
            host: api.example.com
            path: /api/v1/orders
            legacy: legacy
            default: legacy
            rules:
              - name: orders-beta
                condition: {any: [{segment: beta-users}, {segment: staff}, {segment: ids}]}
                upstream: orders-v2
              - name: orders-dark
                condition: {all: [{flag: dark}, {method: [POST, PUT]}]}
                upstream: orders-v2
              - name: orders-not
                condition: {not: {any: [{segment: tenants}, {match: {attribute: "header:X-Skip", op: exists}}]}}
                upstream: orders-v2
                stickiness: "cookie:uid"
              - name: orders-canary
                condition: {all: [{flag: orders-canary}, {percentage: 10}]}
                upstream: orders-v2
                stickiness: "header:X-User-Id"
            rewrites:
              orders-v2:
                path: {prefix: /api/v1/orders, replacement: /orders}
                set_headers: [{name: X-Migrated-From, value: legacy}]
                remove_headers: [X-Debug]
            timeouts: {connect_milliseconds: 1000, response_header_milliseconds: 30000}
            shadow:
              to: orders-v2
              percent: 50
              noise_percent: 10
              stickiness: client_ip
              ignore: [$.meta.generatedAt, "header:Date", status]
              sensitive_paths: [$..cardNumber]
          - name: users
            path: /api/v1/users/{id}/**
            methods: [GET, HEAD, PATCH]
            legacy: legacy
            rules:
              - name: users-v2-api
                condition: {version: {header: X-API-Version, range: ">=2.0.0 <3"}}
                upstream: users-v2
              - name: users-v2-media-type
                condition: {version: {header: Accept, parameter: version, range: ">=2"}}
                upstream: users-v2
              - name: users-regex
                condition: {match: {attribute: "query:v", op: regex, values: ["^v[0-9]+\\\\.[0-9]+$"]}}
                upstream: users-v2
              - name: users-semver
                condition: {match: {attribute: "header:X-Client", op: semver_gte, values: ["4.1.0"]}}
                upstream: users-v2
          - name: monolith
            path: /
            legacy: legacy
        """
}
