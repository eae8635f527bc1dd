/// A parsed JSON document that keeps numbers exact and object keys in their written order.
///
/// Foundation's decoders turn numbers into `Double` (9007199254740993 becomes 9007199254740992) and forget key
/// order; the diff must see every changed digit, and reports read better in the order the service wrote.
public indirect enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case number(JSONNumber)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    /// The JSON type name used in reports: `null`, `boolean`, `number`, `string`, `array` or `object`.
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .number: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }

    /// Whether both are the same JSON value: numbers by decimal value, strings by exact scalars, objects by key.
    ///
    /// Swift's `String` equality treats canonically equivalent spellings as equal; a JSON consumer does not.
    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null):
            return true
        case (.bool(let left), .bool(let right)):
            return left == right
        case (.number(let left), .number(let right)):
            return left == right
        case (.string(let left), .string(let right)):
            return left.utf8.elementsEqual(right.utf8)
        case (.array(let left), .array(let right)):
            return left == right
        case (.object(let left), .object(let right)):
            return left == right
        default:
            return false
        }
    }

    /// Hashes consistently with `==`.
    public func hash(into hasher: inout Hasher) {
        switch self {
        case .null:
            hasher.combine(0)
        case .bool(let value):
            hasher.combine(1)
            hasher.combine(value)
        case .number(let value):
            hasher.combine(2)
            hasher.combine(value)
        case .string(let value):
            hasher.combine(3)
            for byte in value.utf8 {
                hasher.combine(byte)
            }
        case .array(let values):
            hasher.combine(4)
            hasher.combine(values)
        case .object(let object):
            hasher.combine(5)
            hasher.combine(object)
        }
    }
}

/// A JSON object: members by key, and the order the keys were first written in.
///
/// Duplicate keys keep the last value, as JavaScript consumers do, at the position of the first.
public struct JSONObject: Sendable, Hashable {
    /// The keys in written order, each once.
    public private(set) var keys: [String]

    /// The members by key.
    public private(set) var members: [String: JSONValue]

    /// Creates an empty object.
    public init() {
        self.keys = []
        self.members = [:]
    }

    /// Creates an object from members in order; a repeated key keeps its first position and its last value.
    public init(_ pairs: [(String, JSONValue)]) {
        self.init()
        for (key, value) in pairs {
            self[key] = value
        }
    }

    /// The number of members.
    public var count: Int {
        self.keys.count
    }

    /// The member `key`; setting `nil` removes it.
    public subscript(key: String) -> JSONValue? {
        get {
            self.members[key]
        }
        set {
            if let newValue {
                if self.members.updateValue(newValue, forKey: key) == nil {
                    self.keys.append(key)
                }
            } else if self.members.removeValue(forKey: key) != nil {
                self.keys.removeAll { $0 == key }
            }
        }
    }

    /// Whether both have the same keys with equal values, in any order.
    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        lhs.members == rhs.members
    }

    /// Hashes the members without their order, consistently with `==`.
    public func hash(into hasher: inout Hasher) {
        var combined = 0
        for (key, value) in self.members {
            var member = Hasher()
            member.combine(key)
            member.combine(value)
            combined ^= member.finalize()
        }
        hasher.combine(self.members.count)
        hasher.combine(combined)
    }
}
