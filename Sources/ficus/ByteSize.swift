import Foundation

/// A size given on the command line: bytes, or a number with a binary unit (`256KiB`, `512MiB`, `1GiB`; `K`, `M`,
/// `G` mean the same).
///
/// Sizes of files are powers of two in practice; accepting `1GiB` spares operators counting zeros.
enum ByteSize {
    /// The bytes `text` stands for, or nil when it is not a size (or does not fit in 64 bits).
    static func parse(_ text: String) -> Int64? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let digits = trimmed.prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty, let number = Int64(digits) else {
            return nil
        }
        let shift: Int64
        switch trimmed.dropFirst(digits.count).lowercased() {
        case "", "b": shift = 0
        case "k", "kib", "kb": shift = 10
        case "m", "mib", "mb": shift = 20
        case "g", "gib", "gb": shift = 30
        case "t", "tib", "tb": shift = 40
        default: return nil
        }
        let (bytes, overflow) = number.multipliedReportingOverflow(by: 1 << shift)
        return overflow ? nil : bytes
    }
}
