import FicusDiff

extension FuzzTargets {
    /// The JSON parser and the structural diff, on two documents cut from the input at its first 0xFF byte (a byte
    /// that valid UTF-8, hence valid JSON, never holds) or at its middle.
    ///
    /// Invariants: a parsed document serializes to bytes that parse back to an equal value; an answer compared with
    /// itself has no difference; two bodies whose documents are equal have no body difference, and two whose
    /// documents differ have at least one; the number kept never passes the configured cap.
    public static func jsonDiff(_ data: [UInt8]) {
        let cut = data.firstIndex(of: 0xFF) ?? data.count / 2
        let left = Array(data[..<cut])
        let right = Array(data[min(data.count, cut + (cut < data.count && data[cut] == 0xFF ? 1 : 0))...])
        let parsedLeft = Self.roundTrip(left)
        let parsedRight = Self.roundTrip(right)

        let headers = [("content-type", "application/json")]
        let serving = CapturedMessage(status: 200, headers: headers, body: left)
        let shadow = CapturedMessage(status: 200, headers: headers, body: right)
        let options = CompareOptions(maxBodyDifferences: 20)
        let same = ResponseComparer.compare(serving: serving, shadow: serving, options: options)
        invariant(same.identical, "an answer differs from itself: \(same.differences)")

        let compared = ResponseComparer.compare(serving: serving, shadow: shadow, options: options)
        invariant(compared.differences.count <= 20 + 8, "\(compared.differences.count) differences kept past the cap")
        if let parsedLeft, let parsedRight {
            let bodyDifferences = compared.differences.filter { $0.path != "status" && !$0.path.hasPrefix("header:") }
            if parsedLeft == parsedRight {
                invariant(
                    bodyDifferences.isEmpty && compared.omittedDifferences == 0,
                    "equal documents differ: \(bodyDifferences)"
                )
            } else {
                invariant(
                    !bodyDifferences.isEmpty || compared.omittedDifferences > 0,
                    "different documents compare equal: \(parsedLeft.rendered()) / \(parsedRight.rendered())"
                )
            }
        }
    }

    /// The document in `bytes` if it parses, after checking that its serialization parses back to it.
    private static func roundTrip(_ bytes: [UInt8]) -> JSONValue? {
        guard let value = try? JSONValue.parse(bytes) else {
            return nil
        }
        let serialized = value.serialized()
        guard let again = try? JSONValue.parse(serialized) else {
            invariant(false, "a serialized document does not parse: \(String(decoding: serialized, as: UTF8.self))")
            return nil
        }
        invariant(again == value, "a document changed in a round trip: \(String(decoding: serialized, as: UTF8.self))")
        return value
    }

    /// Endpoint templating of arbitrary text.
    ///
    /// Invariants: templating is idempotent (`{id}` is never an id), drops query and fragment, keeps the number of
    /// segments, and a path that starts with `/` keeps that start. Every check is on UTF-8 bytes, as the request
    /// target is cut: a `?` followed by a combining mark is one `Character` that is not `"?"`, yet its byte still
    /// starts the query.
    public static func endpointTemplate(_ data: [UInt8]) {
        let path = String(decoding: data, as: UTF8.self)
        let template = EndpointTemplate.template(path: path)
        invariant(EndpointTemplate.template(path: template) == template, "not idempotent: \(path) → \(template)")
        let question = UInt8(ascii: "?")
        let hash = UInt8(ascii: "#")
        let slash = UInt8(ascii: "/")
        invariant(
            !template.utf8.contains(question) && !template.utf8.contains(hash),
            "query or fragment kept: \(path) → \(template)"
        )
        if path.utf8.first == slash {
            invariant(template.utf8.first == slash, "lost its leading slash: \(path) → \(template)")
            let pathPart = path.utf8.prefix { $0 != question && $0 != hash }
            invariant(
                template.utf8.count(where: { $0 == slash }) == pathPart.count(where: { $0 == slash }),
                "segments changed: \(path) → \(template)"
            )
        }
        invariant(!EndpointTemplate.isIdentifier(Substring(EndpointTemplate.placeholder)), "the placeholder is an id")
    }
}
