import Foundation
import Testing
import ToolkitSupport

@testable import Reporting

#if canImport(FoundationXML)
    import FoundationXML
#endif

/// Path of a file in Fixtures/compare.
func fixturePath(_ name: String) throws -> String {
    let url = try #require(
        Bundle.module.url(forResource: "Fixtures/compare/\(name)", withExtension: nil))
    return url.path
}

/// The two-variant, two-seed fixture set (gpt2, rope).
func fixtureVariants() throws -> [VariantRuns] {
    try ["gpt2", "rope"].map { name in
        try VariantRuns.load(
            name: name,
            summaryPaths: [0, 1].map { try fixturePath("\(name)-seed\($0).summary.json") })
    }
}

/// A fresh temporary folder.
func temporaryDirectory() -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("reporting-tests-\(UUID())").path
}

/// Synthetic runs: loss(t) = floor + 4·exp(−step/30) + seed-dependent noise, eval every 10 steps.
func syntheticVariant(
    _ name: String, seeds: [Int], floor: Double, steps: Int = 120, batchTokens: Int = 2048,
    bpb: Bool = true
) throws -> VariantRuns {
    let runs = try seeds.map { seed -> RunRecord in
        var state = Hashing.fnv1a64(Array(name.utf8)) &+ UInt64(truncatingIfNeeded: seed &* 7919)
        func noise() -> Double {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Double(state >> 11) / Double(1 << 53) - 0.5
        }
        var metrics = MetricsLog()
        for step in 1...steps {
            let clean = floor + 4 * exp(-Double(step) / 30)
            metrics.append(
                StepRow(
                    step: step, loss: clean + 0.12 * noise() + 0.03 * Double(seed), lr: 1e-3,
                    gradNorm: 1, tokensPerSecond: 1500 + 10 * Double(seed),
                    tokens: step * batchTokens))
            if step % 10 == 0 {
                let v = clean + 0.08 + 0.04 * noise() + 0.03 * Double(seed)
                metrics.append(
                    EvalRow(
                        step: step, valLoss: v, valBitsPerByte: bpb ? v / log(2) / 4 : nil,
                        tokens: step * batchTokens))
            }
        }
        let summary = try RunSummary(
            variant: name, seed: seed, params: 1_234_567, nonEmbeddingParams: 1_000_000,
            flopsPerToken: 7.4e6, wallSeconds: 60 + Double(seed),
            metricsPath: "\(name)-\(seed).jsonl",
            metrics: metrics)
        return try RunRecord(summary: summary, metrics: metrics)
    }
    return VariantRuns(name: name, runs: runs)
}

/// The value cells (after the name) of the Markdown table row that starts with `| name |`.
func markdownRow(_ markdown: String, _ name: String) throws -> [String] {
    let line = try #require(
        markdown.split(separator: "\n").first { $0.hasPrefix("| \(name) | ") })
    let inner = line.dropFirst(2 + name.count + 3).dropLast(2)
    return inner.components(separatedBy: " | ")
}

/// Every element of an XML document, in order, or the parser's error.
final class XMLCollector: NSObject, XMLParserDelegate {
    var elements: [(name: String, attributes: [String: String])] = []
    var text = ""

    static func parse(_ xml: String) throws -> XMLCollector {
        let collector = XMLCollector()
        let parser = XMLParser(data: Data(xml.utf8))
        parser.delegate = collector
        if !parser.parse() {
            throw parser.parserError ?? CocoaError(.coderReadCorrupt)
        }
        return collector
    }

    func parser(
        _ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?,
        qualifiedName qName: String?, attributes attributeDict: [String: String] = [:]
    ) {
        elements.append((elementName, attributeDict))
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) { text += string }

    func all(_ name: String, class cls: String) -> [[String: String]] {
        elements.filter { $0.name == name && $0.attributes["class"] == cls }.map(\.attributes)
    }
}
