import ArgumentParser
import Foundation
import Layers
import Models
import Optimizers

/// What the registries hold: component kinds, RoPE scalings, optimizers, schedules and HF families.
/// README's "Catalog" section is this command's `--markdown` output (a test checks they agree).
struct Catalog: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the recipe component kinds, optimizers, schedules and HF model families this build knows.")

    @Flag(help: "Print Markdown tables (the README's Catalog section).") var markdown = false

    func run() throws { print(Self.text(markdown: markdown), terminator: "") }

    static func text(markdown: Bool) -> String {
        let tables: [(String, [String], [[String]])] = [
            ("Recipe components", ["block", "kinds"], [
                ["model.position", Components.positions.kinds.joined(separator: ", ")],
                ["model.position.scaling", Components.ropeScalings.kinds.joined(separator: ", ")],
                ["model.norm", Components.norms.kinds.joined(separator: ", ")],
                ["model.mlp", Components.feedForwards.kinds.joined(separator: ", ")],
            ]),
            ("Optimizers", ["name", "weight decay default", "momentum default", "what"], OptimizerCatalog.kinds.map {
                [$0.name, number($0.defaultWeightDecay), number($0.defaultMomentum), $0.summary]
            }),
            ("Schedules", ["name", "what"], OptimizerCatalog.schedules.map { [$0.name, $0.summary] }),
            ("HF model families", ["model_type", "class", "published-shape recipes"], ModelFamilies.order.map {
                [$0.modelType, $0.architecture, $0.recipes.joined(separator: ", ")]
            }),
        ]
        return tables.map { title, header, rows in
            if markdown {
                let lines = [header, header.map { _ in "---" }] + rows
                return "**\(title)**\n\n" + lines.map { "| " + $0.joined(separator: " | ") + " |" }.joined(separator: "\n") + "\n"
            }
            let widths = header.indices.map { i in (rows + [header]).map { $0[i].count }.max() ?? 0 }
            let lines = ([header] + rows).map { r in
                r.enumerated().map { i, s in s.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                    .joined(separator: "  ").trimmingCharacters(in: .whitespaces)
            }
            return title + "\n" + lines.joined(separator: "\n") + "\n"
        }.joined(separator: "\n")
    }

    private static func number(_ v: Double) -> String { v == v.rounded() ? String(Int(v)) : String(v) }
}
