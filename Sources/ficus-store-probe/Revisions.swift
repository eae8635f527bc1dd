import FicusCore
import FicusStore
import Foundation

/// `ROUTES` routes of ten rules each, as a large migration has them: header lists, segments, flags, versions by
/// header, cookies and queries, methods, user agents, a sticky percentage.
func revisionsFixture(routes count: Int) -> FicusCore.Configuration {
    var configuration = FicusCore.Configuration(
        upstreams: [
            Upstream(name: "legacy", addresses: [Endpoint(host: "127.0.0.1", port: 8080)]),
            Upstream(name: "modern", addresses: [Endpoint(host: "127.0.0.1", port: 9090)]),
        ],
        segments: [
            Segment(name: "staff", constraints: [Predicate(.header("X-Staff"), .equals, ["1"])]),
            Segment(name: "office", constraints: [Predicate(.clientIP, .in, ["10.0.0.0/8"])]),
        ],
        flags: [Flag(name: "new-checkout", enabled: true), Flag(name: "beta", enabled: false)]
    )
    for index in 0..<count {
        let name = "route-\(index)"
        let rules: [Rule] = [
            Rule(name: "\(name)-tenants", condition: .match(Predicate(.header("X-Tenant"), .in, ["a\(index)", "b", "c"])),
                upstream: "modern"),
            Rule(name: "\(name)-staff", condition: .segment("staff"), upstream: "modern"),
            Rule(name: "\(name)-flagged", condition: .all([.flag("new-checkout"),
                .match(Predicate(.header("X-Beta"), .equals, ["yes"]))]), upstream: "modern"),
            Rule(name: "\(name)-v2", condition: .version(VersionMatch(header: "X-Api-Version", range: ">=2.0.0 <3.0.0")),
                upstream: "modern"),
            Rule(name: "\(name)-exact", condition: .version(VersionMatch(header: "X-Api-Version", equals: "3.1.0")),
                upstream: "modern"),
            Rule(name: "\(name)-cookie", condition: .any([.match(Predicate(.cookie("beta"), .equals, ["1"])),
                .match(Predicate(.query("beta"), .equals, ["1"]))]), upstream: "modern"),
            Rule(name: "\(name)-writes", condition: .all([.method(["POST", "PUT"]), .segment("office")]),
                upstream: "modern"),
            Rule(name: "\(name)-agents", condition: .match(Predicate(.header("User-Agent"), .prefix, ["curl/"],
                caseInsensitive: true)), upstream: "legacy"),
            Rule(name: "\(name)-anonymous", condition: .all([.segment("staff"),
                .not(.match(Predicate(.header("Authorization"), .exists)))]), upstream: "legacy"),
            Rule(name: "\(name)-canary", condition: .all([.flag("beta"), .percentage(10)]), upstream: "modern",
                stickiness: .header("X-User-Id")),
        ]
        configuration.routes.append(
            Route(name: name, host: "svc\(index % 50).example.com", path: "/api/v2/res\(index)/{id}", legacy: "legacy",
                rules: rules))
    }
    return configuration
}

/// See the usage: commits, storage and apply cost of flips on a large configuration.
func probeRevisions(store location: String, routes: Int, flips: Int) async throws {
    // Both keep connections, as `ficus serve` does (a proxy's watcher has one of its own): the commit and read times
    // are then the store's work, not a PostgreSQL connection's setup. `ficus flip` (scripts/bench/revisions.py)
    // measures the cold path of a command.
    let writer = try await StoreFactory.open(try StoreLocation(parsing: location), creating: true, keepConnections: 2)
    let reader = try await StoreFactory.open(try StoreLocation(parsing: location), creating: false, keepConnections: 2)
    let author = ChangeAuthor(author: "probe", reason: "revisions benchmark", action: "apply")
    var started = ContinuousClock.now
    let first = try await writer.commit(author, expectRevision: nil) { configuration in
        configuration = revisionsFixture(routes: routes)
    }
    let initialCommit = ContinuousClock.now - started
    var storage = try await writer.revisionStorage(first.number)
    emit("initial routes \(routes) commit_ms \(milliseconds(initialCommit)) objects \(storage.objects) "
        + "object_bytes \(storage.objectBytes) layout_bytes \(storage.layoutBytes)")
    // The reader starts warm, as a proxy serving the revision before the flip.
    let served = try await reader.latest()
    var table = try RoutingTable(configuration: served?.configuration ?? first.configuration, revision: first.number)
    var generator = SystemRandomNumberGenerator()
    for flip in 0..<flips {
        let route = "route-\(Int.random(in: 0..<routes, using: &generator))"
        started = ContinuousClock.now
        let revision = try await writer.commit(
            ChangeAuthor(author: "probe", reason: "flip \(flip)", action: "flip"),
            expectRevision: nil
        ) { configuration in
            guard let index = configuration.routes.firstIndex(where: { $0.name == route }) else { return }
            let current = configuration.routes[index].defaultUpstream
            configuration.routes[index].defaultUpstream = current == "legacy" ? "modern" : "legacy"
        }
        let commit = ContinuousClock.now - started
        let before = storage
        storage = try await writer.revisionStorage(revision.number)
        started = ContinuousClock.now
        guard let latest = try await reader.latest(), latest.number == revision.number else {
            throw StoreError.rejected("the reader did not see revision \(revision.number)")
        }
        let read = ContinuousClock.now - started
        started = ContinuousClock.now
        let problems = latest.configuration.validate(unchangedSince: table.configuration)
        let validate = ContinuousClock.now - started
        guard problems.isEmpty else {
            throw ConfigurationInvalid(errors: problems)
        }
        started = ContinuousClock.now
        // As a proxy applies it (FicusRuntime's StoreFeed): against the table it serves.
        table = try RoutingTable(configuration: latest.configuration, revision: latest.number, previous: table)
        let compile = ContinuousClock.now - started
        guard table.configuration == revision.configuration else {
            throw StoreError.rejected("revision \(revision.number) read back differently")
        }
        emit("flip \(flip) revision \(revision.number) commit_ms \(milliseconds(commit)) read_ms \(milliseconds(read)) "
            + "validate_ms \(milliseconds(validate)) compile_ms \(milliseconds(compile)) new_object_bytes \(storage.objectBytes - before.objectBytes) "
            + "layout_bytes \(storage.layoutBytes) checkpoint \(storage.checkpoint == revision.number ? 1 : 0)")
    }
    await writer.close()
    await reader.close()
}

func milliseconds(_ duration: Duration) -> String {
    let (seconds, attoseconds) = duration.components
    return String(format: "%.3f", Double(seconds) * 1000 + Double(attoseconds) / 1e15)
}
