import Foundation

/// A latency histogram keyed by bucket upper bound, merged by adding counts and read as interpolated percentiles.
///
/// Shadow aggregates and metric windows store histograms so that minutes and proxies add up; a percentile of a sum
/// of histograms is as good as the buckets, unlike an average of percentiles, which means nothing.
struct LatencyHistogram: Sendable, Equatable {
    /// The upper bounds of the shadow latency buckets, in microseconds: 1-2-5 steps from 100 µs to 60 s, then +inf.
    ///
    /// Fixed, so that every writer's rows add up; the bound is stored with each count, so a later change of the steps
    /// leaves old rows readable.
    static let shadowBounds: [Int] = [
        100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000,
        1_000_000, 2_000_000, 5_000_000, 10_000_000, 20_000_000, 60_000_000,
    ]

    /// The bound stored for the open last bucket.
    ///
    /// `Int.max` rather than NULL, so that it can be part of a primary key and sorts last.
    static let infinity = Int.max

    /// Counts by upper bound, including empty buckets of known bounds (they give the lower edge of the next one).
    var counts: [Int: Int] = [:]

    /// The smallest and largest latency measured, when known.
    ///
    /// They bound the interpolation: a bucket from 1 ms to 2 ms holding only 1.5 ms answers reports 1.5 ms, and the
    /// open last bucket gets an upper edge.
    var minimum: Int?
    var maximum: Int?

    /// An empty histogram with every bound of `bounds` and the open bucket.
    ///
    /// Empty buckets matter for interpolation, see `counts`.
    init(bounds: [Int] = []) {
        for bound in bounds {
            self.counts[bound] = 0
        }
        self.counts[Self.infinity] = 0
    }

    /// The shadow bucket a latency falls in: the first bound at or above it, or `infinity`.
    ///
    /// Bounds are inclusive, as in Prometheus (`le`).
    static func shadowBound(for microseconds: Int) -> Int {
        Self.shadowBounds.first { microseconds <= $0 } ?? Self.infinity
    }

    /// Adds `count` latencies to the bucket with upper bound `bound`.
    ///
    /// The bucket is created when the bound is new, which is how histograms with other bounds merge.
    mutating func add(bound: Int, count: Int) {
        self.counts[bound, default: 0] += count
    }

    /// Widens the known minimum and maximum to include `minimum` and `maximum`.
    ///
    /// Merging minutes takes the smallest minimum and the largest maximum.
    mutating func observe(minimum: Int?, maximum: Int?) {
        if let minimum {
            self.minimum = Swift.min(self.minimum ?? minimum, minimum)
        }
        if let maximum {
            self.maximum = Swift.max(self.maximum ?? maximum, maximum)
        }
    }

    /// The number of latencies in the histogram.
    ///
    /// The sum of every bucket.
    var total: Int {
        self.counts.values.reduce(0, +)
    }

    /// The `quantile` (0...1) latency in microseconds, interpolated linearly within its bucket; 0 when empty.
    ///
    /// Prometheus's `histogram_quantile`, with the bucket clamped to the observed minimum and maximum when known; the
    /// open last bucket without a known maximum answers its lower edge, which is all that is known.
    func percentile(_ quantile: Double) -> Int {
        let total = self.total
        guard total > 0 else {
            return 0
        }
        let rank = Swift.min(Swift.max(quantile, 0), 1) * Double(total)
        var cumulative = 0
        var lower = 0
        for (bound, count) in self.counts.sorted(by: { $0.key < $1.key }) {
            if count > 0, Double(cumulative + count) >= rank {
                var low = Double(lower)
                var high = bound == Self.infinity ? Double(self.maximum ?? lower) : Double(bound)
                if let minimum = self.minimum {
                    low = Swift.max(low, Double(minimum))
                }
                if let maximum = self.maximum {
                    high = Swift.min(high, Double(maximum))
                }
                high = Swift.max(high, low)
                let fraction = Swift.max(rank - Double(cumulative), 0) / Double(count)
                return Int((low + (high - low) * fraction).rounded())
            }
            cumulative += count
            lower = bound
        }
        return self.maximum ?? lower
    }
}
