import FicusCore

/// Picks one address of an upstream for a request: round robin (smooth weighted when weights differ) or least request
/// by power of two choices (docs/PROXY.md, "Load balancing").
///
/// Pure and per event loop (held by the pool's state machine for each upstream): its counters, and the requests in
/// flight least request compares, are this loop's, so that picking takes no lock. Addresses out of rotation are
/// passed as `eligible` and skipped. The random choices come from a seeded generator, so tests replay them.
struct Balancer {
    /// The algorithm.
    var policy: BalancePolicy
    /// Round robin's position: the next address to consider.
    private var next = 0
    /// Smooth weighted round robin's running weights (nginx), one per address; rebuilt when the addresses change.
    private var current: [Int] = []
    /// Least request's draws.
    private var random: SplitMix64

    /// A balancer for `policy`; `seed` fixes least request's draws (a random one per event loop in production).
    init(policy: BalancePolicy, seed: UInt64 = 0x9E37_79B9_7F4A_7C15) {
        self.policy = policy
        self.random = SplitMix64(seed: seed)
    }

    /// The addresses changed: round robin starts over.
    mutating func reset() {
        self.next = 0
        self.current = []
    }

    /// The index of the address to use among `count`, or nil when none is eligible.
    ///
    /// `weight(i)` is the address's weight (≥ 1), `active(i)` its requests in flight on this loop, `eligible(i)`
    /// whether it may be picked now.
    mutating func pick(
        count: Int,
        weighted: Bool,
        weight: (Int) -> Int,
        active: (Int) -> Int,
        eligible: (Int) -> Bool
    ) -> Int? {
        guard count > 0 else { return nil }
        switch self.policy {
        case .roundRobin:
            return weighted
                ? self.smoothWeighted(count: count, weight: weight, eligible: eligible)
                : self.roundRobin(count: count, eligible: eligible)
        case .leastRequest:
            return self.powerOfTwo(count: count, weight: weight, active: active, eligible: eligible)
        }
    }

    /// The first eligible address from the current position on; the position moves past it.
    private mutating func roundRobin(count: Int, eligible: (Int) -> Bool) -> Int? {
        let start = self.next % count
        for step in 0..<count {
            let index = (start + step) % count
            if eligible(index) {
                self.next = index &+ 1
                return index
            }
        }
        return nil
    }

    /// nginx's smooth weighted round robin: every eligible address gains its weight, the heaviest is picked and
    /// loses the total. Weights 5, 1, 1 give a a b a c a a rather than a a a a a b c.
    private mutating func smoothWeighted(count: Int, weight: (Int) -> Int, eligible: (Int) -> Bool) -> Int? {
        if self.current.count != count { self.current = [Int](repeating: 0, count: count) }
        var total = 0
        var best: Int?
        for index in 0..<count where eligible(index) {
            let w = weight(index)
            self.current[index] += w
            total += w
            if best == nil || self.current[index] > self.current[best!] { best = index }
        }
        guard let best else { return nil }
        self.current[best] -= total
        return best
    }

    /// Envoy's least request: two eligible addresses at random, the one with fewer requests in flight per unit of
    /// weight wins (ties: the first drawn). With one eligible address it is that one.
    private mutating func powerOfTwo(
        count: Int, weight: (Int) -> Int, active: (Int) -> Int, eligible: (Int) -> Bool
    ) -> Int? {
        var eligibleCount = 0
        for index in 0..<count where eligible(index) { eligibleCount += 1 }
        guard eligibleCount > 0 else { return nil }
        let first = self.nth(Int(self.random.next() % UInt64(eligibleCount)), count: count, eligible: eligible)
        guard eligibleCount > 1 else { return first }
        var draw = Int(self.random.next() % UInt64(eligibleCount - 1))
        let firstRank = self.rank(of: first, eligible: eligible)
        if draw >= firstRank { draw += 1 }
        let second = self.nth(draw, count: count, eligible: eligible)
        // (active + 1) / weight compared without division.
        let firstLoad = (active(first) + 1) * weight(second)
        let secondLoad = (active(second) + 1) * weight(first)
        return secondLoad < firstLoad ? second : first
    }

    /// The index of the `n`th (from 0) eligible address.
    private func nth(_ n: Int, count: Int, eligible: (Int) -> Bool) -> Int {
        var seen = 0
        for index in 0..<count where eligible(index) {
            if seen == n { return index }
            seen += 1
        }
        return 0
    }

    /// How many eligible addresses come before `index`.
    private func rank(of index: Int, eligible: (Int) -> Bool) -> Int {
        var rank = 0
        for other in 0..<index where eligible(other) { rank += 1 }
        return rank
    }
}

/// A small, fast, seedable random number generator (SplitMix64), for the balancer's draws.
///
/// Not for anything secret: it only spreads requests, and a fixed seed makes tests repeatable.
struct SplitMix64: RandomNumberGenerator {
    /// The generator's whole state: 64 bits, advanced by a constant per draw.
    private var state: UInt64

    /// A generator whose draws are fixed by `seed`.
    init(seed: UInt64) {
        self.state = seed
    }

    /// The next 64 random bits.
    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
