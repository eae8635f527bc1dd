import Foundation

/// A JSON Schema checker for the subset docs/report.schema.json uses: `type`, `enum`, `properties`, `required`,
/// `additionalProperties: false`, `items`, `oneOf`, `minimum`, `maximum` and local `$ref`s.
///
/// The test bundle has no schema library; this small checker keeps the documented schema and the encoder honest, and
/// fails loudly on a keyword it does not know rather than passing it by.
struct JSONSchemaChecker {
    let root: [String: Any]

    init(schemaAt url: URL) throws {
        let data = try Data(contentsOf: url)
        guard let root = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw CheckerError.message("the schema is not an object")
        }
        self.root = root
    }

    enum CheckerError: Error, CustomStringConvertible {
        case message(String)

        var description: String {
            switch self {
            case .message(let text): text
            }
        }
    }

    static let known: Set<String> = [
        "$schema", "$id", "title", "description", "$defs", "type", "enum", "properties", "required",
        "additionalProperties", "items", "oneOf", "minimum", "maximum", "format", "$ref",
    ]

    /// Every violation of `value` against the root schema, as "path: problem"; empty when valid.
    func problems(_ value: Any) throws -> [String] {
        var problems: [String] = []
        try self.check(value, against: self.root, at: "$", problems: &problems)
        return problems
    }

    func resolve(_ reference: String) throws -> [String: Any] {
        guard reference.hasPrefix("#/") else {
            throw CheckerError.message("only local references are supported: \(reference)")
        }
        var node: Any = self.root
        for part in reference.dropFirst(2).split(separator: "/") {
            guard let next = (node as? [String: Any])?[String(part)] else {
                throw CheckerError.message("unresolved reference \(reference)")
            }
            node = next
        }
        guard let schema = node as? [String: Any] else {
            throw CheckerError.message("reference \(reference) is not a schema")
        }
        return schema
    }

    static func typeName(_ value: Any) -> String {
        if value is NSNull {
            return "null"
        }
        if let number = value as? NSNumber {
            // JSONSerialization gives booleans as NSNumber with type code "c", integers as "i"/"q", others as "d".
            let code = String(cString: number.objCType)
            if code == "c" {
                return "boolean"
            }
            return code == "d" && number.doubleValue != number.doubleValue.rounded() ? "number" : "integer"
        }
        if value is String {
            return "string"
        }
        if value is [Any] {
            return "array"
        }
        if value is [String: Any] {
            return "object"
        }
        return "unknown"
    }

    func check(_ value: Any, against schema: [String: Any], at path: String, problems: inout [String]) throws {
        for key in schema.keys where !Self.known.contains(key) {
            throw CheckerError.message("unsupported schema keyword '\(key)' at \(path)")
        }
        if let reference = schema["$ref"] as? String {
            try self.check(value, against: try self.resolve(reference), at: path, problems: &problems)
        }
        let actual = Self.typeName(value)
        if let type = schema["type"] {
            let allowed = (type as? [String]) ?? [(type as? String) ?? ""]
            let matches = allowed.contains(actual) || (actual == "integer" && allowed.contains("number"))
            if !matches {
                problems.append("\(path): \(actual), expected \(allowed.joined(separator: " or "))")
                return
            }
        }
        if let options = schema["oneOf"] as? [[String: Any]] {
            var passing = 0
            for option in options {
                var inner: [String] = []
                try self.check(value, against: option, at: path, problems: &inner)
                passing += inner.isEmpty ? 1 : 0
            }
            if passing != 1 {
                problems.append("\(path): matches \(passing) of oneOf's \(options.count) schemas")
            }
        }
        if let values = schema["enum"] as? [Any] {
            let text = "\(value)"
            if !values.contains(where: { "\($0)" == text && Self.typeName($0) == actual }) {
                problems.append("\(path): \(text) is not one of \(values)")
            }
        }
        if let number = value as? NSNumber, actual != "boolean" {
            if let minimum = schema["minimum"] as? Double, number.doubleValue < minimum {
                problems.append("\(path): \(number) < minimum \(minimum)")
            }
            if let maximum = schema["maximum"] as? Double, number.doubleValue > maximum {
                problems.append("\(path): \(number) > maximum \(maximum)")
            }
        }
        if let object = value as? [String: Any] {
            let properties = schema["properties"] as? [String: [String: Any]] ?? [:]
            for key in schema["required"] as? [String] ?? [] where object[key] == nil {
                problems.append("\(path): missing required key '\(key)'")
            }
            for (key, member) in object {
                if let property = properties[key] {
                    try self.check(member, against: property, at: "\(path).\(key)", problems: &problems)
                } else if (schema["additionalProperties"] as? Bool) == false {
                    problems.append("\(path): undocumented key '\(key)'")
                }
            }
        }
        if let array = value as? [Any], let items = schema["items"] as? [String: Any] {
            for (index, element) in array.enumerated() {
                try self.check(element, against: items, at: "\(path)[\(index)]", problems: &problems)
            }
        }
    }
}
