import Foundation

/// Inline SVG charts for the HTML report, drawn from the report's numbers alone.
///
/// Static markup rather than a charting script: the file must work offline, print, and show the same numbers as the
/// JSON. Every point carries its numbers in `data-` attributes so that tools (and tests) can check the totals.
enum HTMLCharts {
    /// The diff rate per timeline bucket: one circle per bucket (raw rate), a dashed line after noise, and grey bars
    /// for the compared volume.
    static func diffRate(_ points: [TimelinePoint], bucketSeconds: Int) -> String {
        let width = 760.0
        let height = 220.0
        let left = 48.0
        let right = 12.0
        let top = 12.0
        let bottom = 40.0
        let plotWidth = width - left - right
        let plotHeight = height - top - bottom
        let maxRate = points.map { max($0.rate, $0.rateAfterNoise) }.max() ?? 0
        let scale = Self.niceCeiling(max(maxRate, 0.01))
        let maxCompared = max(points.map(\.compared).max() ?? 0, 1)
        // Each bucket owns an equal slot and is drawn at its middle, so the volume bars never cross the axes.
        let slot = plotWidth / Double(max(points.count, 1))
        let barWidth = max(1, min(24, slot * 0.6))
        func x(_ index: Int) -> Double { left + slot * (Double(index) + 0.5) }
        func y(_ rate: Double) -> Double { top + plotHeight * (1 - min(rate / scale, 1)) }

        let compared = points.reduce(0) { $0 + $1.compared }
        let differing = points.reduce(0) { $0 + $1.differing }
        let afterNoise = points.reduce(0) { $0 + $1.differingAfterNoise }
        var svg = "<figure class=\"chart\" id=\"diff-rate\" data-buckets=\"\(points.count)\" "
        svg += "data-total-compared=\"\(compared)\" data-total-differing=\"\(differing)\" "
        svg += "data-total-differing-after-noise=\"\(afterNoise)\" data-bucket-seconds=\"\(bucketSeconds)\">\n"
        svg += "<svg viewBox=\"0 0 \(Int(width)) \(Int(height))\" width=\"\(Int(width))\" height=\"\(Int(height))\" "
        svg += "role=\"img\" aria-label=\"Diff rate per \(bucketSeconds / 60)-minute bucket\" "
        svg += "xmlns=\"http://www.w3.org/2000/svg\">\n"
        for fraction in [0.0, 0.5, 1.0] {
            let lineY = Self.f(y(scale * fraction))
            svg += "<line class=\"axis\" x1=\"\(Self.f(left))\" x2=\"\(Self.f(width - right))\" y1=\"\(lineY)\" "
            svg += "y2=\"\(lineY)\"/>"
            svg += "<text x=\"\(Self.f(left - 6))\" y=\"\(lineY)\" text-anchor=\"end\" dominant-baseline=\"middle\">"
            svg += "\(Self.percentLabel(scale * fraction))</text>\n"
        }
        for (index, point) in points.enumerated() where point.compared > 0 {
            let barHeight = plotHeight * 0.35 * Double(point.compared) / Double(maxCompared)
            svg += "<rect class=\"volume\" fill=\"#e3e7eb\" x=\"\(Self.f(x(index) - barWidth / 2))\" "
            svg += "y=\"\(Self.f(top + plotHeight - barHeight))\" width=\"\(Self.f(barWidth))\" "
            svg += "height=\"\(Self.f(barHeight))\"/>\n"
        }
        let raw = points.enumerated().map { "\(Self.f(x($0.offset))),\(Self.f(y($0.element.rate)))" }
        let after = points.enumerated().map { "\(Self.f(x($0.offset))),\(Self.f(y($0.element.rateAfterNoise)))" }
        if points.count > 1 {
            svg += "<polyline class=\"raw\" points=\"\(raw.joined(separator: " "))\"/>\n"
            svg += "<polyline class=\"after\" points=\"\(after.joined(separator: " "))\"/>\n"
        }
        for (index, point) in points.enumerated() {
            // The after-noise rate gets its own marker: with one bucket there is no line to show it.
            let afterX = x(index)
            let afterY = y(point.rateAfterNoise)
            svg += "<rect class=\"after-point\" fill=\"#a86400\" x=\"\(Self.f(afterX - 2.5))\" "
            svg += "y=\"\(Self.f(afterY - 2.5))\" width=\"5\" height=\"5\"/>\n"
            let time = ReportFormatting.time(point.start)
            svg += "<circle class=\"point\" cx=\"\(Self.f(x(index)))\" cy=\"\(Self.f(y(point.rate)))\" r=\"3\" "
            svg += "data-start=\"\(time)\" data-compared=\"\(point.compared)\" data-differing=\"\(point.differing)\" "
            svg += "data-differing-after-noise=\"\(point.differingAfterNoise)\" data-errors=\"\(point.errors)\">"
            svg += "<title>\(time): \(point.differing)/\(point.compared) differing, \(point.differingAfterNoise) after "
            svg += "noise, \(point.errors) errors</title></circle>\n"
        }
        if let first = points.first, let last = points.last {
            if points.count == 1 {
                svg += "<text x=\"\(Self.f(x(0)))\" y=\"\(Self.f(height - 12))\" text-anchor=\"middle\">"
                svg += "\(ReportFormatting.time(first.start))</text>\n"
            } else {
                svg += "<text x=\"\(Self.f(left))\" y=\"\(Self.f(height - 12))\">\(ReportFormatting.time(first.start))"
                svg += "</text>"
                svg += "<text x=\"\(Self.f(width - right))\" y=\"\(Self.f(height - 12))\" text-anchor=\"end\">"
                svg += "\(ReportFormatting.time(last.start))</text>\n"
            }
        }
        svg += "</svg>\n<figcaption class=\"legend\"><span><i class=\"swatch\" style=\"background:#c62828\"></i>"
        svg += "differing (raw)</span><span><i class=\"swatch\" style=\"background:#a86400\"></i>after noise</span>"
        svg += "<span><i class=\"swatch\" style=\"background:#e3e7eb\"></i>compared volume</span> "
        svg += "\(points.count) bucket\(points.count == 1 ? "" : "s") of \(bucketSeconds / 60) min · "
        svg += "\(compared) compared, \(differing) differing, "
        svg += "\(afterNoise) after noise</figcaption>\n</figure>\n"
        return svg
    }

    /// p50, p95 and p99 of both sides as grouped bars.
    static func latency(_ latency: EndpointLatency) -> String {
        let width = 360.0
        let height = 170.0
        let left = 8.0
        let top = 16.0
        let bottom = 24.0
        let plotHeight = height - top - bottom
        let serving = [latency.serving.p50Microseconds, latency.serving.p95Microseconds,
            latency.serving.p99Microseconds]
        let shadow = latency.shadow.map {
            [$0.p50Microseconds, $0.p95Microseconds, $0.p99Microseconds]
        }
        let maximum = Double(max((serving + (shadow ?? [])).max() ?? 0, 1))
        let groupWidth = (width - left * 2) / 3
        let barWidth = groupWidth * 0.35
        var svg = "<figure class=\"chart latency\">\n<svg viewBox=\"0 0 \(Int(width)) \(Int(height))\" "
        svg += "width=\"\(Int(width))\" height=\"\(Int(height))\" role=\"img\" aria-label=\"Latency per side\" "
        svg += "xmlns=\"http://www.w3.org/2000/svg\">\n"
        for (index, name) in ["p50", "p95", "p99"].enumerated() {
            let groupX = left + Double(index) * groupWidth + groupWidth * 0.12
            var sides: [(String, Int)] = [("serving", serving[index])]
            if let shadow {
                sides.append(("shadow", shadow[index]))
            }
            for (offset, side) in sides.enumerated() {
                let barHeight = plotHeight * Double(side.1) / maximum
                let barX = groupX + Double(offset) * (barWidth + 4)
                let barY = top + plotHeight - barHeight
                svg += "<rect class=\"bar \(side.0)\" x=\"\(Self.f(barX))\" y=\"\(Self.f(barY))\" "
                svg += "width=\"\(Self.f(barWidth))\" height=\"\(Self.f(barHeight))\" data-side=\"\(side.0)\" "
                svg += "data-percentile=\"\(name)\" data-microseconds=\"\(side.1)\"><title>\(side.0) \(name): "
                svg += "\(ReportFormatting.latency(side.1))</title></rect>"
                svg += "<text x=\"\(Self.f(barX + barWidth / 2))\" y=\"\(Self.f(barY - 3))\" text-anchor=\"middle\">"
                svg += "\(ReportFormatting.latency(side.1))</text>\n"
            }
            svg += "<text x=\"\(Self.f(groupX + barWidth))\" y=\"\(Self.f(height - 6))\" text-anchor=\"middle\">"
            svg += "\(name)</text>\n"
        }
        svg += "</svg>\n<figcaption class=\"legend\"><span><i class=\"swatch\" style=\"background:#2f6fbf\"></i>"
        svg += "serving (\(latency.serving.count))</span><span><i class=\"swatch\" style=\"background:#d9822b\"></i>"
        svg += latency.shadow.map { "shadow (\($0.count))" } ?? "shadow: no answers"
        svg += "</span></figcaption>\n</figure>\n"
        return svg
    }

    /// The smallest of 1-2-5 steps (as a fraction) at or above `value`, at most 1.
    static func niceCeiling(_ value: Double) -> Double {
        for step in [0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0] where value <= step {
            return step
        }
        return 1
    }

    static func percentLabel(_ fraction: Double) -> String {
        let percent = fraction * 100
        return percent == percent.rounded() ? "\(Int(percent))%" : String(format: "%.1f%%", percent)
    }

    /// A coordinate with one decimal.
    static func f(_ value: Double) -> String {
        String(format: "%.1f", value)
    }
}
