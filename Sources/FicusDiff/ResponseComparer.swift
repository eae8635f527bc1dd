/// Compares the serving answer with the shadow answer and classifies every difference.
///
/// Pure and synchronous so that it runs off the hot path on any thread and is tested as a plain function call; the
/// proxy hands it two captured messages and stores what comes back.
public enum ResponseComparer {
    /// The differences between `serving` and `shadow`: status, headers, then body.
    ///
    /// When the statuses differ, that is the one difference: a 404 beside a 200 is not also `$.id missing`,
    /// `$.items missing` and a dozen header differences, which would bury the verdict under consequences of it. The
    /// bodies stay in the record as a sample, undiffed. Rendered values are already redacted per `options`, so the
    /// result can be stored as it is.
    public static func compare(
        serving: CapturedMessage,
        shadow: CapturedMessage,
        options: CompareOptions = CompareOptions()
    ) -> Comparison {
        var differences: [Difference] = []
        if !options.ignoresStatus, serving.status != shadow.status {
            let status = Difference(
                path: "status",
                kind: .status,
                serving: String(serving.status),
                shadow: String(shadow.status)
            )
            return Comparison(differences: [status], bodyKind: .empty)
        }
        differences += ResponseComparer.compareHeaders(serving: serving, shadow: shadow, options: options)
        guard options.compareBody else {
            return Comparison(differences: differences, bodyKind: .empty)
        }
        let body = ResponseComparer.compareBodies(serving: serving, shadow: shadow, options: options)
        return Comparison(
            differences: differences + body.differences,
            bodyKind: body.bodyKind,
            textSummary: body.textSummary,
            omittedDifferences: body.omittedDifferences
        )
    }
}
