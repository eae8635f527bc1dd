import FicusStore

extension RevisionDiff {
    /// One change, for `--json` output.
    struct Entry: Encodable {
        var kind: String
        var object: String
        var detail: String
        var route: String?
    }

    /// The changes as encodable values.
    ///
    /// `RevisionDiff` lives in the store module without `Encodable`; the CLI decides the JSON shape.
    var entries: [Entry] {
        self.changes.map {
            Entry(
                kind: $0.kind == .added ? "added" : $0.kind == .removed ? "removed" : "changed",
                object: $0.object,
                detail: $0.detail,
                route: $0.route
            )
        }
    }

    /// `2 to add, 1 to change, 0 to remove`, as `terraform plan` ends.
    var tally: String {
        let count = { (kind: Kind) in self.changes.filter { $0.kind == kind }.count }
        return "\(count(.added)) to add, \(count(.changed)) to change, \(count(.removed)) to remove"
    }
}
