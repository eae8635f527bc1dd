import FicusDiff
import Foundation
import NIOConcurrencyHelpers

/// How much unwritten telemetry a store on a database server keeps in memory while the server cannot take it.
///
/// A proxy must neither wait for its store nor grow without bound when the store is away: what the server refused
/// for a reason that passes (unreachable, busy) is kept and sent again with the next batch of its kind; beyond these
/// bounds the oldest goes first and is counted in `TelemetryDrops`, as a batch the SQLite telemetry file cannot take.
public struct TelemetryBufferLimits: Sendable, Equatable {
    /// The most shadow records kept; 10,000 by default (the default record retention of the store itself).
    public var maxRecords: Int
    /// The most bytes of headers, bodies and targets those records may hold; 64 MiB by default.
    ///
    /// Records that differ carry both answers' bodies (up to the shadow body bound each), so a count alone would let
    /// a few thousand large answers take gigabytes.
    public var maxRecordBytes: Int
    /// The most metric windows kept; 1,000 by default (an hour and a half of a busy proxy's windows of 10 s over a
    /// handful of route × upstream pairs).
    public var maxWindows: Int
    /// The most shadow drop counts kept (counts of the same minute, endpoint and reason are added up first); 1,000
    /// by default.
    public var maxDropCounts: Int

    public init(
        maxRecords: Int = 10_000,
        maxRecordBytes: Int = 64 << 20,
        maxWindows: Int = 1_000,
        maxDropCounts: Int = 1_000
    ) {
        self.maxRecords = max(0, maxRecords)
        self.maxRecordBytes = max(0, maxRecordBytes)
        self.maxWindows = max(0, maxWindows)
        self.maxDropCounts = max(0, maxDropCounts)
    }
}

/// The telemetry a store could not write yet, oldest first, within `TelemetryBufferLimits`, and what it dropped.
///
/// Each kind has a queue of its own: a write takes the whole queue of its kind together with its new batch
/// (`take…`), and puts back what it could not write (`keep…`); a write that fails for good counts what it carried
/// as dropped (`drop`). Everything happens under one lock and never waits for the store.
final class TelemetryBuffer: Sendable {
    private struct State {
        var records: [ShadowRecord] = []
        var recordBytes = 0
        var windows: [MetricWindow] = []
        var drops: [ShadowDropCount] = []
        var dropped = TelemetryDrops()
    }

    let limits: TelemetryBufferLimits
    private let state = NIOLockedValueBox(State())

    init(limits: TelemetryBufferLimits) {
        self.limits = limits
    }

    /// What was dropped since the store was opened.
    var drops: TelemetryDrops {
        self.state.withLockedValue { $0.dropped }
    }

    /// How many records, windows and drop counts wait for the next write.
    ///
    /// For tests and diagnostics.
    var pending: (records: Int, windows: Int, dropCounts: Int) {
        self.state.withLockedValue { ($0.records.count, $0.windows.count, $0.drops.count) }
    }

    /// The records kept from earlier writes followed by `records`, removed from the buffer.
    func takeRecords(adding records: [ShadowRecord]) -> [ShadowRecord] {
        self.state.withLockedValue { state in
            defer {
                state.records = []
                state.recordBytes = 0
            }
            return state.records + records
        }
    }

    /// The windows kept from earlier writes followed by `windows`, removed from the buffer.
    func takeWindows(adding windows: [MetricWindow]) -> [MetricWindow] {
        self.state.withLockedValue { state in
            defer { state.windows = [] }
            return state.windows + windows
        }
    }

    /// The drop counts kept from earlier writes followed by `drops`, removed from the buffer.
    func takeDrops(adding drops: [ShadowDropCount]) -> [ShadowDropCount] {
        self.state.withLockedValue { state in
            defer { state.drops = [] }
            return state.drops + drops
        }
    }

    /// Puts back records a write could not store, before any kept meanwhile, and drops the oldest beyond the
    /// bounds, counted with `reason`.
    func keep(records: [ShadowRecord], reason: String) {
        self.state.withLockedValue { state in
            state.records = records + state.records
            state.recordBytes = state.records.reduce(0) { $0 + Self.bytes(of: $1) }
            var dropped = 0
            while dropped < state.records.count,
                state.records.count - dropped > self.limits.maxRecords
                    || state.recordBytes > self.limits.maxRecordBytes
            {
                state.recordBytes -= Self.bytes(of: state.records[dropped])
                dropped += 1
            }
            if dropped > 0 {
                state.records.removeFirst(dropped)
                Self.count(&state.dropped, records: dropped, windows: 0, reason: reason)
            }
        }
    }

    /// Puts back windows a write could not store, before any kept meanwhile, and drops the oldest beyond the bound.
    func keep(windows: [MetricWindow], reason: String) {
        self.state.withLockedValue { state in
            state.windows = windows + state.windows
            let excess = state.windows.count - self.limits.maxWindows
            if excess > 0 {
                state.windows.removeFirst(excess)
                Self.count(&state.dropped, records: 0, windows: excess, reason: reason)
            }
        }
    }

    /// Puts back drop counts a write could not store, added up per minute, endpoint and reason, and drops the oldest
    /// beyond the bound.
    ///
    /// Counts add up (`ShadowStore.appendShadowDrops`), so adding them up here loses nothing and keeps the buffer
    /// one entry per minute and reason however long the store is away.
    func keep(drops: [ShadowDropCount], reason: String) {
        self.state.withLockedValue { state in
            var merged: [ShadowDropCount] = []
            var index: [ShadowDropCount: Int] = [:]
            for drop in drops + state.drops {
                var key = drop
                key.count = 0
                if let at = index[key] {
                    merged[at].count += drop.count
                } else {
                    index[key] = merged.count
                    merged.append(drop)
                }
            }
            let excess = merged.count - self.limits.maxDropCounts
            if excess > 0 {
                merged.removeFirst(excess)
                Self.count(&state.dropped, records: 0, windows: 0, reason: reason)
            }
            state.drops = merged
        }
    }

    /// Counts a batch dropped whole: a write the store refused for good.
    func drop(records: Int, windows: Int, reason: String) {
        self.state.withLockedValue { state in
            Self.count(&state.dropped, records: records, windows: windows, reason: reason)
        }
    }

    /// Adds one batch with `records` and `windows` to `dropped`.
    ///
    /// A write after which something had to go counts as one dropped batch, as a whole batch the SQLite telemetry
    /// file cannot take does.
    private static func count(_ dropped: inout TelemetryDrops, records: Int, windows: Int, reason: String) {
        dropped.batches += 1
        dropped.records += records
        dropped.windows += windows
        dropped.lastError = reason
    }

    /// Roughly the memory a record holds: its bodies, headers and target, and a little for the rest.
    ///
    /// Records that are not samples carry no headers or bodies, so they weigh little.
    static func bytes(of record: ShadowRecord) -> Int {
        let headers = (record.requestHeaders + record.servingHeaders + record.shadowHeaders).reduce(0) {
            $0 + $1.name.utf8.count + $1.value.utf8.count
        }
        let differences = (record.differences + (record.noiseDifferences ?? [])).reduce(0) {
            $0 + $1.path.utf8.count + ($1.serving?.utf8.count ?? 0) + ($1.shadow?.utf8.count ?? 0)
        }
        return record.requestBody.count + record.servingBody.count + record.shadowBody.count + headers + differences
            + record.target.utf8.count + 256
    }
}
