import Testing

@testable import FicusDiff

@Suite("Noise thresholds")
struct NoiseFilterThresholdTests {
    @Test(arguments: [
        // raw, noise, endpoint total, regression?
        (10, 0, 100, true),
        (0, 0, 100, false),
        (5, 5, 100, false),
        (4, 5, 100, false),
        // Relative boundary: |6 − 4| / 10 = 0.20 exactly is not above 20%; 0.2075 is.
        (6, 4, 100, false),
        (3, 2, 100, false),
        (61, 40, 1000, true),
        // Absolute boundary: 3 / 10,000 = 0.0003 exactly is not above 0.03%; 3 / 9,999 is.
        (3, 0, 10_000, false),
        (3, 0, 9_999, true),
        (1_000, 1_000, 1_000_000, false),
        (1, 0, 0, true),
    ])
    func diffysRule(raw: Int, noise: Int, total: Int, regression: Bool) {
        let counts = FieldCounts(raw: raw, noise: noise)
        #expect(NoiseFilter.isRegression(counts, endpointTotal: total, thresholds: NoiseThresholds()) == regression)
    }

    @Test func thresholdsAreConfigurable() {
        let counts = FieldCounts(raw: 6, noise: 4)
        #expect(!NoiseFilter.isRegression(counts, endpointTotal: 100, thresholds: NoiseThresholds()))
        #expect(NoiseFilter.isRegression(counts, endpointTotal: 100, thresholds: NoiseThresholds(relative: 0.1)))
        #expect(
            !NoiseFilter.isRegression(
                counts,
                endpointTotal: 100,
                thresholds: NoiseThresholds(relative: 0.1, absolute: 0.02)
            )
        )
        #expect(NoiseThresholds() == NoiseThresholds(relative: 0.20, absolute: 0.0003))
    }

    @Test func aRandomFieldIsNoiseAndAPlantedChangeIsNot() {
        // 1,000 compared requests; a request id differs on every call on both sides; a type change only against the
        // shadow.
        let total = 1_000
        #expect(
            !NoiseFilter.isRegression(
                FieldCounts(raw: 1_000, noise: 1_000),
                endpointTotal: total,
                thresholds: NoiseThresholds()
            )
        )
        #expect(
            NoiseFilter.isRegression(
                FieldCounts(raw: 1_000, noise: 0),
                endpointTotal: total,
                thresholds: NoiseThresholds()
            )
        )
    }
}
