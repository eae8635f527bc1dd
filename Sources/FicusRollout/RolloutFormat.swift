import Foundation

/// Number and duration formatting for audit lines, reasons and status.
///
/// Reasons are read by people and compared by tests, so the same value must always print the same way, without
/// locale or `String(format:)` differences between platforms.
public enum RolloutFormat {
    /// `value` rounded to at most `decimals` places with trailing zeros dropped: 2.31, 1.5, 3.
    ///
    /// Thresholds print as typed (`1.5`, not `1.50`), measured values short.
    public static func number(_ value: Double, decimals: Int = 2) -> String {
        guard value.isFinite else {
            return "\(value)"
        }
        var scale = 1.0
        for _ in 0..<decimals {
            scale *= 10
        }
        let scaled = (abs(value) * scale).rounded()
        let whole = Int64(scaled / scale)
        var fraction = Int64(scaled - Double(whole) * scale)
        var digits = decimals
        while digits > 0, fraction % 10 == 0 {
            fraction /= 10
            digits -= 1
        }
        let sign = value < 0 && scaled != 0 ? "-" : ""
        guard digits > 0 else {
            return "\(sign)\(whole)"
        }
        let fractionText = String(fraction)
        let padding = String(repeating: "0", count: digits - fractionText.count)
        return "\(sign)\(whole).\(padding)\(fractionText)"
    }

    /// A measured value and its threshold, with just enough decimals that two different numbers never print equal.
    ///
    /// `1.004% > 1%` must not read `1% > 1%`.
    static func pair(_ value: Double, _ threshold: Double, scale: Double = 1, unit: String = "") -> (String, String) {
        var decimals = 2
        var valueText = self.number(value * scale, decimals: decimals)
        let thresholdText = self.number(threshold * scale, decimals: 6)
        while decimals < 6, value != threshold, valueText == thresholdText {
            decimals += 1
            valueText = self.number(value * scale, decimals: decimals)
        }
        return (valueText + unit, thresholdText + unit)
    }

    /// A rate as a percentage: 0.0312 → `3.12%`.
    ///
    /// Rates are stored as fractions but people think of them in percent.
    public static func percent(_ rate: Double) -> String {
        self.number(rate * 100) + "%"
    }

    /// A duration as `1h2m3s`, `2m`, `45s`, rounded up to whole seconds.
    ///
    /// Rounded up so that `next step in 0s` is never shown while the step is still waiting.
    static func duration(_ seconds: TimeInterval) -> String {
        guard seconds.isFinite else {
            return "\(seconds)s"
        }
        var remaining = Int(max(0, seconds).rounded(.up))
        let hours = remaining / 3600
        remaining %= 3600
        let minutes = remaining / 60
        let secs = remaining % 60
        var text = ""
        if hours > 0 {
            text += "\(hours)h"
        }
        if minutes > 0 {
            text += "\(minutes)m"
        }
        if secs > 0 || text.isEmpty {
            text += "\(secs)s"
        }
        return text
    }
}
