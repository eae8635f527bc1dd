import FicusCore
import Foundation

/// What differs between two configurations, object by object: upstreams, routes and their rules, segments, flags
/// and the global kill switch.
///
/// One pure function serves the store (a revision's summary and the routes it changed, for `ficus history --route`)
/// and the CLI (`ficus diff REV1 REV2`), so the two always tell the same story.
public struct RevisionDiff: Sendable, Equatable {
    /// Whether an object appeared, disappeared or changed.
    ///
    /// Rendered as the first character of a line (`+`, `-`, `~`), as in a unified diff.
    public enum Kind: String, Sendable, Equatable {
        case added = "+"
        case removed = "-"
        case changed = "~"
    }

    /// One difference: an object (`route orders`, `rule beta in route orders`) and, for changes, what changed.
    ///
    /// Kept structured so that callers can filter by route or kind without parsing text.
    public struct Change: Sendable, Equatable {
        /// Whether the object appeared, disappeared or changed.
        ///
        /// See `Kind`.
        public var kind: Kind

        /// The object, as operators name it (`upstream orders-v2`, `route orders`, `rule beta in route orders`,
        /// `segment beta`, `flag beta`, `killed`).
        ///
        /// The same words the validation messages and commands use.
        public var object: String

        /// What changed (`default legacy → orders-v2`), or empty.
        ///
        /// Added objects carry a short description of the new object; removed ones usually none.
        public var detail: String

        /// The route the change belongs to, or nil for upstreams, segments, flags and the kill switch.
        ///
        /// Lets `ficus history --route` find the revisions that touched one route.
        public var route: String?

        /// Creates a change.
        ///
        /// See the properties.
        public init(kind: Kind, object: String, detail: String = "", route: String? = nil) {
            self.kind = kind
            self.object = object
            self.detail = detail
            self.route = route
        }

        /// The change as one line (`~ route orders: default legacy → orders-v2`).
        ///
        /// The format of `ficus diff` and of revision summaries.
        public var line: String {
            self.detail.isEmpty
                ? "\(self.kind.rawValue) \(self.object)"
                : "\(self.kind.rawValue) \(self.object): \(self.detail)"
        }
    }

    /// Every difference, grouped by object type (upstreams, routes, segments, flags, kill switch).
    ///
    /// Within a group, removed objects come in the old order, then added and changed ones in the new order.
    public var changes: [Change]

    /// Compares `old` with `new`.
    ///
    /// Objects are matched by name, so renaming shows as one removal and one addition, and a change of order alone
    /// shows as one `~ … order` line rather than nothing.
    public init(from old: Configuration, to new: Configuration) {
        var changes: [Change] = []
        changes += Self.upstreamChanges(old.upstreams, new.upstreams)
        changes += Self.routeChanges(old.routes, new.routes)
        changes += Self.segmentChanges(old.segments, new.segments)
        changes += Self.flagChanges(old.flags, new.flags)
        if old.identity != new.identity {
            let detail = "\(old.identity?.description ?? "client_ip") → \(new.identity?.description ?? "client_ip")"
            changes.append(Change(kind: .changed, object: "identity", detail: detail))
        }
        if old.killed != new.killed {
            let detail = "\(Self.onOff(old.killed)) → \(Self.onOff(new.killed))"
            changes.append(Change(kind: .changed, object: "killed", detail: detail))
        }
        if changes.isEmpty && old != new {
            changes.append(Change(kind: .changed, object: "configuration", detail: "order of objects"))
        }
        self.changes = changes
    }

    /// Whether the two configurations are the same.
    ///
    /// A commit that produces an empty diff writes no revision.
    public var isEmpty: Bool {
        self.changes.isEmpty
    }

    /// One line per change (`+ route orders`, `~ route orders: default legacy → orders-v2`, `- flag beta`).
    ///
    /// What `ficus diff` prints.
    public var lines: [String] {
        self.changes.map(\.line)
    }

    /// The names of the routes whose definition (match, upstreams, rules, rewrites, timeouts) changed, sorted.
    ///
    /// Changes to segments and flags that rules name are not counted: they are their own objects with their own
    /// lines, and following them into every route would make `history --route` list nearly everything.
    public var routesChanged: [String] {
        Array(Set(self.changes.compactMap(\.route))).sorted()
    }

    /// The lines joined with `; `, cut to about `maximumLength` characters with a count of what was left out.
    ///
    /// A revision's summary: one line in `ficus history`, with `ficus diff` for the full story.
    public func summary(maximumLength: Int = 160) -> String {
        var summary = ""
        for (index, line) in self.lines.enumerated() {
            let candidate = summary.isEmpty ? line : summary + "; " + line
            if candidate.count > maximumLength && !summary.isEmpty {
                return summary + "; … (+\(self.changes.count - index) more)"
            }
            summary = candidate
        }
        return summary
    }
}
