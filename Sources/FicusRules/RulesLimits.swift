import CYaml

/// The bounds a rules file must stay within before it is composed, decoded or walked.
///
/// Rules files come from people and from scripts that may be compromised or wrong; without bounds a small file can
/// expand through aliases into billions of nodes (a "billion laughs" YAML bomb) or nest deep enough to exhaust the
/// stack, and a huge file is read into memory whole. Each limit is refused with a problem that names it.
public enum RulesLimits {
    /// The largest rules file read, in bytes (1 MiB); the size is checked before the file is read.
    public static let maximumFileBytes = 1 << 20

    /// The deepest nesting of mappings and lists, counting what aliases bring in where they are used.
    public static let maximumDepth = 32

    /// The most nodes that aliases may add to a file (every use of an alias counts its anchor's whole subtree).
    public static let maximumAliasNodes = 10_000
}

/// A single pass over libyaml's events that measures nesting and alias expansion without building any tree.
///
/// Yams composes aliases into shared values, which is cheap, but everything that walks the tree afterwards (the
/// schema check, the decoder, the duplicate-key check's hashing of keys) visits every expanded node; counting at
/// the event level, with the size of each anchor remembered, costs one step per event whatever the aliases do.
/// Syntax errors are left to the parser that follows, which reports them with their place.
enum RulesBoundsCheck {
    /// What an open mapping or list has seen so far.
    private struct Open {
        var anchor: String?
        var nodes = 1
        var height = 1
    }

    /// The first limit that `text` goes past, as a problem in `file`, or nil.
    static func check(_ text: String, file: String?) -> RulesProblem? {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else {
            return nil
        }
        defer { yaml_parser_delete(&parser) }
        var bytes = Array(text.utf8)
        return bytes.withUnsafeMutableBufferPointer { buffer -> RulesProblem? in
            yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING)
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            return Self.walk(&parser, file: file)
        }
    }

    private static func walk(_ parser: inout yaml_parser_t, file: String?) -> RulesProblem? {
        var open: [Open] = []
        // Anchors persist across the documents of a stream, as the composer that follows keeps them.
        var anchors: [String: (nodes: Int, height: Int)] = [:]
        var aliasNodes = 0
        func problem(_ event: yaml_event_t, _ message: String) -> RulesProblem {
            RulesProblem(
                file: file,
                line: Int(event.start_mark.line) + 1,
                column: Int(event.start_mark.column) + 1,
                message: message
            )
        }
        func close(nodes: Int, height: Int) {
            guard !open.isEmpty else {
                return
            }
            // Bounded: every term is at most the file's events plus the alias budget.
            open[open.count - 1].nodes = min(open[open.count - 1].nodes + nodes, Int.max / 2)
            open[open.count - 1].height = max(open[open.count - 1].height, height + 1)
        }
        while true {
            var event = yaml_event_t()
            guard yaml_parser_parse(&parser, &event) == 1 else {
                return nil
            }
            defer { yaml_event_delete(&event) }
            switch event.type {
            case YAML_STREAM_END_EVENT:
                return nil
            case YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT:
                guard open.count < RulesLimits.maximumDepth else {
                    return problem(
                        event,
                        "nested deeper than \(RulesLimits.maximumDepth) levels of mappings and lists "
                            + "(the limit for a rules file)"
                    )
                }
                let anchor =
                    event.type == YAML_SEQUENCE_START_EVENT
                    ? Self.string(event.data.sequence_start.anchor) : Self.string(event.data.mapping_start.anchor)
                open.append(Open(anchor: anchor))
            case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                guard let closed = open.popLast() else {
                    continue
                }
                if let anchor = closed.anchor {
                    anchors[anchor] = (closed.nodes, closed.height)
                }
                close(nodes: closed.nodes, height: closed.height)
            case YAML_SCALAR_EVENT:
                if let anchor = Self.string(event.data.scalar.anchor) {
                    anchors[anchor] = (1, 0)
                }
                close(nodes: 1, height: 0)
            case YAML_ALIAS_EVENT:
                guard let name = Self.string(event.data.alias.anchor), let anchor = anchors[name] else {
                    // An undefined alias: the composer reports it with its place.
                    return nil
                }
                aliasNodes += anchor.nodes
                guard aliasNodes <= RulesLimits.maximumAliasNodes else {
                    return problem(
                        event,
                        "aliases expand to more than \(RulesLimits.maximumAliasNodes) nodes "
                            + "(the limit for a rules file; '*\(name)' brings in \(anchor.nodes))"
                    )
                }
                guard open.count + anchor.height <= RulesLimits.maximumDepth else {
                    return problem(
                        event,
                        "alias '*\(name)' nests deeper than \(RulesLimits.maximumDepth) levels of mappings and lists "
                            + "(the limit for a rules file)"
                    )
                }
                close(nodes: anchor.nodes, height: anchor.height)
            default:
                continue
            }
        }
    }

    private static func string(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
        pointer.map { String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)) }
    }
}
