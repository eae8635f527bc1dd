import Foundation

/// Renders a report as a concise terminal summary.
///
/// What an engineer reads before moving a route: the verdict per endpoint and, under it, the fields that caused it.
/// Colour is off unless asked for, so that pipes and files get plain text; the CLI asks only on a TTY.
public struct TextRenderer: Sendable {
    public var colour: Bool
    /// Fields listed per endpoint; the rest are counted.
    public var maxFields: Int

    public init(colour: Bool = false, maxFields: Int = 8) {
        self.colour = colour
        self.maxFields = maxFields
    }

    public func render(_ report: MigrationReport) -> String {
        var lines: [String] = []
        let revision = report.revision.map { " · revision \($0)" } ?? ""
        lines.append(self.bold("Ficus migration report") + " · \(ReportFormatting.window(report.window))\(revision)")
        let totals = report.totals
        if totals.endpoints == 0 {
            lines.append("No shadowed requests in the window.")
        } else {
            let differing = EndpointReport.percent(totals.differing, of: totals.compared)
            let afterNoise = EndpointReport.percent(totals.differingAfterNoise, of: totals.compared)
            lines.append(
                "\(totals.endpoints) endpoint\(totals.endpoints == 1 ? "" : "s"): \(totals.ready) ready, "
                    + "\(totals.regressions) with regressions, \(totals.unconfirmed) unconfirmed, "
                    + "\(totals.notEnoughTraffic) without enough traffic · "
                    + "\(totals.compared) compared, \(ReportFormatting.percent(differing)) differing "
                    + "(\(ReportFormatting.percent(afterNoise)) after noise), \(totals.errors) shadow errors"
            )
            let coverage = EndpointReport.percent(totals.compared, of: totals.eligible)
            lines.append(
                "Coverage: \(totals.compared) of \(totals.eligible) requests chosen for shadowing were compared "
                    + "(\(ReportFormatting.percent(coverage))); \(totals.dropped) dropped, \(totals.errors) shadow errors"
            )
            lines.append("")
            lines.append(contentsOf: self.endpointTable(report.endpoints))
        }
        if !report.routes.isEmpty {
            lines.append("")
            lines.append(self.bold("Routes"))
            for route in report.routes {
                lines.append(contentsOf: self.route(route))
            }
        }
        lines.append("")
        lines.append("Gate: " + self.paint(ReportFormatting.gate(report.verdict), for: report.verdict))
        return lines.joined(separator: "\n") + "\n"
    }

    func endpointTable(_ endpoints: [EndpointReport]) -> [String] {
        let header = ["ROUTE", "ENDPOINT", "COMPARED", "IDENTICAL", "DIFFERING", "AFTER NOISE", "P99 SERVE/SHADOW",
            "VERDICT"]
        let rows = endpoints.map { endpoint in
            [
                TerminalText.safe(endpoint.route),
                TerminalText.safe(endpoint.endpoint),
                String(endpoint.compared),
                ReportFormatting.percent(endpoint.identicalPercent),
                ReportFormatting.percent(endpoint.differingPercent),
                ReportFormatting.percent(endpoint.differingAfterNoisePercent),
                ReportFormatting.latency(endpoint.latency.serving.p99Microseconds) + " / "
                    + (endpoint.latency.shadow.map { ReportFormatting.latency($0.p99Microseconds) } ?? "-"),
                endpoint.verdict.rawValue,
            ]
        }
        var widths = header.map(\.count)
        for row in rows {
            for (index, cell) in row.enumerated() {
                widths[index] = max(widths[index], cell.count)
            }
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { index, cell in
                index == cells.count - 1 ? cell : cell.padding(toLength: widths[index] + 2, withPad: " ", startingAt: 0)
            }.joined()
        }
        var lines = [self.bold(line(header))]
        for (endpoint, row) in zip(endpoints, rows) {
            var cells = row
            let verdict = cells.removeLast()
            lines.append(line(cells + [""]) + self.paint(verdict, for: endpoint.verdict))
            for field in endpoint.fields.prefix(self.maxFields) {
                let mark =
                    field.noise
                    ? "  ·" : field.unconfirmed ? self.paint("  ?", for: Verdict.unconfirmed)
                    : self.paint("  ✗", for: Verdict.regressions)
                let noise =
                    field.noise
                    ? "  noise (\(field.noiseCount) in noise samples, scaled)"
                    : field.unconfirmed
                        ? "  unconfirmed (\(endpoint.noiseSamples) noise samples so far: not yet told from noise)" : ""
                lines.append(
                    "\(mark) \(TerminalText.safe(field.path))  \(field.kind)  \(field.count)/\(endpoint.compared)\(noise)")
            }
            if endpoint.fields.count > self.maxFields {
                lines.append("    … \(endpoint.fields.count - self.maxFields) more fields")
            }
            lines.append("    " + Self.coverage(endpoint))
            if let wait = endpoint.latency.shadowWait {
                lines.append(
                    "    shadow copies waited inside Ficus: p50 \(ReportFormatting.latency(wait.p50Microseconds)), "
                        + "p99 \(ReportFormatting.latency(wait.p99Microseconds)) (not counted in shadow latency)")
            }
            let statuses = endpoint.statuses.filter { $0.shadow != $0.serving }
            if !statuses.isEmpty {
                let cells = statuses.prefix(4).map { "\(ReportFormatting.status($0)) ×\($0.count)" }
                lines.append("    status: " + cells.joined(separator: ", "))
            }
        }
        return lines
    }

    /// `coverage: 1200 eligible, 1000 shadowed, 950 compared (79.17%), 50 shadow errors, 200 dropped (capacity 150,
    /// memory 50 after sending)`.
    static func coverage(_ endpoint: EndpointReport) -> String {
        let coverage = endpoint.coverage
        var line = "coverage: \(coverage.eligible) eligible, \(coverage.shadowed) shadowed, \(coverage.compared) compared "
            + "(\(ReportFormatting.percent(coverage.comparedPercent))), \(coverage.errors) shadow errors, "
            + "\(coverage.dropped) dropped"
        if !coverage.drops.isEmpty {
            let reasons = coverage.drops.map {
                "\(TerminalText.safe($0.reason)) \($0.count)\($0.sent ? " after sending" : "")"
            }
            line += " (" + reasons.joined(separator: ", ") + ")"
        }
        return line
    }

    func route(_ route: RouteProgress) -> [String] {
        var line = "  \(TerminalText.safe(route.route)): configured \(ReportFormatting.shares(route.configuredShares))"
        if !route.conditionalRules.isEmpty {
            line += " (+ conditional: \(TerminalText.safe(route.conditionalRules.joined(separator: ", "))))"
        }
        if let legacy = route.observedLegacyPercent, let new = route.observedNewPercent {
            let requests = route.observed.reduce(0) { $0 + $1.requests }
            line += " · observed legacy \(ReportFormatting.percent(legacy)) / new \(ReportFormatting.percent(new))"
                + " of \(requests)"
        } else {
            line += " · no observed traffic"
        }
        var lines = [line]
        var history = "    "
        if let since = route.sinceRevision {
            history += "as of revision \(since)"
            if let date = route.since {
                history += " (\(ReportFormatting.time(date)))"
            }
            history += " · "
        }
        history += "\(route.flips) flip\(route.flips == 1 ? "" : "s"), \(route.rollbacks) rollback"
            + "\(route.rollbacks == 1 ? "" : "s") in the window"
        lines.append(history)
        if let canary = route.canary {
            lines.append("    " + TerminalText.safe(ReportFormatting.canary(canary)))
            lines.append("      gates: " + TerminalText.safe(canary.gates.map(ReportFormatting.gate).joined(separator: ", ")))
            for judgement in canary.judgements.suffix(5) {
                lines.append("      " + TerminalText.safe(ReportFormatting.judgement(judgement)))
            }
        }
        for slots in route.slots {
            lines.append("    blue-green " + TerminalText.safe(ReportFormatting.slots(slots)))
            for event in slots.events.prefix(3) {
                let revision = event.revision.map { "r\($0) " } ?? ""
                lines.append(
                    "      \(revision)\(ReportFormatting.time(event.time)) \(TerminalText.safe(event.author)) "
                        + "\(event.action): " + TerminalText.safe(event.summary))
            }
        }
        for change in route.changes.prefix(5) {
            lines.append(
                "    r\(change.revision) \(ReportFormatting.time(change.time)) \(TerminalText.safe(change.author)) "
                    + "\(change.action): " + TerminalText.safe(change.summary)
                    + (change.reason.isEmpty ? "" : " — \(TerminalText.safe(change.reason))"))
        }
        return lines
    }

    func bold(_ text: String) -> String {
        self.colour ? "\u{1B}[1m\(text)\u{1B}[0m" : text
    }

    func paint(_ text: String, for verdict: Verdict) -> String {
        guard self.colour else {
            return text
        }
        let code =
            switch verdict {
            case .ready: "32"
            case .regressions: "31"
            case .notEnoughTraffic, .unconfirmed: "33"
            }
        return "\u{1B}[\(code)m\(text)\u{1B}[0m"
    }

    func paint(_ text: String, for verdict: GateVerdict) -> String {
        switch verdict {
        case .pass: self.paint(text, for: Verdict.ready)
        case .regressions: self.paint(text, for: Verdict.regressions)
        case .notEnoughTraffic: self.paint(text, for: Verdict.notEnoughTraffic)
        }
    }
}
