/// The structural diff of two JSON documents into classified, path-addressed differences.
///
/// Consumers break on a changed type or a missing field, not on whitespace or key order; diffing the parsed trees
/// reports exactly the former, each at the path a developer can look up.
struct JSONDiffer {
    /// Patterns of values that are rendered as the marker.
    let sensitive: PathMatcher
    let marker: String
    /// The most differences kept; further ones are only counted.
    let limit: Int
    private(set) var differences: [Difference] = []
    /// Differences found beyond `limit`.
    private(set) var omitted = 0
    private var path: [JSONPathComponent] = []

    init(sensitive: PathMatcher, marker: String, limit: Int = .max) {
        self.sensitive = sensitive
        self.marker = marker
        self.limit = max(1, limit)
    }

    /// Diffs `serving` against `shadow` from the root.
    mutating func diff(serving: JSONValue, shadow: JSONValue) {
        let root = self.sensitive.root
        self.diff(serving, shadow, sensitivity: root.matched ? nil : root)
    }

    /// Diffs two values at the current path; `sensitivity` is `nil` inside a sensitive subtree.
    private mutating func diff(_ serving: JSONValue, _ shadow: JSONValue, sensitivity: PathMatcher.State?) {
        switch (serving, shadow) {
        case (.object(let left), .object(let right)):
            for key in left.keys {
                self.descend(.key(key), sensitivity) { differ, child in
                    if let shadowValue = right[key] {
                        differ.diff(left[key]!, shadowValue, sensitivity: child)
                    } else {
                        differ.emit(.missing, serving: differ.render(left[key]!, child), shadow: nil)
                    }
                }
            }
            for key in right.keys where left[key] == nil {
                self.descend(.key(key), sensitivity) { differ, child in
                    differ.emit(.extra, serving: nil, shadow: differ.render(right[key]!, child))
                }
            }
        case (.array(let left), .array(let right)):
            if left.count == right.count {
                if left == right {
                    return
                }
                if JSONDiffer.sameMultiset(left, right) {
                    self.emit(
                        .arrayOrder,
                        serving: self.render(serving, sensitivity),
                        shadow: self.render(shadow, sensitivity)
                    )
                    return
                }
            } else {
                self.emit(.arrayLength, serving: String(left.count), shadow: String(right.count))
            }
            for position in 0..<min(left.count, right.count) where left[position] != right[position] {
                self.descend(.index(position), sensitivity) { differ, child in
                    differ.diff(left[position], right[position], sensitivity: child)
                }
            }
        default:
            guard serving != shadow else {
                return
            }
            let kind: DifferenceKind = serving.typeName == shadow.typeName ? .valueChanged : .typeChanged
            self.emit(kind, serving: self.render(serving, sensitivity), shadow: self.render(shadow, sensitivity))
        }
    }

    /// Runs `body` one step below the current path.
    private mutating func descend(
        _ component: JSONPathComponent,
        _ sensitivity: PathMatcher.State?,
        _ body: (inout JSONDiffer, PathMatcher.State?) -> Void
    ) {
        var child: PathMatcher.State? = nil
        if let sensitivity {
            let next = self.sensitive.advance(sensitivity, by: component)
            child = next.matched ? nil : next
        }
        self.path.append(component)
        body(&self, child)
        self.path.removeLast()
    }

    private mutating func emit(_ kind: DifferenceKind, serving: String?, shadow: String?) {
        guard self.differences.count < self.limit else {
            self.omitted += 1
            return
        }
        self.differences.append(
            Difference(path: JSONPath.render(self.path), kind: kind, serving: serving, shadow: shadow)
        )
    }

    /// The value rendered short, with sensitive parts (or all of it, inside a sensitive subtree) as the marker.
    private func render(_ value: JSONValue, _ sensitivity: PathMatcher.State?) -> String {
        guard let sensitivity else {
            return self.marker
        }
        if sensitivity.isDead {
            return value.rendered()
        }
        return value.transformed(by: self.sensitive, from: sensitivity) { _ in .string(self.marker) }.rendered()
    }

    /// Whether both arrays hold the same elements the same number of times.
    static func sameMultiset(_ left: [JSONValue], _ right: [JSONValue]) -> Bool {
        var counts: [JSONValue: Int] = [:]
        for element in left {
            counts[element, default: 0] += 1
        }
        for element in right {
            guard let count = counts[element], count > 0 else {
                return false
            }
            counts[element] = count - 1
        }
        return true
    }
}

extension JSONValue {
    /// The value with every node matched by `matcher` replaced by `replacement` — removed from its object when the
    /// replacement is `nil`, or set to `null` in its array so that later indices keep their meaning.
    ///
    /// Ignoring and redaction are both this walk; subtrees no pattern can reach are returned untouched.
    func transformed(
        by matcher: PathMatcher,
        from state: PathMatcher.State,
        replacement: (JSONValue) -> JSONValue?
    ) -> JSONValue {
        if state.isDead {
            return self
        }
        switch self {
        case .object(let object):
            var result = object
            for key in object.keys {
                let child = matcher.advance(state, by: .key(key))
                if child.matched {
                    result[key] = replacement(object[key]!)
                } else if !child.isDead {
                    result[key] = object[key]!.transformed(by: matcher, from: child, replacement: replacement)
                }
            }
            return .object(result)
        case .array(let elements):
            var result = elements
            for position in elements.indices {
                let child = matcher.advance(state, by: .index(position))
                if child.matched {
                    result[position] = replacement(elements[position]) ?? .null
                } else if !child.isDead {
                    result[position] = elements[position].transformed(
                        by: matcher,
                        from: child,
                        replacement: replacement
                    )
                }
            }
            return .array(result)
        default:
            return self
        }
    }
}
