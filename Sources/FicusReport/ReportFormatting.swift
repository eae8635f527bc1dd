import Foundation

/// Number and time formats shared by the text and HTML renderers.
///
/// One place, so that a percentage or a latency reads the same in a terminal and in a browser.
enum ReportFormatting {
    /// "12.5%", one decimal.
    static func percent(_ value: Double) -> String {
        String(format: "%.1f%%", value)
    }

    /// A latency in µs as "850µs", "12.3ms" or "1.20s".
    static func latency(_ microseconds: Int) -> String {
        if microseconds < 1_000 {
            return "\(microseconds)µs"
        }
        if microseconds < 1_000_000 {
            return String(format: "%.1fms", Double(microseconds) / 1_000)
        }
        return String(format: "%.2fs", Double(microseconds) / 1_000_000)
    }

    /// An ISO 8601 time in UTC, to the second.
    static func time(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }

    /// The window as "FROM – TO", with "start" and "now" for open bounds.
    static func window(_ window: ReportWindow) -> String {
        let from = window.from.map(Self.time) ?? "start of data"
        let to = window.to.map(Self.time) ?? "now"
        return "\(from) – \(to)"
    }

    /// "a ✓ b" style status cell: "200 → 500", "200 → no answer".
    static func status(_ cell: StatusCell) -> String {
        "\(cell.serving) → \(cell.shadow.map(String.init) ?? "no answer")"
    }

    /// The configured shares as "legacy 90%, orders-v2 10%".
    static func shares(_ shares: [UpstreamShare]) -> String {
        shares.map { "\($0.upstream) \(Self.trimmed($0.percent))%" }.joined(separator: ", ")
    }

    /// A percentage without a trailing ".0".
    static func trimmed(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(format: "%.2f", value)
    }

    /// What the gate verdict means for `--fail-on-regression`.
    static func gate(_ verdict: GateVerdict) -> String {
        switch verdict {
        case .pass: "pass (exit 0)"
        case .regressions: "regressions (exit 4 with --fail-on-regression)"
        case .notEnoughTraffic: "not enough traffic (exit 5 with --fail-on-regression)"
        }
    }

    /// A canary's headline: "running, step 2 of 4, 25% new (38% done)" plus the reason or holding note.
    static func canary(_ canary: RouteCanary) -> String {
        var text = "canary → \(canary.target): \(canary.phase), step \(canary.step) of \(canary.stepCount), "
            + "\(canary.weight)% new (\(Self.trimmed(canary.progressPercent.rounded()))% done)"
        if let reason = canary.reason {
            text += " — \(reason)"
        } else if let holding = canary.holding {
            text += " — holding: \(holding)"
        }
        if canary.endedAt == nil {
            text += "; driven by \(canary.driver ?? "no proxy")"
        }
        return text
    }

    /// A gate as "error rate 0.4% (≤ 1%) ok".
    static func gate(_ gate: CanaryGate) -> String {
        let isRate = gate.name.hasSuffix("rate")
        let format: (Double) -> String = { isRate ? Self.trimmed(($0 * 100).rounded() / 100) + "%" : Self.trimmed($0) }
        let sign = gate.name == "requests" ? "≥" : "≤"
        let verdict = gate.passing.map { $0 ? "ok" : (gate.name == "requests" ? "holding" : "FAIL") } ?? "not judged"
        return "\(gate.name) \(gate.value.map(format) ?? "-") (\(sign) \(format(gate.threshold))) \(verdict)"
    }

    /// A judgement as "step 1 (5%) pass at TIME, 120 new requests" or "... hold ×3: reason".
    static func judgement(_ judgement: CanaryJudgement) -> String {
        var text = "step \(judgement.step) (\(judgement.weight)%) \(judgement.verdict)"
        if judgement.count > 1 {
            text += " ×\(judgement.count)"
        }
        text += " at \(Self.time(judgement.at)), \(judgement.newRequests) new requests"
        if !judgement.reason.isEmpty {
            text += ": \(judgement.reason)"
        }
        return text
    }

    /// A blue-green upstream as "orders: blue active [a], green idle [b], preview segment 'qa'".
    static func slots(_ slots: UpstreamSlots) -> String {
        let idle = slots.idleAddresses.isEmpty ? "empty" : "[\(slots.idleAddresses.joined(separator: ", "))]"
        var text = "\(slots.upstream): \(slots.active) active [\(slots.activeAddresses.joined(separator: ", "))], "
            + "\(slots.idle) idle \(idle)"
        if let segment = slots.previewSegment {
            text += ", preview segment '\(segment)'"
        }
        return text
    }
}
