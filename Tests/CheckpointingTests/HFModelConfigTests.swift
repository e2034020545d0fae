import Foundation
import Testing
import ToolkitSupport

@testable import Checkpointing
@testable import Models
import Layers

@Suite struct HFModelConfigTests {
    func load(_ model: String, v4: Bool = false) throws -> HFModelConfig {
        try HFModelConfig.load(
            Fixtures.path("\(model)/\(v4 ? "config.v4-keys.json" : "config.json")"))
    }

    func parse(_ json: String) throws -> HFModelConfig {
        try HFModelConfig.parse(Data(json.utf8), path: "cfg.json")
    }

    @Test(arguments: ["gpt2-tiny", "qwen3-tiny", "qwen3-yarn-tiny", "qwen3-moe-tiny", "llama3-tiny"])
    func v4AndV5KeysGiveTheSameConfig(model: String) throws {
        let v5 = try load(model)
        let v4 = try load(model, v4: true)
        #expect(v5 == v4)
        #expect(v5.dtype == "float32")
        // Export parses back to the same struct.
        #expect(try HFModelConfig.parse(Data(v5.hfConfigJSON().utf8)) == v5)
    }

    @Test func gpt2Values() throws {
        let c = try load("gpt2-tiny")
        #expect(c.modelType == .gpt2)
        #expect(
            [c.vocabSize, c.hiddenSize, c.numLayers, c.numHeads, c.numKVHeads, c.headDim] as [Int]
                == [512, 64, 2, 4, 4, 16])
        #expect(c.intermediateSize == 256)  // n_inner null → 4·n_embd
        #expect(c.maxPositionEmbeddings == 64)
        #expect(c.normEps == 1e-5)
        #expect(c.activation == "gelu_new")
        #expect(c.tieWordEmbeddings && c.attentionBias && c.usesLayerNorm && c.usesLearnedPositions)
        #expect(c.ropeTheta == nil && c.ropeScaling == nil && c.moe == nil)
        #expect(c.bosTokenId == nil && c.eosTokenIds.isEmpty)
    }

    @Test func qwen3Values() throws {
        let c = try load("qwen3-tiny")
        #expect(
            [c.vocabSize, c.hiddenSize, c.numLayers, c.numHeads, c.numKVHeads, c.headDim] as [Int]
                == [512, 64, 2, 4, 2, 16])
        #expect(c.intermediateSize == 128 && c.maxPositionEmbeddings == 64 && c.kvGroups == 2)
        #expect(c.normEps == 1e-6 && c.ropeTheta == 1e6 && c.ropeScaling == nil)
        #expect(c.activation == "silu" && !c.attentionBias && c.tieWordEmbeddings && c.usesQKNorm)
        #expect(c.slidingWindow == nil && !c.useSlidingWindow && c.maxWindowLayers == 28)

        let y = try load("qwen3-yarn-tiny")
        #expect(y.maxPositionEmbeddings == 128)
        #expect(y.ropeScaling == .init(type: "yarn", factor: 4, originalMaxPositionEmbeddings: 32))

        let m = try load("qwen3-moe-tiny")
        #expect(m.modelType == .qwen3Moe)
        #expect(
            m.moe
                == .init(
                    numExperts: 4, numExpertsPerToken: 2, moeIntermediateSize: 64,
                    normTopKProb: true, routerAuxLossCoef: 0.001, decoderSparseStep: 1,
                    mlpOnlyLayers: [], outputRouterLogits: true))
        #expect(m.moe?.isSparse(layer: 1) == true)
    }

    @Test func exportWritesBothKeySpellings() throws {
        let text = try load("qwen3-moe-tiny").hfConfigJSON()
        let o = try #require(
            try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(o["num_experts"] as? Int == 4 && o["num_local_experts"] as? Int == 4)
        #expect(o["rope_theta"] as? Double == 1e6)
        #expect((o["rope_parameters"] as? [String: Any])?["rope_type"] as? String == "default")
        #expect(o["architectures"] as? [String] == ["Qwen3MoeForCausalLM"])
        #expect(text.hasPrefix("{\n  \"architectures\": [\n    \"Qwen3MoeForCausalLM\"\n  ],\n"))
        let yarn = try load("qwen3-yarn-tiny").hfConfigJSON()
        let y = try #require(
            try JSONSerialization.jsonObject(with: Data(yarn.utf8)) as? [String: Any])
        #expect((y["rope_scaling"] as? [String: Any])?["factor"] as? Double == 4)
        #expect(
            (y["rope_parameters"] as? [String: Any])?["original_max_position_embeddings"] as? Int
                == 32)
        let dir = try TempDir()
        defer { dir.cleanup() }
        try load("gpt2-tiny").writeHFConfig(to: dir.path("config.json"))
        #expect(try HFModelConfig.load(dir.path("config.json")) == load("gpt2-tiny"))
    }

    @Test func defaultsAndAliases() throws {
        let g = try parse(
            #"{"model_type":"gpt2","hidden_size":32,"n_head":2,"num_hidden_layers":1}"#)
        #expect(
            g.vocabSize == 50257 && g.maxPositionEmbeddings == 1024 && g.intermediateSize == 128)
        #expect(g.bosTokenId == 50256 && g.eosTokenIds == [50256])
        let q = try parse(
            #"{"model_type":"qwen3","vocab_size":10,"hidden_size":8,"num_hidden_layers":1,"#
                + #""num_attention_heads":2,"intermediate_size":16,"head_dim":4,"eos_token_id":[1,2],"#
                + #""rope_scaling":{"type":"linear","factor":2}}"#)
        #expect(q.numKVHeads == 2 && q.ropeTheta == 10000 && !q.tieWordEmbeddings)
        #expect(q.eosTokenIds == [1, 2] && q.ropeScaling?.type == "linear")
    }

    /// Dropout maps in from HF configs and back out: GPT-2's three rates (GPT2Config's 0.1 when
    /// absent), the Llama layout's `attention_dropout`; the recipe carries them; a model built from
    /// it exports them again.
    @Test func dropoutRatesMapBothWays() throws {
        let g = try parse(#"{"model_type":"gpt2","n_embd":32,"n_head":2,"n_layer":1,"embd_pdrop":0.05,"attn_pdrop":0.2}"#)
        #expect(g.dropout == DropoutRates(embedding: 0.05, attention: 0.2, residual: 0.1))
        let gm = try ModelBuilder.build(Recipe.fromHF(g, path: "gpt2/config.json"), initializeWeights: false)
        #expect(gm.dropout == g.dropout)
        let gj = try #require(try JSONSerialization.jsonObject(with: Data(try gm.recipe.hfConfig(gm).hfConfigJSON().utf8)) as? [String: Any])
        #expect(gj["embd_pdrop"] as? Double == 0.05 && gj["attn_pdrop"] as? Double == 0.2 && gj["resid_pdrop"] as? Double == 0.1)
        let q = try parse(#"{"model_type":"qwen3","vocab_size":10,"hidden_size":8,"num_hidden_layers":1,"#
                          + #""num_attention_heads":2,"intermediate_size":16,"head_dim":4,"attention_dropout":0.1}"#)
        #expect(q.dropout == DropoutRates(attention: 0.1))
        let qm = try ModelBuilder.build(Recipe.fromHF(q, path: "qwen3/config.json"), initializeWeights: false)
        #expect(qm.dropout == DropoutRates(attention: 0.1))
        #expect(try qm.recipe.hfConfig(qm) .dropout == DropoutRates(attention: 0.1))
        #expect(try HFModelConfig.parse(Data(q.hfConfigJSON().utf8)) == q)
        #expect(try load("gpt2-tiny").dropout == .none)  // the fixtures were made without dropout
        #expect { try parse(#"{"model_type":"gpt2","n_embd":32,"n_head":2,"n_layer":1,"resid_pdrop":1}"#) } throws: {
            "\($0)".contains("resid_pdrop")
        }
    }

    @Test func errorsNameTheKey() {
        let base =
            #""vocab_size":10,"hidden_size":8,"num_hidden_layers":1,"num_attention_heads":2,"intermediate_size":16"#
        expectError(["cfg.json", "unsupported model_type 'falcon'", "qwen3_moe", "llama"]) {
            _ = try parse(#"{"model_type":"falcon"}"#)
        }
        expectError(["missing required key 'model_type'"]) { _ = try parse("{}") }
        expectError(["cfg.json", "invalid JSON"]) { _ = try parse("{") }
        expectError(["missing required key 'hidden_size'"]) {
            _ = try parse(#"{"model_type":"qwen3","vocab_size":3}"#)
        }
        expectError(["'hidden_size'", "expected an integer"]) {
            _ = try parse(#"{"model_type":"qwen3","vocab_size":10,"hidden_size":"8"}"#)
        }
        expectError(["'num_experts'", "conflicts with 'num_local_experts'"]) {
            _ = try parse(
                #"{"model_type":"qwen3_moe","# + base + #","num_local_experts":4,"num_experts":8}"#)
        }
        expectError(["'rope_parameters.rope_theta'", "conflicts"]) {
            _ = try parse(
                #"{"model_type":"qwen3","# + base
                    + #","rope_theta":5,"rope_parameters":{"rope_theta":6}}"#)
        }
        expectError(["rope_scaling.rope_type", "'longrope' is not supported"]) {
            _ = try parse(
                #"{"model_type":"qwen3","# + base
                    + #","rope_scaling":{"rope_type":"longrope","factor":2}}"#)
        }
        expectError(["rope_parameters.short_factor", "not a supported RoPE parameter"]) {
            _ = try parse(
                #"{"model_type":"qwen3","# + base + #","rope_parameters":{"short_factor":[1]}}"#)
        }
        expectError(["rope_parameters.factor", "required for rope_type 'yarn'"]) {
            _ = try parse(
                #"{"model_type":"qwen3","# + base + #","rope_parameters":{"rope_type":"yarn"}}"#)
        }
        expectError(["num_key_value_heads", "divide"]) {
            _ = try parse(#"{"model_type":"qwen3","# + base + #","num_key_value_heads":3}"#)
        }
        expectError(["num_experts_per_tok", "(5)"]) {
            _ = try parse(
                #"{"model_type":"qwen3_moe","# + base
                    + #","num_experts":4,"num_experts_per_tok":5}"#)
        }
        expectError(["mlp_only_layers", "entry 3"]) {
            _ = try parse(
                #"{"model_type":"qwen3_moe","# + base
                    + #","num_experts":4,"num_experts_per_tok":2,"mlp_only_layers":[3]}"#)
        }
        expectError(["'n_head' (3) must divide n_embd (8)"]) {
            _ = try parse(#"{"model_type":"gpt2","n_embd":8,"n_head":3,"n_layer":1}"#)
        }
        expectError(["'tie_word_embeddings'", "expected a boolean"]) {
            _ = try parse(
                #"{"model_type":"gpt2","n_embd":8,"n_head":2,"n_layer":1,"tie_word_embeddings":1}"#)
        }
    }
}

@Suite struct HFModelConfigFuzzTests {
    /// Byte flips and truncations of real config files give a clean error or a valid config.
    @Test func fuzzConfigFiles() throws {
        var rng = SplitMix64(seed: 42)
        var outcomes = [0, 0]
        for model in Fixtures.models {
            for file in ["config.json", "config.v4-keys.json"] {
                let original = try Data(
                    contentsOf: URL(fileURLWithPath: Fixtures.path("\(model)/\(file)")))
                for _ in 0..<60 {
                    var data = original
                    if rng.next() % 3 == 0 {
                        data = data.prefix(Int(rng.next() % UInt64(data.count)))
                    } else {
                        let i = Int(rng.next() % UInt64(data.count))
                        data[i] = UInt8(truncatingIfNeeded: rng.next() % 128)
                    }
                    do {
                        let c = try HFModelConfig.parse(data, path: file)
                        try c.validate()
                        #expect(try HFModelConfig.parse(Data(c.hfConfigJSON().utf8)) == c)
                        outcomes[1] += 1
                    } catch is ToolkitError {
                        outcomes[0] += 1
                    }
                }
            }
        }
        #expect(outcomes[0] > 50 && outcomes[1] > 50)
    }
}
