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
struct RulesFiles {
    /// Where one top-level object was written.
    struct Origin {
        var file: String
        var node: Node
    }

    /// The union of every file.
    var configuration = Configuration()

    /// The kill switch when a file sets it; nil keeps the store's (it is an operational switch, not a rule).
    var killed: Bool?

    /// The files read, in order.
    var files: [String] = []

    private var origins: [String: [Origin]] = [:]
    private var originsByIndex: [String: [Origin]] = [:]

    /// Reads every file and every `*.yaml`/`*.yml` file below every directory in `paths`, in sorted order.
    ///
    /// Reports every syntax, shape and decoding problem of every file at once, as `CLIError.rulesFiles`.
    static func load(_ paths: [String]) throws -> RulesFiles {
        var result = RulesFiles()
        var problems: [RulesProblem] = []
        var killedBy: (file: String, value: Bool)?
        var identityBy: (file: String, value: Attribute)?
        for file in try self.expand(paths) {
            result.files.append(file)
            guard let data = FileManager.default.contents(atPath: file) else {
                problems.append(RulesProblem(file: file, message: "cannot be read"))
                continue
            }
            guard let text = String(data: data, encoding: .utf8) else {
                problems.append(RulesProblem(file: file, message: "is not UTF-8 text"))
                continue
            }
            let roots: [Node]
            do {
                roots = try self.parse(text)
            } catch {
                problems.append(self.problem(for: error, file: file))
                continue
            }
            for root in roots {
                let shapeProblems = RulesSchema.check(root, file: file)
                guard shapeProblems.isEmpty else {
                    problems += shapeProblems
                    continue
                }
                let document: RulesDocument
                do {
                    document = try YAMLDecoder().decode(RulesDocument.self, from: root)
                } catch let error as DecodingError {
                    problems.append(self.problem(for: error, root: root, file: file))
                    continue
                } catch {
                    problems.append(self.problem(for: error, file: file))
                    continue
                }
                if let killed = document.killed {
                    if let earlier = killedBy, earlier.value != killed {
                        problems.append(
                            RulesProblem(
                                file: file,
                                line: root["killed"]?.mark?.line,
                                column: root["killed"]?.mark?.column,
                                message: "killed: \(killed) contradicts killed: \(earlier.value) in \(earlier.file)"
                            )
                        )
                    }
                    killedBy = (file, killed)
                    result.killed = killed
                }
                if let identity = document.identity {
                    if let earlier = identityBy, earlier.value != identity {
                        problems.append(
                            RulesProblem(
                                file: file,
                                line: root["identity"]?.mark?.line,
                                column: root["identity"]?.mark?.column,
                                message: "identity: \(identity) contradicts identity: \(earlier.value) in \(earlier.file)"
                            )
                        )
                    }
                    identityBy = (file, identity)
                    result.configuration.identity = identity
                }
                result.add(document, root: root, file: file)
            }
        }
        guard problems.isEmpty else {
            throw CLIError.rulesFiles(problems)
        }
        return result
    }

    /// Every file named by `paths`, directories expanded to their YAML files in sorted order.
    private static func expand(_ paths: [String]) throws -> [String] {
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
            throw CLIError.rulesFiles(missing)
        }
        return files
    }

    /// Every document of a YAML stream (`---` separates documents); an empty file has none.
    private static func parse(_ text: String) throws -> [Node] {
        let parser = try Parser(yaml: text)
        var roots: [Node] = []
        while let root = try parser.nextRoot() {
            roots.append(root)
        }
        return roots
    }

    private mutating func add(_ document: RulesDocument, root: Node, file: String) {
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
    var standalone: Configuration {
        var configuration = self.configuration
        configuration.killed = self.killed ?? false
        return configuration
    }

    /// Validates `configuration` (the files' own, or merged with the store's), failing with located problems.
    ///
    /// Problems about objects that the files define carry their file, line and column; the rest are printed as the
    /// validator wrote them.
    func check(_ configuration: Configuration) throws {
        let errors = configuration.validate() + configuration.shadowPathErrors()
        guard errors.isEmpty else {
            throw CLIError.rulesFiles(errors.map(self.locate))
        }
    }

    /// The validation error with the file, line and column of the object and field it names, when the files have it.
    func locate(_ error: ValidationError) -> RulesProblem {
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
    /// or a plain key.
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
        case _ where first.hasPrefix("shadow."):
            let key = String(first.dropFirst("shadow.".count))
            return object["shadow"]?[key] ?? object["shadow"]
        default:
            return object[first]
        }
    }

    // MARK: - Parse and decoding errors

    /// A YAML syntax error with the line and column libyaml reported.
    private static func problem(for error: any Error, file: String) -> RulesProblem {
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
    private static func problem(for error: DecodingError, root: Node, file: String) -> RulesProblem {
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
