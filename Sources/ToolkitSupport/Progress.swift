import Foundation

/// A terminal progress bar with rate and ETA, drawn on standard error.
///
/// It draws only when standard error is a terminal and `enabled` is true (commands pass
/// `!json`), at most ten times a second, and clears its line when finished. Units are free-form
/// (`"merges"`, `"MB"`, `"tok"`); `extra` adds fields such as the current loss.
public final class ProgressBar: @unchecked Sendable {
    public let total: Double
    public let label: String
    public let unit: String
    private let enabled: Bool
    private let start = Date()
    private var lastDraw = Date.distantPast
    private let lock = NSLock()
    private var current: Double = 0

    public init(total: Double, label: String, unit: String, enabled: Bool = true) {
        self.total = total
        self.label = label
        self.unit = unit
        self.enabled = enabled && isatty(STDERR_FILENO) != 0
    }

    /// Sets the absolute progress and redraws if due (`extra` is only built when drawing).
    public func update(_ value: Double, extra: @autoclosure () -> String = "") {
        lock.lock()
        defer { lock.unlock() }
        current = value
        guard enabled else { return }
        let now = Date()
        if now.timeIntervalSince(lastDraw) < 0.1 && value < total { return }
        lastDraw = now
        draw(now: now, extra: extra())
    }

    /// Adds `delta` to the progress.
    public func advance(by delta: Double, extra: @autoclosure () -> String = "") {
        lock.lock()
        let v = current + delta
        lock.unlock()
        update(v, extra: extra())
    }

    /// Clears the bar's line.
    public func finish() {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[2K".utf8))
    }

    private func draw(now: Date, extra: String) {
        let elapsed = max(now.timeIntervalSince(start), 1e-9)
        let fraction = total > 0 ? min(max(current / total, 0), 1) : 0
        let width = 24
        let filled = Int((fraction * Double(width)).rounded(.down))
        let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
        let rate = current / elapsed
        let eta = rate > 0 ? (total - current) / rate : .infinity
        var line = "\r\u{1B}[2K\(label) \(bar) \(Int(fraction * 100))% "
        line += "\(Self.format(current))/\(Self.format(total)) \(unit) "
        line += "[\(Self.format(rate)) \(unit)/s, ETA \(Self.duration(eta))]"
        if !extra.isEmpty { line += " " + extra }
        FileHandle.standardError.write(Data(line.utf8))
    }

    /// Formats a count compactly (1234567 → "1.23M").
    public static func format(_ v: Double) -> String {
        let a = abs(v)
        if a >= 1e9 { return String(format: "%.2fG", v / 1e9) }
        if a >= 1e6 { return String(format: "%.2fM", v / 1e6) }
        if a >= 1e4 { return String(format: "%.1fk", v / 1e3) }
        if a == a.rounded() { return String(Int(v)) }
        return String(format: "%.2f", v)
    }

    /// Formats seconds as `1h02m03s`, `2m05s` or `4.2s`.
    public static func duration(_ s: Double) -> String {
        guard s.isFinite else { return "--" }
        if s >= 3600 { return String(format: "%dh%02dm%02ds", Int(s) / 3600, Int(s) % 3600 / 60, Int(s) % 60) }
        if s >= 60 { return String(format: "%dm%02ds", Int(s) / 60, Int(s) % 60) }
        return String(format: "%.1fs", s)
    }
}
