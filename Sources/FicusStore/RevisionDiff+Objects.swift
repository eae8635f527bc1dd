import FicusCore
import Foundation

extension RevisionDiff {
    /// The differences between two lists of upstreams, matched by name.
    ///
    /// A flip of blue-green slots is its own line (`active slot blue → green`) because it is the change operators
    /// look for first.
    static func upstreamChanges(_ old: [Upstream], _ new: [Upstream]) -> [Change] {
        self.namedChanges(old, new, name: \.name) { upstream in
            [Change(kind: .added, object: "upstream \(upstream.name)", detail: self.describe(upstream))]
        } removed: { upstream in
            Change(kind: .removed, object: "upstream \(upstream.name)")
        } changed: { before, after in
            let object = "upstream \(after.name)"
            var changes: [Change] = []
            switch (before.slots, after.slots) {
            case (nil, nil) where before.addresses == after.addresses:
                break
            case (nil, nil):
                changes.append(
                    Change(
                        kind: .changed,
                        object: object,
                        detail: "addresses \(self.describe(before.addresses)) → \(self.describe(after.addresses))"
                    )
                )
            case (nil, .some):
                changes.append(
                    Change(kind: .changed, object: object, detail: "blue-green slots added: \(self.describe(after))")
                )
            case (.some, nil):
                changes.append(
                    Change(kind: .changed, object: object, detail: "blue-green slots removed: \(self.describe(after))")
                )
            case (.some(let beforeSlots), .some(let afterSlots)):
                if beforeSlots.active != afterSlots.active {
                    let detail = "active slot \(beforeSlots.active.rawValue) → \(afterSlots.active.rawValue)"
                    changes.append(Change(kind: .changed, object: object, detail: detail))
                }
                for slot in BlueGreenSlots.Slot.allCases where beforeSlots[slot] != afterSlots[slot] {
                    let detail = "\(slot.rawValue) \(self.describe(beforeSlots[slot])) → "
                        + self.describe(afterSlots[slot])
                    changes.append(Change(kind: .changed, object: object, detail: detail))
                }
                if beforeSlots.previewSegment != afterSlots.previewSegment {
                    let name = { (segment: String?) in segment.map { "'\($0)'" } ?? "none" }
                    let detail = "preview segment \(name(beforeSlots.previewSegment)) → \(name(afterSlots.previewSegment))"
                    changes.append(Change(kind: .changed, object: object, detail: detail))
                }
            }
            if before.balance != after.balance {
                let detail = "balance \(before.effectiveBalance.rawValue) → \(after.effectiveBalance.rawValue)"
                changes.append(Change(kind: .changed, object: object, detail: detail))
            }
            if before.outlier != after.outlier {
                let text = { (policy: OutlierPolicy?) in policy?.oneLine ?? "off" }
                let detail = "outlier \(text(before.outlier)) → \(text(after.outlier))"
                changes.append(Change(kind: .changed, object: object, detail: detail))
            }
            if before.limits != after.limits {
                let text = { (limits: UpstreamLimits?) in (limits ?? UpstreamLimits()).oneLine() }
                let detail = "limits \(text(before.limits)) → \(text(after.limits))"
                changes.append(Change(kind: .changed, object: object, detail: detail))
            }
            return changes.isEmpty ? [Change(kind: .changed, object: object)] : changes
        }
    }

    /// The differences between two lists of routes, matched by name, with their rules.
    ///
    /// Every line about a route or one of its rules carries the route's name, which is what the store records as
    /// the routes a revision changed.
    /// Routes that are one stored version on both sides are equal without being decoded: a flip of one route among
    /// a thousand compares one.
    static func routeChanges(_ old: RouteList, _ new: RouteList) -> [Change] {
        func added(_ route: Route) -> [Change] {
            let rules = route.rules.map { rule in
                Change(
                    kind: .added,
                    object: "rule \(rule.name) in route \(route.name)",
                    detail: self.describe(rule),
                    route: route.name
                )
            }
            let object = "route \(route.name)"
            return [Change(kind: .added, object: object, detail: self.describe(route), route: route.name)] + rules
        }
        let oldByName = old.firstIndexByName
        let newNames = new.names
        let kept = Set(newNames)
        var changes = old.names.filter { !kept.contains($0) }.map { name in
            Change(kind: .removed, object: "route \(name)", route: name)
        }
        for (index, name) in newNames.enumerated() {
            if let previous = oldByName[name] {
                if !new.isSame(at: index, as: old, at: previous) {
                    changes += self.routeFieldChanges(old[previous], new[index])
                }
            } else {
                changes += added(new[index])
            }
        }
        return changes
    }

    /// The differences between two lists of segments, matched by name.
    ///
    /// Constraints are shown whole on both sides: segments are short, and a partial view would hide what a request
    /// now needs to be in the segment.
    static func segmentChanges(_ old: [Segment], _ new: [Segment]) -> [Change] {
        self.namedChanges(old, new, name: \.name) { segment in
            [Change(kind: .added, object: "segment \(segment.name)", detail: self.describe(segment.constraints))]
        } removed: { segment in
            Change(kind: .removed, object: "segment \(segment.name)")
        } changed: { before, after in
            let detail = "\(self.describe(before.constraints)) → \(self.describe(after.constraints))"
            return [Change(kind: .changed, object: "segment \(after.name)", detail: detail)]
        }
    }

    /// The differences between two lists of flags, matched by name.
    ///
    /// A flag turned off is a kill switch, so the state is always part of the line.
    static func flagChanges(_ old: [Flag], _ new: [Flag]) -> [Change] {
        self.namedChanges(old, new, name: \.name) { flag in
            [Change(kind: .added, object: "flag \(flag.name)", detail: self.onOff(flag.enabled))]
        } removed: { flag in
            Change(kind: .removed, object: "flag \(flag.name)")
        } changed: { before, after in
            let detail = "\(self.onOff(before.enabled)) → \(self.onOff(after.enabled))"
            return [Change(kind: .changed, object: "flag \(after.name)", detail: detail)]
        }
    }

    /// The differences between two definitions of the same route.
    ///
    /// One line per field, so that a flip reads as `default legacy → orders-v2` and not as a whole-route dump.
    static func routeFieldChanges(_ before: Route, _ after: Route) -> [Change] {
        let name = after.name
        var changes: [Change] = []
        func changed(_ detail: String) {
            changes.append(Change(kind: .changed, object: "route \(name)", detail: detail, route: name))
        }
        if before.host != after.host {
            changed("host \(before.host ?? "any") → \(after.host ?? "any")")
        }
        if before.path != after.path {
            changed("path \(before.path) → \(after.path)")
        }
        if before.methods != after.methods {
            changed("methods \(self.describe(methods: before.methods)) → \(self.describe(methods: after.methods))")
        }
        if before.legacy != after.legacy {
            changed("legacy \(before.legacy) → \(after.legacy)")
        }
        if before.defaultUpstream != after.defaultUpstream {
            changed("default \(before.defaultUpstream) → \(after.defaultUpstream)")
        }
        for upstream in Set(before.rewrites.keys).union(after.rewrites.keys).sorted() {
            switch (before.rewrites[upstream], after.rewrites[upstream]) {
            case (nil, .some(let rewrite)):
                changed("rewrite for \(upstream) added: \(self.json(rewrite))")
            case (.some, nil):
                changed("rewrite for \(upstream) removed")
            case (.some(let old), .some(let new)) where old != new:
                changed("rewrite for \(upstream) \(self.json(old)) → \(self.json(new))")
            default:
                break
            }
        }
        if before.timeouts != after.timeouts {
            changed("timeouts \(self.json(before.timeouts)) → \(self.json(after.timeouts))")
        }
        switch (before.shadow, after.shadow) {
        case (nil, .some(let policy)):
            changed("shadow on: \(self.json(policy))")
        case (.some, nil):
            changed("shadow off")
        case (.some(let old), .some(let new)) where old != new:
            changed("shadow \(self.json(old)) → \(self.json(new))")
        default:
            break
        }
        changes += self.namedChanges(before.rules, after.rules, name: \.name) { rule in
            [
                Change(
                    kind: .added,
                    object: "rule \(rule.name) in route \(name)",
                    detail: self.describe(rule),
                    route: name
                )
            ]
        } removed: { rule in
            Change(kind: .removed, object: "rule \(rule.name) in route \(name)", route: name)
        } changed: { old, new in
            self.ruleFieldChanges(old, new, route: name)
        }
        let afterNames = Set(after.rules.map(\.name))
        let beforeNames = Set(before.rules.map(\.name))
        let keptBefore = before.rules.map(\.name).filter { afterNames.contains($0) }
        let keptAfter = after.rules.map(\.name).filter { beforeNames.contains($0) }
        if keptBefore != keptAfter {
            changed("rule order \(keptBefore.joined(separator: ", ")) → \(keptAfter.joined(separator: ", "))")
        }
        if changes.isEmpty && before != after {
            changed("")
        }
        return changes
    }

    /// The differences between two definitions of the same rule.
    ///
    /// The condition is shown whole on both sides, in the one-line form validation messages use.
    static func ruleFieldChanges(_ before: Rule, _ after: Rule, route: String) -> [Change] {
        let object = "rule \(after.name) in route \(route)"
        var changes: [Change] = []
        func changed(_ detail: String) {
            changes.append(Change(kind: .changed, object: object, detail: detail, route: route))
        }
        if before.condition != after.condition {
            changed("condition \(before.condition) → \(after.condition)")
        }
        if before.upstream != after.upstream {
            changed("upstream \(before.upstream) → \(after.upstream)")
        }
        if before.stickiness != after.stickiness {
            let old = self.describe(stickiness: before.stickiness)
            changed("stickiness \(old) → \(self.describe(stickiness: after.stickiness))")
        }
        return changes.isEmpty ? [Change(kind: .changed, object: object, route: route)] : changes
    }

    /// Matches two lists by name and reports removals (old order), then additions and changes (new order).
    ///
    /// Every object type is compared the same way, so the order of lines is predictable across types.
    static func namedChanges<Element: Equatable>(
        _ old: [Element],
        _ new: [Element],
        name: (Element) -> String,
        added: (Element) -> [Change],
        removed: (Element) -> Change,
        changed: (Element, Element) -> [Change]
    ) -> [Change] {
        let oldByName = Dictionary(old.map { (name($0), $0) }, uniquingKeysWith: { first, _ in first })
        let newNames = Set(new.map(name))
        var changes = old.filter { !newNames.contains(name($0)) }.map(removed)
        for element in new {
            if let previous = oldByName[name(element)] {
                if previous != element {
                    changes += changed(previous, element)
                }
            } else {
                changes += added(element)
            }
        }
        return changes
    }
}
