import Foundation
import Testing
import _TestSupport
@testable import Layers
@testable import Models
@testable import TensorCore

private let recipesDir = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Recipes").path

private func recipe(_ name: String, _ overrides: [String] = []) throws -> Recipe {
    try Recipe.load("\(recipesDir)/\(name).yaml", overrides: overrides)
}

private func writeTemp(_ text: String, name: String = "r") throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("recipes-\(UUID())")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let p = dir.appendingPathComponent("\(name).yaml").path
    try text.write(toFile: p, atomically: true, encoding: .utf8)
    return p
}

@Suite struct RecipeTests {
    @Test(arguments: [("gpt2-124m", 124_439_808), ("qwen3-0.6b", 596_049_920), ("llama3.2-1b", 1_235_814_400)])
    func exactParameterCounts(name: String, count: Int) throws {
        let model = try ModelBuilder.build(recipe(name, ["model.context_length=1024"]), initializeWeights: false)
        #expect(model.parameterCount == count)
    }

    @Test func everyShippedRecipeBuildsAndAblationsChangeOneBlock() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: recipesDir).filter { $0.hasSuffix(".yaml") }
            .map { String($0.dropLast(5)) }.sorted()
        #expect(names.count >= 16)
        let base = try recipe("gpt2")
        for n in names where !["gpt2-124m", "qwen3-0.6b", "llama3.2-1b"].contains(n) {
            let r = try recipe(n)
            let m = try ModelBuilder.build(r)
            #expect(m.parameterCount > 0, "\(n)")
        }
        for n in ["rope", "alibi", "rmsnorm", "swiglu", "gqa", "qknorm", "moe", "yarn"] {
            let r = try recipe(n)
            let changed = Set(r.model.keys.filter { r.model[$0] != base.model[$0] })
            #expect(changed.count == 1, "\(n) changes \(changed.sorted())")
            #expect(r.train == base.train, "\(n) keeps the training setup")
        }
    }

    @Test func overridesApplyAndAreTypeChecked() throws {
        let r = try recipe("gpt2", ["model.hidden_size=768", "model.attention.heads=12", "model.position.max_positions=512"])
        #expect(r.model["hidden_size"] == .int(768))
        let m = try ModelBuilder.build(r)
        #expect(m.dims.headDim == 64 && m.dims.heads == 12)
        #expect(throws: (any Error).self) { try ModelBuilder.build(recipe("gpt2", ["model.hidden_size=big"])) }
        #expect(throws: (any Error).self) { try recipe("gpt2", ["nonsense"]) }
    }

    @Test(arguments: [
        (["model.attention.heads=5", "model.attention.kv_heads=5", "model.attention.head_dim=null"],
         "model.attention.heads"),                                        // 384 not divisible by 5
        (["model.attention.kv_heads=4"], "model.attention.kv_heads"),     // does not divide 6
        (["model.mlp.intermedate_size=5"], "model.mlp.intermedate_size"), // unknown key
        (["model.context_length=512"], "model.position"),                 // beyond the learned table
        (["model.layers=zero"], "model.layers"),                          // wrong type
    ])
    func invalidRecipesNameFileAndKeyPath(overrides: [String], key: String) throws {
        do {
            _ = try ModelBuilder.build(recipe("gpt2", overrides), initializeWeights: false)
            Issue.record("expected an error for \(overrides)")
        } catch {
            let s = "\(error)"
            #expect(s.contains("gpt2.yaml") && s.contains(key), "\(s)")
        }
    }

    @Test func shapeErrorsForRopeAndMoE() throws {
        do {
            _ = try ModelBuilder.build(recipe("rope", ["model.attention.head_dim=63"]))
            Issue.record("odd head_dim accepted")
        } catch { #expect("\(error)".contains("model.position")) }
        do {
            _ = try ModelBuilder.build(recipe("moe", ["model.mlp.top_k=9"]))
            Issue.record("top_k > experts accepted")
        } catch { #expect("\(error)".contains("model.mlp.top_k")) }
    }

    @Test func extendsChainsAndCyclesAreReported() throws {
        let a = try writeTemp("name: a\nextends: b\nmodel: {hidden_size: 8}\n", name: "a")
        let dir = URL(fileURLWithPath: a).deletingLastPathComponent().path
        try "name: b\nextends: a\nmodel: {layers: 1}\n".write(toFile: dir + "/b.yaml", atomically: true, encoding: .utf8)
        #expect(throws: (any Error).self) { try Recipe.load(a) }
        let bad = try writeTemp("name: x\nmodle: {}\n")
        do { _ = try Recipe.load(bad); Issue.record("typo accepted") } catch { #expect("\(error)".contains("modle")) }
        let yaml = try writeTemp("name: [unclosed\n")
        #expect(throws: (any Error).self) { try Recipe.load(yaml) }
    }

    @Test func resolvedYAMLRoundTrips() throws {
        let r = try recipe("moe")
        let p = try writeTemp(r.resolvedYAML())
        let again = try Recipe.load(p)
        #expect(again.model == r.model && again.train == r.train && again.name == r.name)
        let m1 = try ModelBuilder.build(r), m2 = try ModelBuilder.build(again)
        #expect(ModelIO.hostTensors(m1) == ModelIO.hostTensors(m2))  // same seed, same init
    }

    @Test func corruptCheckpointsAreRejectedWithTheTensorName() throws {
        let m = try ModelBuilder.build(recipe("nano"))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ck-\(UUID())").path
        try ModelIO.saveCheckpoint(m, to: dir)
        var t = ModelIO.hostTensors(m)
        t["model.norm.weight"] = nil
        do { try ModelIO.assign(t, to: m, source: dir); Issue.record("missing accepted") } catch {
            #expect("\(error)".contains("model.norm.weight"))
        }
        let data = try Data(contentsOf: URL(fileURLWithPath: dir + "/model.safetensors"))
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: dir + "/model.safetensors"))
        #expect(throws: (any Error).self) { try ModelIO.load(dir) }
    }
}
