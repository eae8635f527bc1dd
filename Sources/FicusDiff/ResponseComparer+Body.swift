extension ResponseComparer {
    /// The body part of a comparison.
    struct BodyResult {
        var differences: [Difference] = []
        var bodyKind: BodyKind
        var textSummary: String? = nil
        var omittedDifferences = 0
    }

    /// Compares bodies: truncated ones by length and hash, the rest decoded and then as JSON, text or bytes.
    ///
    /// The most specific comparison both sides support wins, so a JSON answer that turned into an HTML error page
    /// is still reported, as text.
    static func compareBodies(
        serving: CapturedMessage,
        shadow: CapturedMessage,
        options: CompareOptions
    ) -> BodyResult {
        if serving.truncated || shadow.truncated {
            return ResponseComparer.compareTruncated(serving: serving, shadow: shadow)
        }
        let servingDecoded = ContentDecoding.decode(
            serving.body,
            contentEncoding: serving.headerValue("content-encoding"),
            maxSize: options.maxDecodedBodyBytes
        )
        let shadowDecoded = ContentDecoding.decode(
            shadow.body,
            contentEncoding: shadow.headerValue("content-encoding"),
            maxSize: options.maxDecodedBodyBytes
        )
        guard let servingBytes = servingDecoded.bytes, let shadowBytes = shadowDecoded.bytes else {
            return ResponseComparer.compareUndecodable(
                serving: (serving, servingDecoded),
                shadow: (shadow, shadowDecoded)
            )
        }
        if servingBytes.isEmpty, shadowBytes.isEmpty {
            return BodyResult(bodyKind: .empty)
        }
        let ignored = options.ignoredPathMatcher
        let servingType = serving.headerValue("content-type")
        let shadowType = shadow.headerValue("content-type")
        let jsonCandidate =
            MediaType.isJSON(servingType) || MediaType.isJSON(shadowType) || MediaType.looksLikeJSON(servingBytes)
            || MediaType.looksLikeJSON(shadowBytes)
        if jsonCandidate, servingBytes == shadowBytes {
            return BodyResult(bodyKind: .json)
        }
        if jsonCandidate, let servingJSON = try? JSONValue.parse(servingBytes),
            let shadowJSON = try? JSONValue.parse(shadowBytes)
        {
            let root = ignored.root
            guard !root.matched else {
                return BodyResult(bodyKind: .json)
            }
            var differ = JSONDiffer(
                sensitive: options.sensitivePathMatcher,
                marker: options.redactionMarker,
                limit: options.maxBodyDifferences
            )
            differ.diff(
                serving: servingJSON.transformed(by: ignored, from: root) { _ in nil },
                shadow: shadowJSON.transformed(by: ignored, from: root) { _ in nil }
            )
            return BodyResult(differences: differ.differences, bodyKind: .json, omittedDifferences: differ.omitted)
        }
        let servingIsText = MediaType.isText(servingType) || MediaType.isUTF8(servingBytes)
        let shadowIsText = MediaType.isText(shadowType) || MediaType.isUTF8(shadowBytes)
        let kind: BodyKind = servingIsText && shadowIsText ? .text : .binary
        if servingBytes == shadowBytes || ignored.root.matched {
            return BodyResult(bodyKind: kind)
        }
        if kind == .text {
            let lines = LineDiff(serving: servingBytes, shadow: shadowBytes)
            return BodyResult(
                differences: [
                    Difference(
                        path: "$",
                        kind: .body,
                        serving: lines.firstDifferingServingLine,
                        shadow: lines.firstDifferingShadowLine
                    )
                ],
                bodyKind: .text,
                textSummary: lines.summary
            )
        }
        return BodyResult(
            differences: [
                Difference(
                    path: "$",
                    kind: .body,
                    serving: ResponseComparer.describeBytes(servingBytes),
                    shadow: ResponseComparer.describeBytes(shadowBytes)
                )
            ],
            bodyKind: .binary
        )
    }

    /// Truncated bodies are equal exactly when their full lengths and full-body hashes are.
    ///
    /// Only a prefix was kept, and a prefix cannot be decoded, parsed or diffed as if it were the whole answer.
    static func compareTruncated(serving: CapturedMessage, shadow: CapturedMessage) -> BodyResult {
        let kind: BodyKind
        let contentType = serving.headerValue("content-type") ?? shadow.headerValue("content-type")
        if MediaType.isJSON(contentType) {
            kind = .json
        } else if MediaType.isText(contentType) {
            kind = .text
        } else {
            kind = .binary
        }
        guard serving.bodyLength != shadow.bodyLength || serving.bodyHash != shadow.bodyHash else {
            return BodyResult(bodyKind: kind)
        }
        return BodyResult(
            differences: [
                Difference(
                    path: "$",
                    kind: .body,
                    serving: ResponseComparer.describeWire(serving),
                    shadow: ResponseComparer.describeWire(shadow)
                )
            ],
            bodyKind: kind
        )
    }

    /// When a side cannot be decoded, the encoded bytes are all there is to compare.
    static func compareUndecodable(
        serving: (message: CapturedMessage, decoded: DecodedBody),
        shadow: (message: CapturedMessage, decoded: DecodedBody)
    ) -> BodyResult {
        guard serving.message.body != shadow.message.body else {
            return BodyResult(bodyKind: .binary)
        }
        return BodyResult(
            differences: [
                Difference(
                    path: "$",
                    kind: .body,
                    serving: ResponseComparer.describe(serving.message, serving.decoded),
                    shadow: ResponseComparer.describe(shadow.message, shadow.decoded)
                )
            ],
            bodyKind: .binary
        )
    }

    private static func describe(_ message: CapturedMessage, _ decoded: DecodedBody) -> String {
        switch decoded {
        case .undecodable(let reason):
            return RenderedText.cut("\(message.body.count) bytes, not decoded: \(reason)")
        case .identity(let bytes), .decoded(let bytes):
            return ResponseComparer.describeBytes(bytes)
        }
    }

    private static func describeWire(_ message: CapturedMessage) -> String {
        let hash = ResponseComparer.hex(message.bodyHash)
        return "\(message.bodyLength) bytes\(message.truncated ? " (truncated)" : ""), fnv1a64 \(hash)"
    }

    private static func describeBytes(_ bytes: [UInt8]) -> String {
        "\(bytes.count) bytes, fnv1a64 \(ResponseComparer.hex(FNV1a64.hash(bytes)))"
    }

    private static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}
