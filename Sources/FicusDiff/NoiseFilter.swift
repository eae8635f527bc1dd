/// The thresholds a field's difference counts must pass to be reported as a regression.
///
/// Diffy's defaults: at least 20% more raw than noise differences, and at least 0.03% of the endpoint's traffic.
public struct NoiseThresholds: Sendable, Codable, Equatable {
    /// The least |raw − noise| / (raw + noise) that is reported, exclusive.
    public var relative: Double
    /// The least |raw − noise| / endpoint total that is reported, exclusive.
    public var absolute: Double

    /// Creates thresholds; the defaults are Diffy's.
    public init(relative: Double = 0.20, absolute: Double = 0.0003) {
        self.relative = relative
        self.absolute = absolute
    }
}

/// The difference counts of one field (endpoint, path, kind).
///
/// Raw counts compare the serving side with the shadow; noise counts compare the serving side with a second answer
/// of the same side, so whatever shows up there is not caused by the migration.
public struct FieldCounts: Sendable, Codable, Equatable {
    /// Serving-vs-shadow differences at this field.
    public var raw: Int
    /// Serving-vs-second-serving differences at this field.
    public var noise: Int

    /// Creates counts.
    public init(raw: Int = 0, noise: Int = 0) {
        self.raw = raw
        self.noise = noise
    }
}

/// Diffy's rule for telling regressions from noise.
///
/// A field that also differs between two answers of the old side (a timestamp, a request id) is noise however often
/// it differs; only a field that differs clearly more often against the new side, and often enough to matter for the
/// endpoint, is a regression.
public enum NoiseFilter {
    /// Whether `counts` is a regression: raw > noise, |r − n| / (r + n) > relative, and
    /// |r − n| / endpointTotal > absolute (both thresholds exclusive).
    ///
    /// `endpointTotal` is the number of compared requests of the endpoint; it is taken as at least 1.
    public static func isRegression(
        _ counts: FieldCounts,
        endpointTotal: Int,
        thresholds: NoiseThresholds = NoiseThresholds()
    ) -> Bool {
        guard counts.raw > counts.noise else {
            return false
        }
        let delta = Double(counts.raw - counts.noise)
        let relative = delta / Double(counts.raw + counts.noise)
        let absolute = delta / Double(max(endpointTotal, 1))
        return relative > thresholds.relative && absolute > thresholds.absolute
    }
}
