import CoreMetrics
import NIOConcurrencyHelpers

/// Counters created once per label and dimension values, for counting from any thread.
///
/// Creating a counter is a registry lookup under the factory's lock, so each one is created on first use and kept;
/// the key holds the values as they are, so a lookup joins no strings.
final class CounterCache: Sendable {
    private struct Key: Hashable {
        var label: String
        var values: [String]
    }

    private let factory: MetricsFactory
    private let counters = NIOLockedValueBox<[Key: Counter]>([:])

    init(factory: MetricsFactory) {
        self.factory = factory
    }

    /// The counter for `label` and `dimensions`, created on first use.
    func counter(_ label: String, _ dimensions: [(String, String)]) -> Counter {
        let key = Key(label: label, values: dimensions.map(\.1))
        return self.counters.withLockedValue { cache in
            if let cached = cache[key] { return cached }
            let created = Counter(label: label, dimensions: dimensions, factory: self.factory)
            cache[key] = created
            return created
        }
    }
}
