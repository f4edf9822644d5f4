import CorralCore

/// A usage report as one self-contained HTML page: a table per agent and an
/// SVG chart per resource of usage against its soft and hard limits, with
/// the enforcement actions marked. No script, no external file.
public enum ReportHTML {
    /// The colour of the enforcement markers, and only of them: the legend's
    /// swatch is a lighter shade, so in a rendering this colour appears
    /// exactly where a marker is drawn (the report test counts it).
    public static let markerColour = "#7b3294"
    /// The legend's enforcement swatch: lighter than `markerColour`, and
    /// anti-aliasing only blends it further towards the white background.
    public static let markerLegendColour = "#b995d4"
    /// Pixels one marker covers: a vertical line `markerWidth` wide at a
    /// whole-pixel position, without anti-aliasing, from the chart's top
    /// margin to its bottom margin.
    public static var markerPixels: Int { markerWidth * Int(height - margin) }
    public static let markerWidth = 2

    public static func render(_ report: UsageReport) -> String {
        var html = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>Corral usage report</title>
            <style>
            body { font: 14px system-ui, sans-serif; margin: 24px; color: #222; background: #fff; }
            h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; }
            table { border-collapse: collapse; margin: 8px 0; } td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
            th { background: #f3f3f3; } td.l, th.l { text-align: left; }
            .chart { margin: 6px 0 18px; } .legend span { margin-right: 14px; }
            .usage { color: #1f77b4; } .soft { color: #e69f00; } .hard { color: #d62728; } .action { color: \(markerLegendColour); }
            </style></head><body>
            <h1>Corral usage report</h1>
            <p>Since \(report.since.iso8601), generated \(report.generatedAt.iso8601); \(report.agents.count) agents.</p>

            """
        for agent in report.agents {
            html += "<section class=\"agent\" data-agent=\"\(escape(agent.agent))\">\n"
            html += "<h2>\(escape(agent.agent)) <small>(\(escape(agent.group)), \(agent.state.rawValue))</small></h2>\n"
            html += "<table><tr><th class=\"l\">resource</th><th>mean</th><th>p50</th><th>p90</th><th>p99</th><th>peak</th>"
            html += "<th>soft</th><th>hard</th><th class=\"l\">pattern</th><th>over soft</th><th>over hard</th></tr>\n"
            for resource in agent.resources {
                let unit = resource.unit
                let stats = resource.statistics
                html += "<tr><td class=\"l\">\(resource.resource.rawValue)</td><td>\(unit.format(stats.mean))</td>"
                html += "<td>\(unit.format(stats.p50))</td><td>\(unit.format(stats.p90))</td><td>\(unit.format(stats.p99))</td>"
                html += "<td>\(unit.format(stats.maximum))</td><td>\(unit.format(resource.soft))</td><td>\(unit.format(resource.hard))</td>"
                html += "<td class=\"l\">\(resource.pattern.rawValue) (\(Int((resource.confidence * 100).rounded()))%)</td>"
                html += "<td>\(Int(resource.secondsOverSoft)) s</td><td>\(Int(resource.secondsOverHard)) s</td></tr>\n"
            }
            html += "</table>\n"
            if !agent.actions.isEmpty {
                let actions = agent.actions.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
                html += "<p>Enforcement: \(escape(actions)).</p>\n"
            }
            for recommendation in agent.recommendations {
                html += "<p class=\"recommendation\"><b>\(recommendation.kind.rawValue)</b> \(recommendation.resource.rawValue): "
                html += "\(escape(recommendation.rationale))</p>\n"
            }
            for resource in agent.resources where !resource.points.isEmpty {
                html += chart(resource, events: agent.events.filter { $0.resource == resource.resource }, since: report.since)
            }
            html += "</section>\n"
        }
        html += "</body></html>\n"
        return html
    }

    static let width = 720.0
    static let height = 200.0
    static let margin = 40.0

    /// An SVG line chart of the points, the soft and hard limits as
    /// horizontal lines, and each enforcement action as a vertical marker.
    static func chart(_ resource: ResourceReport, events: [ReportEvent], since: Timestamp) -> String {
        let start = Double(min(resource.points.first!.at.milliseconds, events.map(\.at.milliseconds).min() ?? Int64.max))
        let end = Double(max(resource.points.last!.at.milliseconds, events.map(\.at.milliseconds).max() ?? 0))
        let span = max(end - start, 1)
        let top = max(resource.statistics.maximum, resource.hard > 0 ? resource.hard : 0, resource.soft) * 1.1
        let ceiling = top > 0 ? top : 1
        func x(_ time: Timestamp) -> Double { margin + (Double(time.milliseconds) - start) / span * (width - 2 * margin) }
        func y(_ value: Double) -> Double { height - margin / 2 - value / ceiling * (height - margin) }
        func format(_ value: Double) -> String { Quantity.formatDecimal(value, places: 1) }
        let line = resource.points.map { "\(format(x($0.at))),\(format(y($0.value)))" }.joined(separator: " ")
        var svg = "<div class=\"chart\" data-resource=\"\(resource.resource.rawValue)\">\n"
        svg += "<div class=\"legend\"><b>\(resource.resource.rawValue)</b> <span class=\"usage\">■ usage</span>"
        svg += "<span class=\"soft\">■ soft \(resource.unit.format(resource.soft))</span>"
        svg +=
            "<span class=\"hard\">■ hard \(resource.unit.format(resource.hard))</span><span class=\"action\">▮ enforcement</span></div>\n"
        svg +=
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\">\n"
        svg += "<rect x=\"0\" y=\"0\" width=\"\(Int(width))\" height=\"\(Int(height))\" fill=\"#fafafa\" stroke=\"#ddd\"/>\n"
        for (value, color, name) in [(resource.soft, "#e69f00", "soft"), (resource.hard, "#d62728", "hard")] where value > 0 {
            svg +=
                "<line class=\"\(name)\" x1=\"\(format(margin))\" x2=\"\(format(width - margin))\" y1=\"\(format(y(value)))\" y2=\"\(format(y(value)))\" "
            svg += "stroke=\"\(color)\" stroke-width=\"2\" stroke-dasharray=\"6 4\"/>\n"
        }
        // At a whole pixel and without anti-aliasing: each marker covers exactly `markerPixels`.
        for event in events {
            let at = Int(x(event.at).rounded())
            svg += "<line class=\"action\" x1=\"\(at)\" x2=\"\(at)\" y1=\"\(Int(margin / 2))\" y2=\"\(Int(height - margin / 2))\" "
            svg += "stroke=\"\(markerColour)\" stroke-width=\"\(markerWidth)\" shape-rendering=\"crispEdges\">"
            svg += "<title>\(event.action.rawValue) at \(event.at.iso8601)</title></line>\n"
        }
        svg += "<polyline class=\"usage\" points=\"\(line)\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"3\"/>\n"
        svg += "<text x=\"4\" y=\"14\" font-size=\"11\">\(escape(resource.unit.format(ceiling)))</text>\n"
        svg +=
            "<text x=\"4\" y=\"\(Int(height) - 4)\" font-size=\"11\">\(resource.points.first!.at.iso8601) … \(resource.points.last!.at.iso8601)</text>\n"
        svg += "</svg></div>\n"
        return svg
    }

    static func escape(_ text: String) -> String {
        var result = ""
        for character in text {
            switch character {
            case "<": result += "&lt;"
            case ">": result += "&gt;"
            case "&": result += "&amp;"
            case "\"": result += "&quot;"
            default: result.append(character)
            }
        }
        return result
    }
}
