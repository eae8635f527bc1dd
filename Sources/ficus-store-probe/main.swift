// A second process for FicusStore's tests: commits to or watches a store file that the test process also uses.
//
// Usage:
//   ficus-store-probe commit PATH PREFIX COUNT [START]
//                                                 adds COUNT flags PREFIX-0…, one revision each, from the Unix time
//                                                 START on (so that two probes really overlap); prints
//                                                 "committed NAME" or "busy NAME" per attempt
//   ficus-store-probe watch PATH REVISION SECONDS prints "seen N" and exits 0 once revision N >= REVISION is
//                                                 reported, or exits 1 after SECONDS
//   ficus-store-probe telemetry STORE BATCHES SIZE
//                                                 writes BATCHES batches of SIZE shadow records (half of them
//                                                 differing, as samples) to STORE (a path or postgres://…) the way a
//                                                 proxy's comparer does, and prints the records per second it took
//                                                 (docs/BENCHMARKS.md, "Fleet")
//   ficus-store-probe revisions STORE ROUTES FLIPS
//                                                 commits ROUTES routes × 10 rules to a new STORE, then FLIPS flips of
//                                                 one route each; prints per flip the commit time, what it stored
//                                                 (layout and new object bytes) and what a second store instance (a
//                                                 proxy's reader, cache warm) takes to read it and compile the routing
//                                                 table (docs/BENCHMARKS.md, "Revisions")
import FicusCore
import FicusDiff
import FicusStore
import Foundation

/// Writes one line to standard output at once, so the parent reads progress as it happens.
func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// Prints the usage to standard error and exits 2.
func usage() -> Never {
    let text =
        "usage: ficus-store-probe commit PATH PREFIX COUNT | watch PATH REVISION SECONDS | telemetry STORE BATCHES SIZE\n"
    FileHandle.standardError.write(Data(text.utf8))
    exit(2)
}

let arguments = CommandLine.arguments
guard arguments.count == 5 || arguments.count == 6 else {
    usage()
}
if arguments[1] == "revisions" {
    guard let routes = Int(arguments[3]), let flips = Int(arguments[4]), routes > 0, flips > 0 else {
        usage()
    }
    do {
        try await probeRevisions(store: arguments[2], routes: routes, flips: flips)
        exit(0)
    } catch {
        FileHandle.standardError.write(Data("ficus-store-probe: \(error)\n".utf8))
        exit(3)
    }
}
if arguments[1] == "telemetry" {
    guard let batches = Int(arguments[3]), let size = Int(arguments[4]), batches > 0, size > 0 else {
        usage()
    }
    do {
        let store = try await StoreFactory.open(try StoreLocation(parsing: arguments[2]), creating: true)
        let difference = Difference(path: "$.amount", kind: .typeChanged, serving: "100", shadow: "\"100\"")
        let started = Date()
        for batch in 0..<batches {
            let records = (0..<size).map { index in
                let endpoint = "GET /orders/{id}/item\(index % 20)"
                return ShadowRecord(
                    timestamp: Int64(Date().timeIntervalSince1970 * 1_000_000), route: "orders", endpoint: endpoint,
                    method: "GET", target: "/orders/\(batch)/item\(index % 20)", servingUpstream: "legacy",
                    shadowUpstream: "orders-v2", servingStatus: 200, shadowStatus: 200,
                    servingLatencyMicroseconds: 900 + index, shadowLatencyMicroseconds: 1_100 + index, shadowError: nil,
                    differences: index % 2 == 0 ? [difference] : [], noiseDifferences: nil,
                    requestHeaders: [ShadowRecord.Field(name: "Accept", value: "application/json")], requestBody: [],
                    servingHeaders: [ShadowRecord.Field(name: "Content-Type", value: "application/json")],
                    servingBody: Array(#"{"id":7,"amount":100}"#.utf8), servingTruncated: false,
                    shadowHeaders: [ShadowRecord.Field(name: "Content-Type", value: "application/json")],
                    shadowBody: Array(#"{"id":7,"amount":"100"}"#.utf8), shadowTruncated: false)
            }
            try await store.appendShadowRecords(records)
        }
        let seconds = Date().timeIntervalSince(started)
        let drops = store.telemetryDrops
        emit(
            "records \(batches * size) seconds \(String(format: "%.3f", seconds)) per_second "
                + "\(Int(Double(batches * size) / seconds)) dropped \(drops.records)")
        await store.close()
        exit(drops.records == 0 ? 0 : 1)
    } catch {
        FileHandle.standardError.write(Data("ficus-store-probe: \(error)\n".utf8))
        exit(3)
    }
}
do {
    let store = try SQLiteConfigurationStore(path: arguments[2])
    switch arguments[1] {
    case "commit":
        guard let count = Int(arguments[4]) else {
            usage()
        }
        if arguments.count == 6, let start = Double(arguments[5]) {
            let wait = start - Date().timeIntervalSince1970
            if wait > 0 {
                try await Task.sleep(for: .milliseconds(Int(wait * 1000)))
            }
        }
        for index in 0..<count {
            let name = "\(arguments[3])-\(index)"
            do {
                try await store.commit(
                    ChangeAuthor(author: "probe", reason: "cross-process test", action: "flag.add"),
                    expectRevision: nil
                ) { configuration in
                    configuration.flags.append(Flag(name: name))
                }
                emit("committed \(name)")
            } catch StoreError.busy {
                emit("busy \(name)")
            }
        }
        exit(0)
    case "watch":
        guard let wanted = Int(arguments[3]), let seconds = Double(arguments[4]) else {
            usage()
        }
        emit("watching")
        let watching = Task {
            for await event in store.watch(pollInterval: 0.005) {
                if case .revision(let revision) = event, revision.number >= wanted {
                    emit("seen \(revision.number)")
                    exit(0)
                }
            }
        }
        try await Task.sleep(for: .seconds(seconds))
        watching.cancel()
        emit("timeout")
        exit(1)
    default:
        usage()
    }
} catch {
    FileHandle.standardError.write(Data("ficus-store-probe: \(error)\n".utf8))
    exit(3)
}
