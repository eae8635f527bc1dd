import FicusDiff
import Foundation

/// What a report covers and how strictly it judges; built once by the caller.
///
/// The CLI turns its flags into this; tests build it directly. Defaults fit a first look at a route.
public struct ReportOptions: Sendable, Equatable {
    /// Only this route, or every route when nil.
    public var route: String?
    /// The start of the window, inclusive; nil for everything stored.
    public var from: Date?
    /// The end of the window, exclusive; nil for everything stored.
    public var to: Date?
    /// What separates regressions from noise. Defaults to Diffy's thresholds.
    public var thresholds: NoiseThresholds
    /// Noise samples an endpoint needs before a field never seen in noise counts as a regression; until then it is
    /// `unconfirmed`. Defaults to 20, the proxy's noise floor (`ficus serve --noise-floor`).
    public var noiseFloor: Int
    /// The fewest compared requests for a `ready` verdict. Defaults to 30.
    ///
    /// Thirty identical answers are weak evidence already; fewer are none.
    public var minRequests: Int
    /// Samples shown per differing field. Defaults to 5.
    public var samplesPerField: Int
    /// Differing fields per endpoint that get samples, regressions first. Defaults to 10.
    ///
    /// An endpoint whose every field changed would otherwise put hundreds of bodies into one report.
    public var sampledFieldsPerEndpoint: Int
    /// The most characters of a body a sample shows. Defaults to 8,000.
    public var maxBodyCharacters: Int
    /// The most points of the timeline; the bucket widens to stay under it. Defaults to 120.
    public var maxTimelinePoints: Int
    /// Audit entries per route. Defaults to 50.
    public var maxChangesPerRoute: Int

    public init(
        route: String? = nil,
        from: Date? = nil,
        to: Date? = nil,
        thresholds: NoiseThresholds = NoiseThresholds(),
        minRequests: Int = 30,
        samplesPerField: Int = 5,
        sampledFieldsPerEndpoint: Int = 10,
        maxBodyCharacters: Int = 8_000,
        maxTimelinePoints: Int = 120,
        maxChangesPerRoute: Int = 50,
        noiseFloor: Int = 20
    ) {
        self.noiseFloor = noiseFloor
        self.route = route
        self.from = from
        self.to = to
        self.thresholds = thresholds
        self.minRequests = minRequests
        self.samplesPerField = samplesPerField
        self.sampledFieldsPerEndpoint = sampledFieldsPerEndpoint
        self.maxBodyCharacters = maxBodyCharacters
        self.maxTimelinePoints = maxTimelinePoints
        self.maxChangesPerRoute = maxChangesPerRoute
    }
}
