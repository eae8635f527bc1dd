import Foundation

/// Writes command output to standard output and diagnostics to standard error.
///
/// Swift 6 treats the C `stdout` global as unsafe across concurrency domains; `FileHandle` writes are unbuffered and
/// safe, and keeping every write here means no command prints any other way.
enum Console {
    /// Writes `text` and a newline to standard output.
    ///
    /// Results go here so that scripts can capture them apart from diagnostics.
    static func out(_ text: String = "") {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }

    /// Writes `text` and a newline to standard error.
    ///
    /// Errors, warnings and notes go here so that they never end up in a captured result.
    static func err(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    /// Writes `value` as pretty-printed JSON with sorted keys to standard output.
    ///
    /// Sorted keys keep `--json` output stable between runs, so scripts and tests can compare it.
    static func json(_ value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        let data = try encoder.encode(value)
        Console.out(String(decoding: data, as: UTF8.self))
    }
}

/// A plain-text table with a header row and columns padded to their widest cell.
///
/// Read commands print these by default; `--json` is for scripts.
struct TextTable {
    var header: [String]
    var rows: [[String]] = []

    init(_ header: String...) {
        self.header = header
    }

    mutating func append(_ row: [String]) {
        self.rows.append(row)
    }

    /// The table as lines, two spaces between columns, no trailing spaces.
    ///
    /// An empty table still prints its header so that the columns are known.
    var rendered: String {
        let all = [self.header] + self.rows
        var widths = Array(repeating: 0, count: self.header.count)
        for row in all {
            for (index, cell) in row.enumerated() where index < widths.count {
                widths[index] = max(widths[index], cell.count)
            }
        }
        return all.map { row in
            var line = ""
            for (index, cell) in row.enumerated() {
                let isLast = index == row.count - 1
                line += isLast ? cell : cell.padding(toLength: widths[index] + 2, withPad: " ", startingAt: 0)
            }
            return line.trimmingCharacters(in: .whitespaces)
        }.joined(separator: "\n")
    }
}
