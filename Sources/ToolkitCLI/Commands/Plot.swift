import ArgumentParser
import Foundation
import Reporting
import ToolkitSupport

struct Plot: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Plot training runs: train and validation loss against tokens, and the learning rate (SVG and HTML).",
        discussion: """
            Each argument is a run folder (its metrics.jsonl) or a metrics JSONL file. Writes loss.svg, lr.svg \
            and plot.html (one self-contained page with a table of each run's last values) into --out \
            (default: the first run's folder).
            """)

    @Argument(help: "Run folders or metrics.jsonl files.") var runs: [String]
    @Option(help: "Output folder (default: the first run's folder).") var out: String?
    @Option(help: "Chart title.") var title: String?
    @Flag(help: "Print the written paths as JSON.") var json = false

    func validate() throws {
        guard !runs.isEmpty else { throw ValidationError("give at least one run folder or metrics.jsonl") }
    }

    /// The metrics file of a run folder or the file itself, and the name its curve gets.
    static func metricsFile(_ path: String) throws -> (path: String, name: String) {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw ToolkitError.file(path, "no such file or folder") }
        let url = URL(fileURLWithPath: path).standardizedFileURL
        if isDir.boolValue {
            let file = url.appendingPathComponent("metrics.jsonl").path
            guard FileManager.default.fileExists(atPath: file) else { throw ToolkitError.file(path, "the folder has no metrics.jsonl") }
            return (file, url.lastPathComponent)
        }
        let name = url.lastPathComponent == "metrics.jsonl" ? url.deletingLastPathComponent().lastPathComponent
            : url.deletingPathExtension().lastPathComponent
        return (url.path, name)
    }

    func run() throws {
        var named: [(name: String, log: MetricsLog)] = []
        var firstFolder = "."
        for (i, r) in runs.enumerated() {
            let (file, name) = try Self.metricsFile(r)
            if i == 0 { firstFolder = (file as NSString).deletingLastPathComponent }
            let log = try MetricsLog.read(path: file)
            guard !log.steps.isEmpty else { throw ToolkitError.file(file, "no training steps in this metrics file") }
            // Two runs of the same name keep apart in the legend.
            let taken = named.filter { $0.name == name || $0.name.hasPrefix(name + " (") }.count
            named.append((taken == 0 ? name : "\(name) (\(taken + 1))", log))
        }
        let plot = RunPlot(title: title ?? (named.count == 1 ? "training run \(named[0].name)" : "training runs"), runs: named)
        let paths = try plot.write(to: out ?? firstFolder)
        if json {
            print(try jsonLine(["files": paths]))
        } else {
            for p in paths { print(p) }
        }
    }
}
