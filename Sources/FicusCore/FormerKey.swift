/// The field names that rules files and stored snapshots used before every key became snake_case.
///
/// Five fields were written in camelCase (`setHeaders`, ...) while every other key was snake_case. The model now
/// writes the snake_case name and still reads the old one, so no stored revision and no user's file breaks; the rules
/// loader warns where an old name is used (docs/PROXY.md, "Rules files").
public enum FormerKeys {
    /// Each former name and the name that replaced it.
    public static let renamed: [String: String] = [
        "setHeaders": "set_headers",
        "removeHeaders": "remove_headers",
        "connectMilliseconds": "connect_milliseconds",
        "responseHeaderMilliseconds": "response_header_milliseconds",
        "caseInsensitive": "case_insensitive",
    ]
}

/// A coding key for a former field name, read only when the current name is absent.
struct FormerKey: CodingKey {
    let stringValue: String
    var intValue: Int? { nil }

    init(_ name: String) {
        self.stringValue = name
    }

    init?(stringValue: String) {
        self.stringValue = stringValue
    }

    init?(intValue: Int) {
        nil
    }
}

extension KeyedDecodingContainer {
    /// The value under `key`, or else under its former name `former` in `decoder`, or nil when neither is present.
    ///
    /// Both present is not an error here (the model cannot say where); the rules loader refuses it with a line.
    func decodeIfPresent<Value: Decodable>(
        _ type: Value.Type, forKey key: Key, formerly former: String, in decoder: any Decoder
    ) throws -> Value? {
        if let value = try self.decodeIfPresent(type, forKey: key) {
            return value
        }
        let formerContainer = try decoder.container(keyedBy: FormerKey.self)
        return try formerContainer.decodeIfPresent(type, forKey: FormerKey(former))
    }
}
