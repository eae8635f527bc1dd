import FicusDiff
import NIOConcurrencyHelpers

/// Draws which shadowed safe requests are sent a second time to the serving side, to learn noise.
///
/// Per request, independent of who sends it and of its URL: the first `floor` candidates of every endpoint (route,
/// method and path template, as reports group them) are always drawn, so that an endpoint with one URL and one
/// client learns its noise as surely as a busy one; past the floor, each candidate is drawn with the route's noise
/// percentage. The counts are per proxy and bounded in the number of endpoints they track (beyond it, new endpoints
/// get the percentage only), so a client that invents paths cannot grow them.
final class NoiseSampler: Sendable {
    private struct State {
        var counts: [String: Int] = [:]
        var random: UInt64
    }

    let floor: Int
    let maxEndpoints: Int
    private let state: NIOLockedValueBox<State>

    init(floor: Int, maxEndpoints: Int = 10_000) {
        self.floor = floor
        self.maxEndpoints = maxEndpoints
        var generator = SystemRandomNumberGenerator()
        self.state = NIOLockedValueBox(State(random: generator.next() | 1))
    }

    /// Whether this request of `route` is a noise sample; `percent` (0–100) applies once the endpoint's floor is met.
    func draw(route: String, method: String, path: String, percent: Double) -> Bool {
        let endpoint = route + " " + method + " " + EndpointTemplate.template(path: path)
        return self.state.withLockedValue { state -> Bool in
            if let count = state.counts[endpoint] {
                if count < self.floor {
                    state.counts[endpoint] = count + 1
                    return true
                }
            } else if state.counts.count < self.maxEndpoints {
                state.counts[endpoint] = 1
                if self.floor > 0 { return true }
            }
            // xorshift64*: a cheap, well-spread draw; the system generator is a system call per number.
            state.random ^= state.random >> 12
            state.random ^= state.random << 25
            state.random ^= state.random >> 27
            let value = state.random &* 2_685_821_657_736_338_717
            return Double(value >> 11) / Double(1 << 53) * 100 < percent
        }
    }
}
