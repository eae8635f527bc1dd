import Testing

@testable import ficus

@Suite struct WindowPaceTests {
    /// Four windows per (shortest) canary interval while canaries run, never slower than configured, never under
    /// a quarter second.
    @Test func windowsKeepPaceWithCanaries() {
        #expect(WindowPace.interval(configured: 10, canaryIntervals: []) == 10)
        #expect(WindowPace.interval(configured: 10, canaryIntervals: [3]) == 0.75)
        #expect(WindowPace.interval(configured: 10, canaryIntervals: [120, 8]) == 2)
        #expect(WindowPace.interval(configured: 1, canaryIntervals: [120]) == 1)
        #expect(WindowPace.interval(configured: 10, canaryIntervals: [0.5]) == 0.25)
    }
}
