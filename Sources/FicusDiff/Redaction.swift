/// Replacement of sensitive header values and JSON fields by a marker before anything is stored.
///
/// Shadow records keep real traffic for days; credentials and personal fields in them would turn a debugging aid
/// into a liability. The comparison itself runs on the unredacted answers, so a changed secret is still reported.
public enum Redaction {
    /// `headers` with the value of every sensitive header (matched case-insensitively) replaced by the marker.
    ///
    /// Names, order and repetitions are kept, so the stored headers still show which credentials were sent.
    public static func redactHeaders(_ headers: [(String, String)], options: CompareOptions) -> [(String, String)] {
        let sensitive = options.effectiveSensitiveHeaders
        return headers.map { name, value in
            sensitive.contains(name.lowercased()) ? (name, options.redactionMarker) : (name, value)
        }
    }

    /// `target` (path and query) with every query parameter's value replaced by the marker when the options say so;
    /// the path and the parameter names are kept.
    public static func redactTarget(_ target: String, options: CompareOptions) -> String {
        guard options.redactQuery, let question = target.firstIndex(of: "?") else { return target }
        let query = target[target.index(after: question)...]
        guard !query.isEmpty else { return target }
        let parameters = query.split(separator: "&", omittingEmptySubsequences: false).map { parameter -> String in
            guard !parameter.isEmpty else { return "" }
            let name = parameter.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)[0]
            return name + "=" + options.redactionMarker
        }
        return target[...question] + parameters.joined(separator: "&")
    }

    /// A JSON body with every sensitive path's value replaced by the marker (as a JSON string); other bodies
    /// unchanged.
    ///
    /// A body without sensitive matches is returned byte for byte. A body that is declared or looks like JSON but
    /// does not parse (typically a truncated one) cannot be redacted field by field, so while sensitive paths are
    /// configured it is replaced by the marker as a whole rather than stored with its secrets.
    public static func redactBody(_ body: [UInt8], contentType: String?, options: CompareOptions) -> [UInt8] {
        let matcher = options.sensitivePathMatcher
        guard !matcher.isEmpty, !body.isEmpty else {
            return body
        }
        guard MediaType.isJSON(contentType) || MediaType.looksLikeJSON(body) else {
            return body
        }
        guard let value = try? JSONValue.parse(body) else {
            return Array(options.redactionMarker.utf8)
        }
        let root = matcher.root
        if root.matched {
            return JSONValue.string(options.redactionMarker).serialized()
        }
        var changed = false
        let redacted = value.transformed(by: matcher, from: root) { _ in
            changed = true
            return .string(options.redactionMarker)
        }
        return changed ? redacted.serialized() : body
    }

    /// `message` ready to be stored: sensitive headers and JSON fields replaced by the marker.
    ///
    /// A gzip or deflate body with sensitive fields is stored decoded (and without its `Content-Encoding` header),
    /// since redacting inside the compressed bytes is impossible; its `bodyLength` and `bodyHash` still describe the
    /// wire body. An encoded body that cannot be decoded is handled like an unparseable JSON body.
    public static func redact(_ message: CapturedMessage, options: CompareOptions) -> CapturedMessage {
        var redacted = message
        redacted.headers = Redaction.redactHeaders(message.headers, options: options)
        guard !options.sensitivePaths.isEmpty, !message.body.isEmpty else {
            return redacted
        }
        let contentType = message.headerValue("content-type")
        if message.truncated {
            redacted.body = Redaction.redactBody(message.body, contentType: contentType, options: options)
            return redacted
        }
        let decoded = ContentDecoding.decode(
            message.body,
            contentEncoding: message.headerValue("content-encoding"),
            maxSize: options.maxDecodedBodyBytes
        )
        switch decoded {
        case .identity(let bytes):
            redacted.body = Redaction.redactBody(bytes, contentType: contentType, options: options)
        case .decoded(let bytes):
            let body = Redaction.redactBody(bytes, contentType: contentType, options: options)
            if body != bytes {
                redacted.body = body
                redacted.headers.removeAll { $0.0.lowercased() == "content-encoding" }
            }
        case .undecodable:
            if MediaType.isJSON(contentType) {
                redacted.body = Array(options.redactionMarker.utf8)
            }
        }
        return redacted
    }
}
