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
    /// The published shapes: the counts transformers computes for their configs
    /// (`sum(p.numel() for p in Cls(config).parameters())`). A shape-only build maps zero pages it
    /// never touches, so the memory check is lifted for the 3B one.
    @Test(arguments: [("gpt2-124m", 124_439_808), ("qwen3-0.6b", 596_049_920), ("llama3.2-1b", 1_235_814_400),
                      ("olmo2-1b", 1_484_916_736), ("smollm3-3b", 3_075_098_624), ("gemma3-1b", 999_885_952),
                      ("gpt-oss-20b", 20_914_757_184)])
    func exactParameterCounts(name: String, count: Int) throws {
        let model = try ModelBuilder.build(recipe(name, ["model.context_length=1024"]), initializeWeights: false, memoryLimit: Int.max)
        #expect(model.parameterCount == count)
    }

    /// "5 local : 1 global" as modern configs write it, NoPE layers, and the shorthands as instances.
    @Test func perLayerPatterns() throws {
        let pattern = [
            "model.layers=6", "model.layer_types=[local, local, local, local, local, global]",
            "model.layer_type_overrides={local: {attention: {window: 16}, position: {theta: 10000.0}}, global: {position: {theta: 1000000.0}}}",
        ]
        let m = try ModelBuilder.build(recipe("nano-qwen3", pattern))
        #expect(m.layers.map(\.attention.window) == [16, 16, 16, 16, 16, nil])
        #expect(m.layers.map { $0.attention.position.options["theta"] } == Array(repeating: .double(10000), count: 5) + [.double(1e6)])
        // Cycled: two names over four layers; NoPE on the odd ones.
        let nope = try ModelBuilder.build(recipe("nano-qwen3", ["model.layers=4", "model.layer_types=[rope, nope]",
                                                                  "model.layer_type_overrides={nope: {position: {kind: none}}}"]))
        #expect(nope.layers.map(\.attention.position.label) == ["rope", "none", "rope", "none"])
        #expect(nope.layers[0].attention.position === nope.position, "a layer with the model's block shares its encoding")
        // No HF family has per-layer positions: export refuses instead of writing one θ for all.
        #expect(throws: (any Error).self) { try m.recipe.hfConfig(m) }
        #expect(throws: (any Error).self) { try nope.recipe.hfConfig(nope) }
        // window_from_layer is the same per-layer plan as the explicit list.
        let shorthand = try ModelBuilder.build(recipe("nano-qwen3", ["model.layers=4", "model.attention.window=8",
                                                                       "model.attention.window_from_layer=2"]))
        let explicit = try ModelBuilder.build(recipe("nano-qwen3", ["model.layers=4", "model.layer_types=[full, full, sliding, sliding]",
                                                                      "model.layer_type_overrides={sliding: {attention: {window: 8}}}"]))
        #expect(shorthand.layers.map(\.attention.window) == explicit.layers.map(\.attention.window))
        #expect(ModelIO.hostTensors(shorthand) == ModelIO.hostTensors(explicit), "same weights: the init stream is per layer")
        // Dense and MoE layers by name, like mlp_only_layers.
        let mixed = try ModelBuilder.build(recipe("nano-moe", ["model.layers=2", "model.layer_types=[dense, sparse]",
                                                                 "model.layer_type_overrides={dense: {mlp: {kind: swiglu, intermediate_size: 32}}}"]))
        #expect(mixed.layers.map(\.mlp.options.kind) == ["swiglu", "moe"])
    }

    @Test func perLayerPatternErrorsNameTheKey() throws {
        func fails(_ overrides: [String], _ fragments: [String]) {
            do {
                _ = try ModelBuilder.build(recipe("nano-qwen3", overrides))
                Issue.record("expected an error for \(overrides)")
            } catch {
                for f in fragments { #expect("\(error)".contains(f), "\(error) lacks \(f)") }
            }
        }
        fails(["model.layers=3", "model.layer_types=[a, b]"], ["model.layer_types", "2 names", "3 layers"])
        fails(["model.layer_type_overrides={a: {attention: {window: 4}}}"], ["layer_type_overrides", "needs layer_types"])
        fails(["model.layer_types=[a, b]", "model.layer_type_overrides={a: {attention: {heads: 2}}}"],
              ["layer_type_overrides.a.attention.heads", "only the window"])
        fails(["model.layer_types=[a, b]", "model.layer_type_overrides={c: {}}"], ["layer_type_overrides.c", "unknown key"])
        fails(["model.layer_types=[a, b]", "model.layer_type_overrides={a: {position: {kind: learned}}}"],
              ["layer_type_overrides.a.position", "layer 0 cannot have its own learned positions"])
        fails(["model.layer_types=[a, b]", "model.layer_type_overrides={a: {mlp: {kind: swiglu, width: 3}}}"],
              ["layer_type_overrides.a.mlp.width"])
    }

    /// Every key the code accepts in a recipe is documented in README's Recipes section: an unknown
    /// key in each block makes the code list the keys it asked for, and each must appear there.
    @Test func everyRecipeKeyIsDocumented() throws {
        let readme = try String(contentsOfFile: recipesDir + "/../README.md", encoding: .utf8)
        let section = readme.components(separatedBy: "\n## Recipes")[1].components(separatedBy: "\n## ")[0]
        var blocks = ["model.zz_unknown=1", "model.attention.zz_unknown=1", "model.norm.zz_unknown=1",
                      "model.layer_type_overrides={a: {zz_unknown: 1}}"]
        for kind in Components.positions.kinds { blocks.append("model.position={kind: \(kind), zz_unknown: 1}") }
        for kind in Components.ropeScalings.kinds {
            blocks.append("model.position={kind: rope, scaling: {kind: \(kind), factor: 2.0, zz_unknown: 1}}")
        }
        for kind in Components.norms.kinds { blocks.append("model.norm={kind: \(kind), zz_unknown: 1}") }
        for kind in Components.feedForwards.kinds {
            blocks.append("model.mlp={kind: \(kind), experts: 2, top_k: 1, intermediate_size: 8, zz_unknown: 1}")
        }
        var checked = 0
        for block in blocks {
            let overrides = block.hasPrefix("model.layer_type_overrides") ? ["model.layer_types=[a, b]", block] : [block]
            do {
                let r = try recipe("nano-qwen3", overrides)
                _ = try ModelBuilder.build(r, initializeWeights: false)
                Issue.record("\(block) was accepted")
            } catch {
                let message = "\(error)"
                guard let range = message.range(of: "(allowed here: ") else { Issue.record("\(block): \(message)"); continue }
                let keys = message[range.upperBound...].prefix { $0 != ")" }.split(separator: ",").map {
                    $0.trimmingCharacters(in: .whitespaces)
                }
                for key in keys where !section.contains(key) {
                    Issue.record("recipe key '\(key)' (\(block)) is not documented in README's Recipes section")
                }
                checked += keys.count
            }
        }
        #expect(checked > 40)
    }

    /// Recipe text cannot exhaust the parser, and every size and number is checked before use.
    @Test func hostileRecipesAreRefusedWithTheKey() throws {
        func fails(_ text: String, _ fragments: [String], overrides: [String] = []) {
            do {
                let r = try Recipe.load(try writeTemp(text), overrides: overrides)
                _ = try ModelBuilder.build(r, initializeWeights: false)
                Issue.record("accepted: \(text.prefix(80)) \(overrides)")
            } catch {
                for f in fragments { #expect("\(error)".contains(f), "\(error) lacks \(f)") }
            }
        }
        let base = "extends: \(recipesDir)/nano.yaml\n"
        fails("a: " + String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000), ["nests brackets more than 64 deep"])
        fails((0..<100).map { String(repeating: " ", count: $0) + "k\($0):" }.joined(separator: "\n"), ["nests blocks more than 64 deep"])
        fails("a: " + String(repeating: "x", count: 2 << 20), ["limited to 1048576 bytes"])
        fails("a: &x [1, 2]\nb: *x\n", ["offset 3", "anchors and aliases"])
        fails(base + "model:\n  hidden_size: 9223372036854775807\n", ["model.hidden_size", "outside 1...1048576"])
        fails(base + "model:\n  layers: 1000000000\n", ["model.layers", "outside"])
        fails(base + "model:\n  norm: {kind: layernorm, eps: .nan}\n", ["model.norm.eps", "positive finite"])
        fails(base + "model:\n  init_std: .inf\n", ["model.init_std", "finite"])
        fails(base + "", ["model.attention.window", "outside"], overrides: ["model.attention.window=1000000000000000"])
        fails("extends: ../../../../../../etc/passwd\n", ["extends:", "outside the recipe folders"])
        fails("extends: ''\n", ["extends: expected a recipe name"])
        fails(base, ["model.mlp.mlp_only_layers", "entry 7"],
              overrides: ["model.mlp={kind: moe, experts: 2, top_k: 1, intermediate_size: 8, mlp_only_layers: [7], dense_intermediate_size: 8}"])
        // Quotes, anchors and aliases only count where a scalar starts: apostrophes and asterisks in
        // plain text and comments are text.
        let prose = try Recipe.load(try writeTemp(base + "description: GPT-2's shape, uses *tied* embeddings & more\n"
                                                  + "model:\n  hidden_size: 64   # don't change *this*\n"))
        #expect(prose.description == "GPT-2's shape, uses *tied* embeddings & more")
        fails("description: the '90s\nmodel: " + String(repeating: "[", count: 500) + String(repeating: "]", count: 500),
              ["nests brackets more than 64 deep"])
        #expect(ConfigValue(plainScalar: "0o17") == .int(15) && ConfigValue(plainScalar: "-0x10") == .int(-16)
                && ConfigValue(plainScalar: "0b101") == .int(5) && ConfigValue(plainScalar: "017") == nil
                && ConfigValue(plainScalar: "1.0e-6") == .double(1e-6) && ConfigValue(plainScalar: "+5") == .int(5))
        // A YAML 1.1 base-60 scalar is a string here (Yams' own constructor traps on it).
        let r = try Recipe.load(try writeTemp(base + "description: 1:2:3:4:5:6:7:8:9:10:11:12\n"))
        #expect(r.description == "1:2:3:4:5:6:7:8:9:10:11:12")
        // --set of another kind replaces the block, as extends: does.
        let rope = try ModelBuilder.build(recipe("nano", ["model.position.kind=rope"]), initializeWeights: false)
        #expect(rope.position.label == "rope")
        // The estimate the memory check uses: overflow saturates instead of trapping.
        #expect(ModelLimits.estimatedBytes(vocab: 1 << 24, hidden: 1 << 20, layers: 1 << 14, context: 1 << 26, heads: 1 << 12,
                                           kvHeads: 1 << 12, headDim: 1 << 14, tied: false, learnedPositions: true,
                                           mlps: [["experts": .int(1 << 14), "intermediate_size": .int(1 << 22)]]) == .max)
        let gpt2 = try ModelBuilder.build(recipe("gpt2"), initializeWeights: false)
        let estimate = ModelLimits.estimatedBytes(vocab: 8192, hidden: 384, layers: 6, context: 256, heads: 6, kvHeads: 6,
                                                  headDim: 64, tied: true, learnedPositions: true,
                                                  mlps: [["intermediate_size": .int(1536)]])
        #expect(estimate >= 4 * gpt2.parameterCount && estimate < 6 * gpt2.parameterCount)
    }

    /// A shape-only build of a 1.2B-parameter model commits almost no memory: its zero weights
    /// are fresh kernel pages that nothing writes (`build --no-save` counts without allocating).
    @Test func shapeOnlyBuildsDoNotCommitTheWeights() throws {
        #if os(Linux)
        func residentBytes() throws -> Int {
            let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
            let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
            return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
        }
        let before = try residentBytes()
        let model = try ModelBuilder.build(recipe("llama3.2-1b"), initializeWeights: false)
        let grown = try residentBytes() - before
        #expect(model.parameterCount == 1_235_814_400)
        #expect(grown < 1 << 30, "a shape-only build committed \(grown >> 20) MiB (the weights are 4.6 GiB)")
        #endif
    }

    @Test func everyShippedRecipeBuildsAndAblationsChangeOneBlock() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: recipesDir).filter { $0.hasSuffix(".yaml") }
            .map { String($0.dropLast(5)) }.sorted()
        #expect(names.count >= 16)
        for n in names where !["gpt2-124m", "qwen3-0.6b", "llama3.2-1b", "olmo2-1b", "smollm3-3b", "gemma3-1b", "gpt-oss-20b"].contains(n) {
            let r = try recipe(n)
            let m = try ModelBuilder.build(r)
            #expect(m.parameterCount > 0, "\(n)")
        }
        // One change each: one model key, or one per-layer plan (layer_types with its overrides).
        let ablations = ["rope", "alibi", "rmsnorm", "swiglu", "gqa", "qknorm", "moe", "yarn"].map { ($0, "gpt2") }
            + ["nope", "postnorm", "sandwich", "qknorm-whole", "local-global", "geglu", "embed-scale", "softcap", "sinks"].map { ($0, "qwen3-small") }
        for (n, baseName) in ablations {
            let r = try recipe(n), base = try recipe(baseName)
            var changed = Set(r.model.keys.filter { r.model[$0] != base.model[$0] })
            if changed.contains("layer_types") { changed.remove("layer_type_overrides") }
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
