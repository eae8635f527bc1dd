import Yams

/// Numbers in a rules file that the YAML decoder would trap on, found before decoding.
///
/// Yams reads `1:30:00` as a base-60 integer (YAML 1.1 sexagesimal) with unchecked multiplications, so a scalar with
/// enough colon-separated parts (or one huge part) overflows and ends the process while decoding any integer field.
/// Every number from a file must be an error line rather than a trap, so such scalars are refused here with their
/// place; other out-of-range integers fail to decode and are reported by the decoder's error.
enum RulesNumbers {
    /// A problem for every plain scalar that would overflow as a base-60 integer.
    ///
    /// The walk visits every node once per use; the bounds check before it caps what aliases add.
    static func check(_ root: Node, file: String) -> [RulesProblem] {
        var problems: [RulesProblem] = []
        self.walk(root, file: file, problems: &problems)
        return problems
    }

    private static func walk(_ node: Node, file: String, problems: inout [RulesProblem]) {
        switch node {
        case .scalar(let scalar):
            guard scalar.style == .plain || scalar.style == .any, self.overflowsAsSexagesimal(scalar.string) else {
                return
            }
            problems.append(
                RulesProblem(
                    file: file,
                    line: node.mark?.line,
                    column: node.mark?.column,
                    message: "\(scalar.string) is outside the range of an integer (\(Int.min) to \(Int.max))"
                )
            )
        case .mapping(let mapping):
            for (key, value) in mapping {
                self.walk(key, file: file, problems: &problems)
                self.walk(value, file: file, problems: &problems)
            }
        case .sequence(let sequence):
            for item in sequence {
                self.walk(item, file: file, problems: &problems)
            }
        case .alias:
            return
        }
    }

    /// Whether `text` is an optionally signed run of ASCII digits (underscores allowed, as YAML 1.1 does).
    static func isDecimalInteger(_ text: String) -> Bool {
        var digits = Substring(text)
        if digits.first == "-" || digits.first == "+" {
            digits = digits.dropFirst()
        }
        return !digits.isEmpty && digits.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F }
            && digits.utf8.contains { $0 != 0x5F }
    }

    /// Whether Yams would read `text` as a base-60 integer whose value or place values pass `Int`'s range.
    ///
    /// Mirrors Yams's reading: underscores removed, then a sign, then no radix prefix (`0x`, `0b`, `0o`, `0`), then
    /// parts separated by `:` that each read as a decimal `Int`; it computes value and place value with overflow
    /// checks, exactly where Yams multiplies and adds without them.
    static func overflowsAsSexagesimal(_ text: String) -> Bool {
        guard text.utf8.contains(UInt8(ascii: ":")) else {
            return false
        }
        var body = Substring(text.replacingOccurrences(of: "_", with: ""))
        let negative = body.first == "-"
        if body.first == "-" || body.first == "+" {
            body = body.dropFirst()
        }
        // Yams tries the radix prefixes before the colon form: "0…" reads as octal and cannot trap.
        if body.hasPrefix("0") {
            return false
        }
        var parts: [Int] = []
        for part in body.split(separator: ":", omittingEmptySubsequences: false) {
            guard let value = Int(part, radix: 10) else {
                return false
            }
            parts.append(value)
        }
        var value = 0
        var place = 1
        for part in parts.reversed() {
            let (scaled, scaledOverflow) = part.multipliedReportingOverflow(by: place)
            let (sum, sumOverflow) = value.addingReportingOverflow(scaled)
            let (nextPlace, placeOverflow) = place.multipliedReportingOverflow(by: 60)
            if scaledOverflow || sumOverflow || placeOverflow {
                return true
            }
            value = sum
            place = nextPlace
        }
        // The sign is applied last, by a multiplication that traps on the one value without a negation.
        return negative && value == Int.min
    }
}
