import FicusCore
import Foundation
import Yams

/// The top-level keys of one rules file; every key is optional so that a file may hold any part of a configuration.
///
/// A directory of files is one configuration: `rules/upstreams.yaml`, `rules/orders.yaml`, ... are merged.
struct RulesDocument: Decodable {
    var upstreams: [Upstream]?
    var routes: [Route]?
    var segments: [Segment]?
    var flags: [Flag]?
    var killed: Bool?
    var identity: Attribute?
}

/// Rules files read, parsed, decoded and merged into one configuration, with where each object came from.
///
/// The origins let validation errors found after decoding (`route 'orders': rule 2: unknown segment 'beta'`) be
/// printed with the file, line and column of the object they are about.
public struct RulesFiles {
    /// Where one top-level object was written.
    struct Origin {
        var file: String
        var node: Node
    }

    /// The union of every file.
    public var configuration = Configuration()

    /// The kill switch when a file sets it; nil keeps the store's (it is an operational switch, not a rule).
    public var killed: Bool?

    /// The files read, in order.
    public var files: [String] = []

    /// What was read but should be written differently: fields under a former name (`setHeaders` for
    /// `set_headers`), each with its place. Commands print them; they never refuse a file.
    public var warnings: [RulesProblem] = []

    private var origins: [String: [Origin]] = [:]
    private var originsByIndex: [String: [Origin]] = [:]

    /// Reads every file and every `*.yaml`/`*.yml` file below every directory in `paths`, in sorted order.
    ///
    /// Reports every syntax, shape, limit and decoding problem of every file at once, as one `RulesFilesError`.
    public static func load(_ paths: [String]) throws(RulesFilesError) -> RulesFiles {
        var loader = Loader()
        for file in try self.expand(paths) {
            loader.result.files.append(file)
            switch self.read(file) {
            case .text(let text):
                loader.add(text, file: file)
            case .refused(let problem):
                loader.problems.append(problem)
            }
        }
        return try loader.finish()
    }

    /// Parses `text` as if it had been read from a file named `file`, with every check `load` makes.
    ///
    /// For callers that hold rules in memory (an admin request body, a fuzzer) and for tests: the same limits and
    /// the same located problems as files, without touching the file system.
    public static func load(text: String, file: String) throws(RulesFilesError) -> RulesFiles {
        var loader = Loader()
        loader.result.files.append(file)
        if text.utf8.count > RulesLimits.maximumFileBytes {
            loader.problems.append(Self.tooLarge(file, bytes: text.utf8.count))
        } else {
            loader.add(text, file: file)
        }
        return try loader.finish()
    }

    /// The problems of many files and the configuration of those that had none, built up one text at a time.
    private struct Loader {
        var result = RulesFiles()
        var problems: [RulesProblem] = []
        var killedBy: (file: String, value: Bool)?
        var identityBy: (file: String, value: Attribute)?

        mutating func add(_ text: String, file: String) {
            if let problem = RulesBoundsCheck.check(text, file: file) {
                self.problems.append(problem)
                return
            }
            let roots: [Node]
            do {
                roots = try RulesFiles.parse(text)
            } catch {
                self.problems.append(RulesFiles.problem(for: error, file: file))
                return
            }
            for root in roots {
                let shapeProblems =
                    RulesSchema.check(root, file: file, warnings: &self.result.warnings)
                    + RulesNumbers.check(root, file: file)
                guard shapeProblems.isEmpty else {
                    self.problems += shapeProblems
                    continue
                }
                let document: RulesDocument
                do {
                    document = try YAMLDecoder().decode(RulesDocument.self, from: root)
                } catch let error as DecodingError {
                    self.problems.append(RulesFiles.problem(for: error, root: root, file: file))
                    continue
                } catch {
                    self.problems.append(RulesFiles.problem(for: error, file: file))
                    continue
                }
                if let killed = document.killed {
                    self.problems += Self.disagreement("killed", killed, earlier: self.killedBy, file: file, root: root)
                    self.killedBy = (file, killed)
                    self.result.killed = killed
                }
                if let identity = document.identity {
                    self.problems += Self.disagreement(
                        "identity", identity, earlier: self.identityBy, file: file, root: root)
                    self.identityBy = (file, identity)
                    self.result.configuration.identity = identity
                }
                self.result.add(document, root: root, file: file)
            }
        }

        /// The problem of `file` setting the top-level `key` to `value` when an earlier file set another, if any.
        ///
        /// A store-wide setting is one value: two files that disagree about it are an error, not a merge.
        private static func disagreement<Value: Equatable & CustomStringConvertible>(
            _ key: String,
            _ value: Value,
            earlier: (file: String, value: Value)?,
            file: String,
            root: Node
        ) -> [RulesProblem] {
            guard let earlier, earlier.value != value else { return [] }
            return [
                RulesProblem(
                    file: file,
                    line: root[key]?.mark?.line,
                    column: root[key]?.mark?.column,
                    message: "\(key): \(value) contradicts \(key): \(earlier.value) in \(earlier.file)"
                )
            ]
        }

        func finish() throws(RulesFilesError) -> RulesFiles {
            guard self.problems.isEmpty else {
                throw RulesFilesError(self.problems)
            }
            return self.result
        }
    }

    /// The text of `file`, refused before reading when it is over the size limit, or not UTF-8 text.
    ///
    /// The size is read first so that a huge file (or a device) is never read into memory; reading stops one byte past
    /// the limit as well, in case the file grows between the two.
    private static func read(_ file: String) -> ReadOutcome {
        if let attributes = try? FileManager.default.attributesOfItem(atPath: file),
            let size = (attributes[.size] as? NSNumber)?.intValue, size > RulesLimits.maximumFileBytes
        {
            return .refused(Self.tooLarge(file, bytes: size))
        }
        guard let handle = FileHandle(forReadingAtPath: file) else {
            return .refused(RulesProblem(file: file, message: "cannot be read"))
        }
        defer { try? handle.close() }
        guard let data = try? handle.read(upToCount: RulesLimits.maximumFileBytes + 1) ?? Data() else {
            return .refused(RulesProblem(file: file, message: "cannot be read"))
        }
        guard data.count <= RulesLimits.maximumFileBytes else {
            return .refused(Self.tooLarge(file, bytes: data.count))
        }
        guard let text = String(data: data, encoding: .utf8) else {
            return .refused(RulesProblem(file: file, message: "is not UTF-8 text"))
        }
        return .text(text)
    }

    private enum ReadOutcome {
        case text(String)
        case refused(RulesProblem)
    }

    private static func tooLarge(_ file: String, bytes: Int) -> RulesProblem {
        RulesProblem(
            file: file,
            line: 1,
            message: "\(bytes) bytes is over the 1 MiB (\(RulesLimits.maximumFileBytes) bytes) limit for a rules file"
        )
    }

    /// Every file named by `paths`, directories expanded to their YAML files in sorted order.
    private static func expand(_ paths: [String]) throws(RulesFilesError) -> [String] {
        var files: [String] = []
        var missing: [RulesProblem] = []
        for path in paths {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                missing.append(RulesProblem(file: path, message: "no such file or directory"))
                continue
            }
            guard isDirectory.boolValue else {
                files.append(path)
                continue
            }
            let base = path.hasSuffix("/") ? String(path.dropLast()) : path
            let entries = FileManager.default.enumerator(atPath: path)?.compactMap { $0 as? String } ?? []
            let yaml = entries.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted()
            if yaml.isEmpty {
                missing.append(RulesProblem(file: path, message: "contains no .yaml or .yml files"))
            }
            files += yaml.map { "\(base)/\($0)" }
        }
        guard missing.isEmpty else {
            throw RulesFilesError(missing)
        }
        return files
    }

    /// Every document of a YAML stream (`---` separates documents); an empty file has none.
    fileprivate static func parse(_ text: String) throws -> [Node] {
        let parser = try Parser(yaml: text, encoding: .utf8)
        var roots: [Node] = []
        while let root = try parser.nextRoot() {
            roots.append(root)
        }
        return roots
    }

    fileprivate mutating func add(_ document: RulesDocument, root: Node, file: String) {
        func record(_ kind: String, _ key: String, names: [String]) {
            let nodes = root[key]?.sequence.map(Array.init) ?? []
            for (name, node) in zip(names, nodes) {
                let origin = Origin(file: file, node: node)
                self.origins["\(kind) '\(name)'", default: []].append(origin)
                self.originsByIndex[kind, default: []].append(origin)
            }
        }
        let upstreams = document.upstreams ?? []
        let routes = document.routes ?? []
        let segments = document.segments ?? []
        let flags = document.flags ?? []
        record("upstream", "upstreams", names: upstreams.map(\.name))
        record("route", "routes", names: routes.map(\.name))
        record("segment", "segments", names: segments.map(\.name))
        record("flag", "flags", names: flags.map(\.name))
        self.configuration.upstreams += upstreams
        self.configuration.routes += routes
        self.configuration.segments += segments
        self.configuration.flags += flags
    }

    /// The files' configuration on its own, with the kill switch as the files set it (off when they do not).
    ///
    /// What `ficus validate` checks and what `ficus apply` (without `--merge`) makes the store hold.
    public var standalone: Configuration {
        var configuration = self.configuration
        configuration.killed = self.killed ?? false
        return configuration
    }

    /// Validates `configuration` (the files' own, or merged with the store's), failing with located problems.
    ///
    /// Problems about objects that the files define carry their file, line and column; the rest are printed as the
    /// validator wrote them. `also` takes the errors of checks that FicusCore cannot make (shadow paths need
    /// FicusDiff), so that they are located and reported with the others.
    public func check(_ configuration: Configuration, also: [ValidationError] = []) throws(RulesFilesError) {
        let errors = configuration.validate() + also
        guard errors.isEmpty else {
            throw RulesFilesError(errors.map(self.locate))
        }
    }

    /// The validation error with the file, line and column of the object and field it names, when the files have it.
    public func locate(_ error: ValidationError) -> RulesProblem {
        var candidates = self.origins[error.object] ?? []
        if candidates.isEmpty, let (kind, position) = Self.indexedObject(error.object),
            let list = self.originsByIndex[kind], list.indices.contains(position)
        {
            candidates = [list[position]]
        }
        let isDuplicate = error.field == "name" && error.message.hasPrefix("duplicate")
        guard let origin = isDuplicate ? candidates.last : candidates.first else {
            return RulesProblem(message: error.description)
        }
        let node = Self.fieldNode(error.field, in: origin.node) ?? origin.node
        return RulesProblem(
            file: origin.file, line: node.mark?.line, column: node.mark?.column, message: error.description)
    }

    /// `route 3` → ("route", 2).
    private static func indexedObject(_ object: String) -> (String, Int)? {
        let words = object.split(separator: " ")
        guard words.count == 2, let number = Int(words[1]) else {
            return nil
        }
        return (String(words[0]), number - 1)
    }

    /// The node of a validation error's field: `rule 2 ('beta')`, `constraint 1`, `rewrites 'x'`, `slots blue`,
    /// a dotted path of keys, or a plain key.
    private static func fieldNode(_ field: String, in object: Node) -> Node? {
        let words = field.split(separator: " ", maxSplits: 1).map(String.init)
        guard let first = words.first else {
            return nil
        }
        let rest = words.count > 1 ? words[1] : ""
        switch first {
        case "rule", "constraint":
            let list = first == "rule" ? "rules" : "constraints"
            let number = Int(rest.prefix(while: \.isNumber)) ?? 0
            guard let items = object[list]?.sequence, number >= 1, number <= items.count else {
                return object[list]
            }
            return Array(items)[number - 1]
        case "rewrites":
            let upstream = rest.trimmingCharacters(in: CharacterSet(charactersIn: "'"))
            return object["rewrites"]?[upstream] ?? object["rewrites"]
        case "slots":
            return object["slots"]?[rest] ?? object["slots"]
        case "default":
            return object["default"] ?? object["legacy"]
        case _ where first.contains("."):
            // A dotted field (`shadow.to`, `retry.backoff.base`): the deepest of its keys that is written.
            var node = object
            for key in first.split(separator: ".") {
                guard let child = node[String(key)] else { break }
                node = child
            }
            return node
        default:
            return object[first]
        }
    }

    // MARK: - Parse and decoding errors

    /// A YAML syntax error with the line and column libyaml reported.
    fileprivate static func problem(for error: any Error, file: String) -> RulesProblem {
        guard let error = error as? YamlError else {
            return RulesProblem(file: file, message: "\(error)")
        }
        switch error {
        case .scanner(let context, let problem, let mark, _),
            .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            let detail = context.map { " \($0.text) (started at \($0.mark.line):\($0.mark.column))" } ?? ""
            return RulesProblem(
                file: file, line: mark.line, column: mark.column, message: "YAML syntax: \(problem)\(detail)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return RulesProblem(
                file: file,
                line: context.mark.line,
                column: context.mark.column,
                message: "duplicate key \(duplicates.map { "'\($0)'" }.joined(separator: ", "))"
            )
        case .reader(let problem, _, _, _):
            return RulesProblem(file: file, message: "YAML: \(problem)")
        default:
            return RulesProblem(file: file, message: "YAML: \(error)")
        }
    }

    /// A decoding error, located at the deepest node of its coding path and named like validation errors.
    fileprivate static func problem(for error: DecodingError, root: Node, file: String) -> RulesProblem {
        let context: DecodingError.Context
        var message: String
        switch error {
        case .keyNotFound(let key, let errorContext):
            context = errorContext
            message = "missing field '\(key.stringValue)'"
        case .typeMismatch(let type, let errorContext):
            context = errorContext
            message = "expected \(Self.typeName(type))"
        case .valueNotFound(let type, let errorContext):
            context = errorContext
            message = "missing value (expected \(Self.typeName(type)))"
        case .dataCorrupted(let errorContext):
            context = errorContext
            message = errorContext.debugDescription
        @unknown default:
            return RulesProblem(file: file, message: "\(error)")
        }
        let (node, path) = RulesSchema.resolve(context.codingPath.map(RulesSchema.PathKey.init), in: root)
        if case .typeMismatch(let type, _) = error, type is Int.Type, let text = node.scalar?.string,
            RulesNumbers.isDecimalInteger(text)
        {
            message = "\(text) is outside the range of an integer (\(Int.min) to \(Int.max))"
        }
        if path.isEmpty == false {
            message = path + ": " + message
        }
        return RulesProblem(file: file, line: node.mark?.line, column: node.mark?.column, message: message)
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Int.Type: return "an integer"
        case is Bool.Type: return "true or false"
        case is [Any].Type: return "a list"
        default:
            let name = "\(type)"
            if name.hasPrefix("Array") {
                return "a list"
            }
            if name.hasPrefix("Dictionary") || name.contains("KeyedDecodingContainer") {
                return "a mapping"
            }
            return name
        }
    }
}
