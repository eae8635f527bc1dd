/// One problem in a configuration, naming the object and the field it was found in.
///
/// Operators fix configurations from these messages alone, so each says where (`route 'orders'`, `rule 2 ('beta')`)
/// and what (`unknown segment 'beta'`).
public struct ValidationError: Error, Sendable, Equatable, Hashable, CustomStringConvertible {
    /// The top-level object: `route 'orders'`, `upstream 'legacy'`, `segment 'beta'`, `flag 'x'`, or `route 3` when
    /// the object has no name.
    ///
    /// Top-level objects are what commands address, so this tells the operator which one to edit.
    public var object: String

    /// The field or sub-object within it (`path`, `default`, `rule 2 ('beta')`, `constraint 1`), or empty.
    ///
    /// Rules and constraints are numbered from 1 in the order they are written.
    public var field: String

    /// What is wrong.
    ///
    /// Phrased so that it can be read after the object and field.
    public var message: String

    /// Creates a validation error.
    ///
    /// See the properties.
    public init(object: String, field: String, message: String) {
        self.object = object
        self.field = field
        self.message = message
    }

    /// The error as `object: field: message` (`route 'orders': rule 2 ('beta'): unknown segment 'beta'`).
    ///
    /// The field is left out when empty.
    public var description: String {
        self.field.isEmpty ? "\(self.object): \(self.message)" : "\(self.object): \(self.field): \(self.message)"
    }
}

/// A configuration that failed validation, with every problem found.
///
/// Thrown by `RoutingTable.init`; reporting all errors at once saves operators a fix-and-retry loop.
public struct ConfigurationInvalid: Error, Sendable, Equatable, CustomStringConvertible {
    /// Every problem, in the order of the configuration.
    ///
    /// Never empty when thrown.
    public var errors: [ValidationError]

    /// Creates the error.
    ///
    /// See `errors`.
    public init(errors: [ValidationError]) {
        self.errors = errors
    }

    /// A headline with the count, then one error per line.
    ///
    /// Fits both logs and terminal output.
    public var description: String {
        let headline = "invalid configuration (\(self.errors.count) error\(self.errors.count == 1 ? "" : "s"))"
        return ([headline] + self.errors.map { "  - \($0)" }).joined(separator: "\n")
    }
}
