/// A line-level summary of how two text bodies differ.
///
/// A text answer can be megabytes; a report needs how much changed and where it starts, not a full patch, so only
/// the edit distance is computed (Myers), with a cost bound past which an order-blind count stands in.
struct LineDiff {
    /// Lines only the shadow has.
    private(set) var added = 0
    /// Lines only the serving side has.
    private(set) var removed = 0
    /// Whether the counts are an order-blind estimate because the exact diff would cost too much.
    private(set) var approximate = false
    /// The first differing serving line, rendered as `line N: text`, or `nil` past its end.
    private(set) var firstDifferingServingLine: String?
    /// The first differing shadow line, rendered like the serving one.
    private(set) var firstDifferingShadowLine: String?

    /// The most Myers work (lines × edit distance) spent before falling back to the estimate.
    static let workBound = 20_000_000

    init(serving: [UInt8], shadow: [UInt8]) {
        let servingLines = LineDiff.lines(serving)
        let shadowLines = LineDiff.lines(shadow)
        var ids: [ArraySlice<UInt8>: Int] = [:]
        let left = LineDiff.intern(servingLines, into: &ids)
        let right = LineDiff.intern(shadowLines, into: &ids)

        var prefix = 0
        while prefix < left.count, prefix < right.count, left[prefix] == right[prefix] {
            prefix += 1
        }
        var suffix = 0
        while suffix < left.count - prefix, suffix < right.count - prefix,
            left[left.count - 1 - suffix] == right[right.count - 1 - suffix]
        {
            suffix += 1
        }
        let a = Array(left[prefix..<(left.count - suffix)])
        let b = Array(right[prefix..<(right.count - suffix)])
        if prefix < servingLines.count {
            self.firstDifferingServingLine = LineDiff.render(servingLines[prefix], number: prefix + 1)
        }
        if prefix < shadowLines.count {
            self.firstDifferingShadowLine = LineDiff.render(shadowLines[prefix], number: prefix + 1)
        }
        let limit = max(64, LineDiff.workBound / max(1, a.count + b.count))
        if let distance = LineDiff.editDistance(a, b, limit: limit) {
            self.removed = (distance + a.count - b.count) / 2
            self.added = (distance - a.count + b.count) / 2
        } else {
            self.approximate = true
            var counts: [Int: Int] = [:]
            for line in a {
                counts[line, default: 0] += 1
            }
            for line in b {
                counts[line, default: 0] -= 1
            }
            self.removed = counts.values.filter { $0 > 0 }.reduce(0, +)
            self.added = -counts.values.filter { $0 < 0 }.reduce(0, +)
        }
    }

    /// The summary shown in reports: `+3 -1 lines`.
    var summary: String {
        var text = "+\(self.added) -\(self.removed) lines"
        if self.approximate {
            text += " (approximate)"
        } else if self.added == 0, self.removed == 0 {
            text += " (final newline differs)"
        }
        return text
    }

    /// The lines of `bytes`, split at LF; a final LF ends the last line rather than starting an empty one, and an
    /// empty body has no lines.
    static func lines(_ bytes: [UInt8]) -> [ArraySlice<UInt8>] {
        guard !bytes.isEmpty else {
            return []
        }
        var lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: false)
        if bytes.last == 0x0A {
            lines.removeLast()
        }
        return lines
    }

    /// Each line replaced by a small integer, equal lines by the same one, so that the diff compares integers.
    private static func intern(_ lines: [ArraySlice<UInt8>], into ids: inout [ArraySlice<UInt8>: Int]) -> [Int] {
        lines.map { line in
            if let id = ids[line] {
                return id
            }
            let id = ids.count
            ids[line] = id
            return id
        }
    }

    private static func render(_ line: ArraySlice<UInt8>, number: Int) -> String {
        RenderedText.cut("line \(number): " + String(decoding: line, as: UTF8.self))
    }

    /// The Myers edit distance (insertions plus deletions), or `nil` when it exceeds `limit`.
    static func editDistance(_ a: [Int], _ b: [Int], limit: Int) -> Int? {
        let n = a.count
        let m = b.count
        let bound = min(n + m, limit)
        let offset = bound + 1
        var furthest = [Int](repeating: 0, count: 2 * bound + 3)
        for distance in 0...bound {
            for diagonal in stride(from: -distance, through: distance, by: 2) {
                var x: Int
                if diagonal == -distance
                    || (diagonal != distance && furthest[offset + diagonal - 1] < furthest[offset + diagonal + 1])
                {
                    x = furthest[offset + diagonal + 1]
                } else {
                    x = furthest[offset + diagonal - 1] + 1
                }
                var y = x - diagonal
                while x < n, y < m, a[x] == b[y] {
                    x += 1
                    y += 1
                }
                furthest[offset + diagonal] = x
                if x >= n, y >= m {
                    return distance
                }
            }
        }
        return nil
    }
}
