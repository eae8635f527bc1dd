import FicusDiff
import Foundation

extension BodyExcerpt {
    /// The excerpt of `body`: JSON pretty-printed with the lines under `paths` marked, text as is, binary as a note.
    ///
    /// `paths` are concrete difference paths (`$.items[2].sku`); a line is marked when its path is one of them or
    /// lies inside one, so a whole changed object is marked, not only its opening brace.
    static func make(body: [UInt8], truncated: Bool, paths: Set<String>, maxCharacters: Int) -> BodyExcerpt {
        if body.isEmpty {
            return BodyExcerpt(text: "", highlightedLines: [], truncated: truncated)
        }
        if !truncated, let value = try? JSONValue.parse(body) {
            var printer = PrettyPrinter(paths: paths)
            printer.write(value, path: "$", indent: 0, prefix: "", suffix: "")
            return Self.bounded(lines: printer.lines, marked: printer.marked, truncated: false, max: maxCharacters)
        }
        guard let text = String(validating: body, as: UTF8.self),
            !text.unicodeScalars.contains(where: { $0.value < 0x20 && $0 != "\n" && $0 != "\r" && $0 != "\t" })
        else {
            return BodyExcerpt(text: "(\(body.count) bytes of binary data)", highlightedLines: [], truncated: truncated)
        }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map {
            String($0.hasSuffix("\r") ? $0.dropLast() : $0)
        }
        return Self.bounded(lines: lines, marked: [], truncated: truncated, max: maxCharacters)
    }

    /// `lines` cut to about `max` characters in whole lines.
    ///
    /// Whole lines keep the marked line numbers valid.
    private static func bounded(lines: [String], marked: [Int], truncated: Bool, max: Int) -> BodyExcerpt {
        var kept: [String] = []
        var total = 0
        var cut = false
        for line in lines {
            if total + line.count + 1 > max, !kept.isEmpty {
                cut = true
                break
            }
            kept.append(String(line.prefix(max)))
            total += line.count + 1
        }
        return BodyExcerpt(
            text: kept.joined(separator: "\n"),
            highlightedLines: marked.filter { $0 < kept.count },
            truncated: truncated || cut
        )
    }

    /// `$.a` followed by `key`, in the comparer's notation (`.name` or `['a b']`).
    ///
    /// Must match `FicusDiff`'s path rendering, or no line would be marked.
    static func append(key: String, to path: String) -> String {
        let bytes = Array(key.utf8)
        let isStart: (UInt8) -> Bool = {
            ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x41 && $0 <= 0x5A) || $0 == UInt8(ascii: "_")
        }
        if let first = bytes.first, isStart(first), bytes.allSatisfy({ isStart($0) || ($0 >= 0x30 && $0 <= 0x39) }) {
            return path + "." + key
        }
        var quoted = ""
        for scalar in key.unicodeScalars {
            if scalar == "\\" || scalar == "'" {
                quoted += "\\"
            }
            quoted.unicodeScalars.append(scalar)
        }
        return path + "['" + quoted + "']"
    }
}

/// Writes a JSON value two spaces per level, one member per line, noting each line's path.
///
/// Reports need the line of every path to mark differences; Foundation's printer neither keeps key order nor exact
/// numbers nor says which line is which.
private struct PrettyPrinter {
    let paths: Set<String>
    var lines: [String] = []
    var marked: [Int] = []

    init(paths: Set<String>) {
        self.paths = paths
    }

    /// Whether `path` is a marked path or lies inside one.
    func isMarked(_ path: String) -> Bool {
        if self.paths.contains(path) {
            return true
        }
        return self.paths.contains { marked in
            path.hasPrefix(marked) && path.count > marked.count
                && ["." as Character, "["].contains(path[path.index(path.startIndex, offsetBy: marked.count)])
        }
    }

    mutating func emit(_ text: String, path: String) {
        if self.isMarked(path) {
            self.marked.append(self.lines.count)
        }
        self.lines.append(text)
    }

    mutating func write(_ value: JSONValue, path: String, indent: Int, prefix: String, suffix: String) {
        let pad = String(repeating: "  ", count: indent)
        switch value {
        case .array(let elements) where !elements.isEmpty:
            self.emit(pad + prefix + "[", path: path)
            for (index, element) in elements.enumerated() {
                let comma = index == elements.count - 1 ? "" : ","
                self.write(element, path: path + "[\(index)]", indent: indent + 1, prefix: "", suffix: comma)
            }
            self.emit(pad + "]" + suffix, path: path)
        case .object(let object) where object.count > 0:
            self.emit(pad + prefix + "{", path: path)
            for (index, key) in object.keys.enumerated() {
                let comma = index == object.keys.count - 1 ? "" : ","
                let member = object[key] ?? .null
                let name = String(decoding: JSONValue.string(key).serialized(), as: UTF8.self) + ": "
                let childPath = BodyExcerpt.append(key: key, to: path)
                self.write(member, path: childPath, indent: indent + 1, prefix: name, suffix: comma)
            }
            self.emit(pad + "}" + suffix, path: path)
        default:
            self.emit(pad + prefix + String(decoding: value.serialized(), as: UTF8.self) + suffix, path: path)
        }
    }
}
