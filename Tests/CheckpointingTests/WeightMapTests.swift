import Foundation
import Testing
import ToolkitSupport

@testable import Checkpointing
@testable import Models

@Suite struct WeightMapTests {
    func fixture(_ model: String) throws -> (HFModelConfig, [String: HostTensor]) {
        let config = try HFModelConfig.load(Fixtures.path("\(model)/config.json"))
        let tensors = try SafetensorsFile(path: Fixtures.path("\(model)/model.safetensors"))
            .loadAll()
        return (config, tensors)
    }

    @Test func gpt2ImportTransposesAndSplitsConv1D() throws {
        let (config, hf) = try fixture("gpt2-tiny")
        let map = try WeightMap.forConfig(config)
        let canonical = try map.importTensors(hf, expected: config.canonicalShapes())
        let hidden = config.hiddenSize
        let cAttn = try #require(hf["transformer.h.1.attn.c_attn.weight"])  // [hidden, 3C], x @ W
        #expect(cAttn.shape == [hidden, 3 * hidden])
        for (part, name) in ["q", "k", "v"].enumerated() {
            let w = try #require(canonical["model.layers.1.self_attn.\(name)_proj.weight"])
            #expect(w.shape == [hidden, hidden])
            // Linear layout: W_lin[o, i] = W_conv[i, part·hidden + o].
            for (o, i) in [(0, 0), (3, 17), (hidden - 1, hidden - 2), (hidden / 2, 5)] {
                #expect(
                    w.values[o * hidden + i] == cAttn.values[i * 3 * hidden + part * hidden + o])
            }
            let b = try #require(canonical["model.layers.1.self_attn.\(name)_proj.bias"])
            #expect(
                b.values
                    == Array(
                        try #require(hf["transformer.h.1.attn.c_attn.bias"]).values[
                            (part * hidden)..<((part + 1) * hidden)]))
        }
        let fc = try #require(hf["transformer.h.0.mlp.c_fc.weight"])  // [hidden, 4C]
        let fcIn = try #require(canonical["model.layers.0.mlp.fc_in.weight"])
        #expect(fcIn.shape == [4 * hidden, hidden])
        #expect(fcIn.values[5 * hidden + 7] == fc.values[7 * 4 * hidden + 5])
        #expect(canonical["model.embed_positions.weight"] == hf["transformer.wpe.weight"])
        #expect(canonical["model.norm.bias"] == hf["transformer.ln_f.bias"])
    }

    @Test(arguments: ["gpt2-tiny", "qwen3-tiny", "qwen3-yarn-tiny", "qwen3-moe-tiny", "llama3-tiny"])
    func importExportRoundTripIsBitwiseAndReproducesTheFile(model: String) throws {
        let (config, hf) = try fixture(model)
        let map = try WeightMap.forConfig(config)
        let canonical = try map.importTensors(hf, expected: config.canonicalShapes())
        let back = try map.exportTensors(canonical)
        #expect(Set(back.keys) == Set(hf.keys))
        for (name, t) in hf { #expect(back[name]?.bitwiseEqual(t) == true, "\(name)") }
        // Canonical → HF → canonical is the identity too.
        let again = try map.importTensors(back)
        for (name, t) in canonical { #expect(again[name]?.bitwiseEqual(t) == true, "\(name)") }
        // Writing the export reproduces save_pretrained's file byte for byte.
        var w = SafetensorsWriter()
        for (name, t) in back { try w.add(name, t) }
        let original = try Data(
            contentsOf: URL(fileURLWithPath: Fixtures.path("\(model)/model.safetensors")))
        #expect(try w.serialized() == original)
    }

    @Test(arguments: ["gpt2-tiny", "qwen3-tiny", "qwen3-moe-tiny"])
    func everyCanonicalKeyIsProducedByExactlyOneRule(model: String) throws {
        let config = try HFModelConfig.load(Fixtures.path("\(model)/config.json"))
        let map = try WeightMap.forConfig(config)
        let produced = map.canonicalNames(
            layers: config.numLayers, experts: config.moe?.numExperts ?? 0)
        var seen: [String: Int] = [:]
        for (name, rule) in produced {
            #expect(seen[name] == nil, "\(name) produced by rules \(seen[name] ?? -1) and \(rule)")
            seen[name] = rule
        }
        #expect(Set(seen.keys) == Set(config.canonicalShapes().keys))
    }

    @Test func acceptsHubStyleGPT2KeysAndDropsBuffers() throws {
        let (config, hf) = try fixture("gpt2-tiny")
        var hub: [String: HostTensor] = [:]
        for (k, v) in hf { hub[String(k.dropFirst("transformer.".count))] = v }
        hub["h.0.attn.bias"] = HostTensor(shape: [1, 1, 2, 2], values: [1, 0, 1, 1])
        hub["h.1.attn.masked_bias"] = HostTensor(shape: [], values: [-1e4])
        hub["lm_head.weight"] = hub["wte.weight"]
        let map = try WeightMap.forConfig(config)
        let a = try map.importTensors(hub, expected: config.canonicalShapes())
        let b = try map.importTensors(hf)
        #expect(a == b)
    }

    @Test func strictnessErrorsNameTheTensor() throws {
        let (config, hf) = try fixture("gpt2-tiny")
        let map = try WeightMap.forConfig(config)
        let expected = config.canonicalShapes()

        var t = hf
        t["transformer.h.0.mlp.c_fc.bias"] = nil
        expectError(["missing tensor 'model.layers.0.mlp.fc_in.bias'"]) {
            _ = try map.importTensors(t, expected: expected)
        }
        // Without expected shapes a missing tensor goes through; with allowMissing too.
        #expect(throws: Never.self) { _ = try map.importTensors(t) }
        #expect(throws: Never.self) {
            _ = try map.importTensors(
                t, expected: expected, allowMissing: ["model.layers.0.mlp.fc_in.bias"])
        }

        t = hf
        t["transformer.h.0.attn.extra.weight"] = HostTensor(shape: [1], values: [0])
        expectError(["unexpected tensor 'transformer.h.0.attn.extra.weight'"]) {
            _ = try map.importTensors(t)
        }

        t = hf
        t["transformer.h.2.ln_1.weight"] = HostTensor(
            shape: [64], values: .init(repeating: 1, count: 64))
        expectError(["unexpected tensor 'model.layers.2.input_layernorm.weight'"]) {
            _ = try map.importTensors(t, expected: expected)
        }

        t = hf
        t["transformer.h.1.ln_2.bias"] = HostTensor(
            shape: [2, 32], values: .init(repeating: 0, count: 64))
        expectError(["'model.layers.1.post_attention_layernorm.bias'", "[2, 32]", "expected [64]"])
        {
            _ = try map.importTensors(t, expected: expected)
        }

        t = hf
        t["transformer.h.0.attn.c_attn.bias"] = HostTensor(
            shape: [190], values: .init(repeating: 0, count: 190))
        expectError(["'transformer.h.0.attn.c_attn.bias'", "cannot split dim 0 into 3"]) {
            _ = try map.importTensors(t)
        }

        t = hf
        t["transformer.h.0.attn.c_proj.weight"] = HostTensor(
            shape: [4096], values: .init(repeating: 0, count: 4096))
        expectError(["'transformer.h.0.attn.c_proj.weight'", "transpose needs 2-D"]) {
            _ = try map.importTensors(t)
        }

        t = hf
        t["wte.weight"] = hf["transformer.wte.weight"]
        expectError(["both", "'transformer.wte.weight'", "'wte.weight'"]) {
            _ = try map.importTensors(t)
        }

        t = hf
        var head = try #require(hf["transformer.wte.weight"])
        head.values[3] += 1
        t["lm_head.weight"] = head
        expectError(["'lm_head.weight' differs from 'model.embed_tokens.weight'"]) {
            _ = try map.importTensors(t)
        }

        var canonical = try map.importTensors(hf)
        canonical["model.layers.0.self_attn.k_proj.weight"] = nil
        expectError(["missing canonical tensor 'model.layers.0.self_attn.k_proj.weight'"]) {
            _ = try map.exportTensors(canonical)
        }
        canonical = try map.importTensors(hf)
        canonical["model.layers.0.mlp.gate_proj.weight"] = HostTensor(shape: [1], values: [0])
        expectError(["'model.layers.0.mlp.gate_proj.weight' has no weight-map rule"]) {
            _ = try map.exportTensors(canonical)
        }
    }

    @Test func qwenTiedAndUntiedHeads() throws {
        var (config, hf) = try fixture("qwen3-tiny")
        let tied = try WeightMap.forConfig(config)
        var withHead = hf
        withHead["lm_head.weight"] = hf["model.embed_tokens.weight"]
        let canonical = try tied.importTensors(withHead, expected: config.canonicalShapes())
        #expect(canonical["lm_head.weight"] == nil)
        #expect(try tied.exportTensors(canonical)["lm_head.weight"] == nil)

        config.tieWordEmbeddings = false
        let untied = try WeightMap.forConfig(config)
        expectError(["missing tensor 'lm_head.weight'"]) {
            _ = try untied.importTensors(hf, expected: config.canonicalShapes())
        }
        hf["lm_head.weight"] = HostTensor(
            shape: [512, 64], values: .init(repeating: 0.5, count: 512 * 64))
        let c2 = try untied.importTensors(hf, expected: config.canonicalShapes())
        #expect(c2["lm_head.weight"]?.values.first == 0.5)
        // Ignored rotary buffers of older checkpoints.
        hf["model.layers.0.self_attn.rotary_emb.inv_freq"] = HostTensor(
            shape: [8], values: .init(repeating: 1, count: 8))
        #expect(throws: Never.self) {
            _ = try untied.importTensors(hf, expected: config.canonicalShapes())
        }
    }

    @Test func moeExpertsAreMatchedPerIndex() throws {
        let (config, hf) = try fixture("qwen3-moe-tiny")
        let map = try WeightMap.forConfig(config)
        var t = hf
        t["model.layers.0.mlp.experts.4.up_proj.weight"] =
            hf["model.layers.0.mlp.experts.3.up_proj.weight"]
        expectError(["unexpected tensor 'model.layers.0.mlp.experts.4.up_proj.weight'"]) {
            _ = try map.importTensors(t, expected: config.canonicalShapes())
        }
        t = hf
        t["model.layers.01.mlp.gate.weight"] = hf["model.layers.1.mlp.gate.weight"]
        expectError(["unexpected tensor 'model.layers.01.mlp.gate.weight'", "no weight-map rule"]) {
            _ = try map.importTensors(t)
        }
    }

    @Test func concatRulesAndTableValidation() throws {
        // A fused-QKV source layout: separate checkpoint tensors concatenated into one.
        let map = try WeightMap(rules: [
            .init(
                source: ["l.{L}.q", "l.{L}.k", "l.{L}.v"], target: ["m.{L}.qkv"],
                transform: .concatRows)
        ])
        let q = HostTensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        let k = HostTensor(shape: [2, 3], values: [7, 8, 9, 10, 11, 12])
        let v = HostTensor(shape: [2, 3], values: [13, 14, 15, 16, 17, 18])
        let src = ["l.0.q": q, "l.0.k": k, "l.0.v": v]
        let out = try map.importTensors(src)
        #expect(out == ["m.0.qkv": HostTensor(shape: [6, 3], values: (1...18).map(Float.init))])
        #expect(try map.exportTensors(out) == src)
        expectError(["missing tensor 'l.0.k'"]) {
            _ = try map.importTensors(["l.0.q": q, "l.0.v": v])
        }
        expectError(["'l.0.k'", "incompatible"]) {
            _ = try map.importTensors([
                "l.0.q": q, "l.0.k": HostTensor(shape: [3, 2], values: k.values), "l.0.v": v,
            ])
        }
        expectError(["placeholders"]) { _ = try WeightMap(rules: [.init("a.{L}.w", "b.w")]) }
        expectError(["wrong number of templates"]) {
            _ = try WeightMap(rules: [
                .init(source: ["a", "b"], target: ["c"], transform: .identity)
            ])
        }
        expectError(["unclosed"]) { _ = try WeightMap(rules: [.init("a.{L.w", "b.{L}.w")]) }
        expectError(["followed by a digit"]) {
            _ = try WeightMap(rules: [.init("a.{L}0", "b.{L}0")])
        }
    }
}
