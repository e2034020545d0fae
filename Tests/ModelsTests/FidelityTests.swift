import Checkpointing
import Foundation
import Testing
import _TestSupport
@testable import Layers
@testable import Models
@testable import TensorCore

/// HF transformers parity on the tiny fixtures: logits, loss, hidden states, every gradient,
/// greedy generation with and without the KV cache, MoE routing and aux loss.
@Suite(.serialized) struct FidelityTests {
    static let fixtures = ["gpt2-tiny", "qwen3-tiny", "qwen3-yarn-tiny", "qwen3-moe-tiny", "llama3-tiny", "olmo2-tiny", "smollm3-tiny", "gemma3-tiny", "gptoss-tiny"]

    struct Loaded {
        var model: DecoderModel
        var config: HFModelConfig
        var outputs: [String: Fixtures.Entry]
        var inputs: [String: Fixtures.Entry]
        var ids: [Int32]
        var targets: [Int32]
        var batch: Int
    }

    static func load(_ name: String) throws -> Loaded {
        let dir = Fixtures.root.appendingPathComponent(name).path
        let model = try ModelIO.loadHF(dir)
        let config = try HFModelConfig.load(dir + "/config.json")
        let inputs = try Fixtures.load("\(name)/inputs.safetensors")
        let outputs = try Fixtures.load("\(name)/outputs.safetensors")
        let idsEntry = inputs["input_ids"]!, labels = inputs["labels"]!.ints
        let (b, t) = (idsEntry.shape[0], idsEntry.shape[1])
        // HF labels are not shifted: logits[:, t] is scored against labels[:, t+1].
        var targets = [Int32](repeating: -100, count: b * t)
        for r in 0..<b { for i in 0..<(t - 1) { targets[r * t + i] = Int32(labels[r * t + i + 1]) } }
        return Loaded(model: model, config: config, outputs: outputs, inputs: inputs,
                      ids: idsEntry.ints.map { Int32($0) }, targets: targets, batch: b)
    }

    @Test(arguments: fixtures)
    func logitsLossAndHiddenStatesMatch(name: String) throws {
        for kernel in [AttentionKernel.naive, .defaultTiled] {
            let f = try Self.load(name)
            f.model.setAttentionKernel(kernel)
            var hidden: [Tensor] = []
            let (logits, loss) = try GradMode.withoutGrad { () -> (Tensor, (Tensor, Tensor)) in
                let h = try f.model.hiddenStates(f.ids, batch: f.batch) { hidden.append($0) }
                let lg = try f.model.logits(h)
                let ce = try Tensor.crossEntropy(logits: lg.reshaped([-1, f.config.vocabSize]), targets: f.targets)
                let aux = try f.model.auxiliaryLoss()
                return (lg, (try aux.map { try ce + $0 } ?? ce, ce))
            }
            let dl = Fixtures.maxAbsDiff(logits.scalars, f.outputs["logits"]!.floats)
            #expect(dl < Tolerance.Model.logits, "\(name) \(kernel) logits max diff \(dl)")
            let want = f.outputs["loss"]!.floats[0]
            #expect(abs(loss.0.item() - want) < Float(Tolerance.Model.loss), "\(name) loss \(loss.0.item()) vs \(want)")
            if let ce = f.outputs["ce_loss"] { #expect(abs(loss.1.item() - ce.floats[0]) < Float(Tolerance.Model.loss)) }
            let names = ["hidden.embed"] + (0..<f.config.numLayers).map { "hidden.layer\($0)" } + ["hidden.final_norm"]
            for (i, n) in names.enumerated() {
                let d = Fixtures.maxAbsDiff(hidden[i].scalars, f.outputs[n]!.floats)
                #expect(d < Tolerance.Model.hiddenStates, "\(name) \(n): \(d)")
            }
        }
    }

    @Test(arguments: fixtures)
    func everyGradientMatches(name: String) throws {
        let f = try Self.load(name)
        let dir = Fixtures.root.appendingPathComponent(name).path
        let raw = try SafetensorsFile(path: dir + "/grads.safetensors").loadAll()
        let want = try WeightMap.forConfig(f.config).importTensors(raw, expected: f.config.canonicalShapes())
        let (total, _, _) = try f.model.loss(ids: f.ids, targets: f.targets, batch: f.batch)
        try total.backward()
        var worst: (String, Float) = ("", 0)
        for (pname, p) in f.model.namedParameters() {
            // No gradient is allowed only for an expert no token chose (HF stacks experts, so its slice is zeros).
            guard let g = p.grad?.scalars ?? (pname.contains(".experts.") ? [Float](repeating: 0, count: p.count) : nil) else {
                Issue.record("\(name): \(pname) got no gradient")
                continue
            }
            let d = Fixtures.maxAbsDiff(g, want[pname]!.values)
            if d > worst.1 { worst = (pname, d) }
        }
        #expect(worst.1 < Tolerance.Model.gradients, "\(name): worst gradient \(worst.0) differs by \(worst.1)")
        #expect(f.model.namedParameters().count == want.count)
    }

    /// A fixture's `generation.json`: the prompts and HF's greedy continuations.
    static func generation(_ name: String) throws -> (prompts: [[Int32]], newTokens: [[Int32]]) {
        let gen = try JSONSerialization.jsonObject(
            with: Data(contentsOf: Fixtures.root.appendingPathComponent("\(name)/generation.json"))) as! [String: Any]
        let ids = { (key: String) in (gen[key] as! [[Int]]).map { $0.map { Int32($0) } } }
        return (ids("prompt_ids"), ids("new_tokens"))
    }

    @Test(arguments: fixtures)
    func greedyGenerationMatchesWithAndWithoutCache(name: String) throws {
        let f = try Self.load(name)
        let (prompts, expected) = try Self.generation(name)
        let stepLogits = f.outputs["generation.step_logits"]!
        for useCache in [true, false] {
            let r = try Generator(model: f.model).generate(prompts: prompts, maxNewTokens: expected[0].count, useCache: useCache,
                                                          keepStepLogits: true)
            #expect(r.newTokens == expected, "\(name) cache \(useCache)")
            let flat = r.stepLogits.flatMap { $0 }
            #expect(Fixtures.maxAbsDiff(flat, stepLogits.floats) < Tolerance.Model.logits, "\(name) cache \(useCache) step logits")
        }
    }

    @Test func moeRoutingAndAuxLossMatchExactly() throws {
        let f = try Self.load("qwen3-moe-tiny")
        _ = try GradMode.withoutGrad { try f.model(f.ids, batch: f.batch) }
        for (l, r) in f.model.routingRecords.enumerated() {
            #expect(r.topK.map(Int.init) == f.outputs["router_topk_index.layer\(l)"]!.ints, "layer \(l) top-k")
            #expect(Fixtures.maxAbsDiff(r.weights, f.outputs["router_topk_weight.layer\(l)"]!.floats) < Tolerance.Model.routingWeights)
            #expect(Fixtures.maxAbsDiff(r.logits.scalars, f.outputs["router_logits.layer\(l)"]!.floats) < Tolerance.Model.logits)
        }
        let aux = try loadBalancingLoss(f.model.routingRecords, experts: 4, topK: 2)!.item()
        #expect(abs(aux - f.outputs["aux_loss"]!.floats[0]) < Float(Tolerance.Model.loss))
    }

    /// A NaN weight is refused at load time, naming the tensor (one NaN in GPT-2's c_attn would
    /// otherwise turn into NaN, or a plausible number, far from its cause).
    @Test func nonFiniteWeightsAreRefusedAtLoad() throws {
        let f = try Self.load("gpt2-tiny")
        var tensors = ModelIO.hostTensors(f.model)
        tensors["model.layers.1.mlp.fc_out.weight"]!.values[17] = .infinity
        do {
            try ModelIO.assign(tensors, to: f.model, source: "x.safetensors")
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".contains("x.safetensors: tensor model.layers.1.mlp.fc_out.weight has a non-finite value (inf) at index 17"))
        }
    }

    @Test func exportRoundTripsThroughHFLayout() throws {
        for name in Self.fixtures {
            let f = try Self.load(name)
            let out = FileManager.default.temporaryDirectory.appendingPathComponent("export-\(name)-\(UUID())").path
            try ModelIO.exportHF(f.model, to: out)
            let again = try ModelIO.loadHF(out)
            let a = ModelIO.hostTensors(f.model), b = ModelIO.hostTensors(again)
            #expect(a == b, "\(name)")
            let ck = out + "-ckpt"
            try ModelIO.saveCheckpoint(f.model, to: ck)
            let third = try ModelIO.load(ck)
            #expect(ModelIO.hostTensors(third) == a, "\(name) toolkit checkpoint")
        }
    }
}
