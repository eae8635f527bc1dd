/// Tracks which patterns match a path while a JSON tree is walked.
///
/// Ignored and sensitive paths are checked at every node of bodies up to megabytes; advancing the partial matches one
/// step at a time costs nothing once no pattern can match below a node, which is most of the tree.
struct PathMatcher: Sendable {
    let patterns: [JSONPathPattern]

    /// Partial matches: for each live pattern, how many of its steps the path so far has consumed.
    struct State: Sendable {
        var positions: [(pattern: Int, step: Int)]
        /// Whether the path so far is matched completely by some pattern.
        var matched: Bool

        /// Whether no pattern can match this path or any path below it.
        var isDead: Bool {
            self.positions.isEmpty && !self.matched
        }
    }

    init(patterns: [JSONPathPattern]) {
        self.patterns = patterns
    }

    var isEmpty: Bool {
        self.patterns.isEmpty
    }

    /// The state at the root `$`.
    var root: State {
        var state = State(positions: [], matched: false)
        for (pattern, steps) in self.patterns.map(\.steps).enumerated() {
            if steps.isEmpty {
                state.matched = true
            } else {
                state.positions.append((pattern, 0))
            }
        }
        return state
    }

    /// The state one step below `state`, at `component`.
    func advance(_ state: State, by component: JSONPathComponent) -> State {
        var next = State(positions: [], matched: false)
        for (pattern, step) in state.positions {
            let steps = self.patterns[pattern].steps
            switch steps[step] {
            case .child(let selector):
                if selector.matches(component) {
                    next.accept(pattern: pattern, step: step + 1, count: steps.count)
                }
            case .descendant(let selector):
                // A descendant step may skip this level and stay, or match here and move on.
                next.accept(pattern: pattern, step: step, count: steps.count)
                if selector.matches(component) {
                    next.accept(pattern: pattern, step: step + 1, count: steps.count)
                }
            }
        }
        return next
    }

    /// Whether the path given by `components` is matched by some pattern.
    func matches(_ components: [JSONPathComponent]) -> Bool {
        var state = self.root
        for component in components {
            if state.isDead {
                return false
            }
            state = self.advance(state, by: component)
        }
        return state.matched
    }
}

extension PathMatcher.State {
    fileprivate mutating func accept(pattern: Int, step: Int, count: Int) {
        if step == count {
            self.matched = true
        } else if !self.positions.contains(where: { $0.pattern == pattern && $0.step == step }) {
            self.positions.append((pattern, step))
        }
    }
}
