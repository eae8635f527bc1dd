// A second process for FicusStore's tests: commits to or watches a store file that the test process also uses.
//
// Usage:
//   ficus-store-probe commit PATH PREFIX COUNT [START]
//                                                 adds COUNT flags PREFIX-0…, one revision each, from the Unix time
//                                                 START on (so that two probes really overlap); prints
//                                                 "committed NAME" or "busy NAME" per attempt
//   ficus-store-probe watch PATH REVISION SECONDS prints "seen N" and exits 0 once revision N >= REVISION is
//                                                 reported, or exits 1 after SECONDS
import FicusCore
import FicusStore
import Foundation

/// Writes one line to standard output at once, so the parent reads progress as it happens.
func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// Prints the usage to standard error and exits 2.
func usage() -> Never {
    let text = "usage: ficus-store-probe commit PATH PREFIX COUNT | watch PATH REVISION SECONDS\n"
    FileHandle.standardError.write(Data(text.utf8))
    exit(2)
}

let arguments = CommandLine.arguments
guard arguments.count == 5 || arguments.count == 6 else {
    usage()
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
