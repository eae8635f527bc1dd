import NIOConcurrencyHelpers

/// The shadow side's memory budget: bytes of captured bodies held by copies in flight and waiting to be sent.
///
/// The in-flight count alone does not bound memory: a thousand copies of 1 MiB answers is a gigabyte. Every capture
/// (the request body, the serving answer, each shadow answer) reserves its bytes here before holding them; a copy
/// whose capture is refused is dropped whole and counted (`ficus_shadow_dropped_total{reason="memory"}`), never
/// compared on a partial body. The bytes come back when the copy's observation is handed to the comparer or the
/// copy is abandoned.
final class ShadowMemory: Sendable {
    let limit: Int
    private let used = NIOLockedValueBox(0)

    init(limit: Int) {
        self.limit = limit
    }

    /// Takes `bytes` from the budget; false (and nothing taken) when that would pass the limit.
    func reserve(_ bytes: Int) -> Bool {
        guard bytes > 0 else { return true }
        return self.used.withLockedValue { used in
            guard bytes <= self.limit - used else { return false }
            used += bytes
            return true
        }
    }

    /// Gives `bytes` back.
    func release(_ bytes: Int) {
        guard bytes > 0 else { return }
        self.used.withLockedValue { $0 -= bytes }
    }

    /// Bytes held right now (tests, metrics).
    var inUse: Int { self.used.withLockedValue { $0 } }
}
