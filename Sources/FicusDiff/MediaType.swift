/// Classification of bodies by `Content-Type` and by their bytes.
///
/// Upstreams mislabel bodies often enough (JSON as `text/plain`, or no type at all) that the label alone cannot
/// decide how to compare; it is a hint, and the bytes have the last word.
enum MediaType {
    /// The media type of `contentType` without parameters, lower-cased: `application/json; charset=utf-8` →
    /// `application/json`.
    static func essence(_ contentType: String?) -> String? {
        guard let contentType else {
            return nil
        }
        let essence = contentType.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false)[0]
        return String(essence).trimmingHTTPWhitespace().lowercased()
    }

    /// Whether the type is JSON: `application/json`, `text/json`, or any `+json` suffix.
    static func isJSON(_ contentType: String?) -> Bool {
        guard let essence = MediaType.essence(contentType) else {
            return false
        }
        return essence == "application/json" || essence == "text/json" || essence.hasSuffix("+json")
    }

    /// Whether the type is textual: `text/*`, XML, JavaScript or form data.
    static func isText(_ contentType: String?) -> Bool {
        guard let essence = MediaType.essence(contentType) else {
            return false
        }
        return essence.hasPrefix("text/") || essence.hasSuffix("+xml") || essence == "application/xml"
            || essence == "application/javascript" || essence == "application/x-www-form-urlencoded"
    }

    /// Whether the first non-whitespace byte opens a JSON object or array.
    static func looksLikeJSON(_ bytes: [UInt8]) -> Bool {
        let first = bytes.first {
            $0 != 0x20 && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D && $0 != 0xEF && $0 != 0xBB && $0 != 0xBF
        }
        return first == UInt8(ascii: "{") || first == UInt8(ascii: "[")
    }

    /// Whether `bytes` is valid UTF-8.
    static func isUTF8(_ bytes: [UInt8]) -> Bool {
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue:
                continue
            case .emptyInput:
                return true
            case .error:
                return false
            }
        }
    }
}
