/// What kind of difference a comparison found.
///
/// Reports, noise counts and metrics are keyed by kind, so the raw values are stable names that are stored.
public enum DifferenceKind: String, Sendable, Codable, CaseIterable {
    /// Same JSON type, other value.
    case valueChanged = "value_changed"
    /// Other JSON type, as in the seed incident `100` → `"100"`.
    case typeChanged = "type_changed"
    /// A field the serving side has and the shadow lacks.
    case missing
    /// A field the shadow has and the serving side lacks.
    case extra
    /// Arrays of different lengths.
    case arrayLength = "array_length"
    /// Arrays with the same elements in another order.
    case arrayOrder = "array_order"
    /// Different status codes.
    case status
    /// A header that differs, is missing or is extra.
    case header
    /// Non-JSON bodies (text, binary, truncated or undecodable) that differ.
    case body
}

/// One classified difference between the serving and the shadow answer.
///
/// It is what gets stored and reported, so it carries only short rendered values, already redacted.
public struct Difference: Sendable, Codable, Hashable {
    /// Where the difference is: `status`, `header:content-type`, `$` for a whole body, or a JSON path such as
    /// `$.items[2].sku` (keys that are not plain identifiers are quoted: `$['a b']`).
    public var path: String

    /// What kind of difference it is.
    public var kind: DifferenceKind

    /// The serving side's value, rendered short (at most about 200 characters) and redacted when sensitive; `nil`
    /// when the serving side has none.
    ///
    /// JSON values are rendered as compact JSON (`100` versus `"100"`), array lengths as the element count, text
    /// bodies as the first differing line (`line 3: …`), other bodies as size and hash.
    public var serving: String?

    /// The shadow's value, rendered like `serving`; `nil` when the shadow has none.
    public var shadow: String?

    /// Creates a difference.
    ///
    /// The comparer builds these; tests and stores may too.
    public init(path: String, kind: DifferenceKind, serving: String? = nil, shadow: String? = nil) {
        self.path = path
        self.kind = kind
        self.serving = serving
        self.shadow = shadow
    }

    /// The path with every array index replaced by `[*]`: `$.items[2].sku` → `$.items[*].sku`.
    ///
    /// Noise is learnt per field, and the same field in another array element is the same field; counting
    /// `$.items[2].sku` and `$.items[3].sku` apart would spread one noisy field over many counters.
    public var fieldPath: String {
        JSONPath.generalizingIndices(self.path)
    }
}
