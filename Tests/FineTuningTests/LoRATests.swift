import Checkpointing
import Foundation
import Testing
import _TestSupport
@testable import FineTuning
@testable import Layers
@testable import Models
@testable import TensorCore
@testable import Training

@Suite(.serialized) struct LoRATests {
    /// y = x·Wᵀ + b + s·(m∘x)·Aᵀ·Bᵀ, checked against float64 finite differences for x, W, b, A and B.
    @Test func loraLinearGradients() throws {
        let (n, inF, outF, r) = (6, 5, 4, 3)
        let scaling: Float = 1.5
        var rng = SplitMix64(seed: 9)
        let maskValues = (0..<(n * inF)).map { _ in rng.nextUniform() < 0.3 ? Float(0) : Float(1 / 0.7) }
        let mask = try Tensor(shape: [2, 3, inF], values: maskValues)
        let inputs = [GradCheck.random([2, 3, inF], seed: 1), GradCheck.random([outF, inF], seed: 2), GradCheck.random([outF], seed: 3),
                      GradCheck.random([r, inF], seed: 4), GradCheck.random([outF, r], seed: 5)]
        let report = try GradCheck.check(inputs) { t in
            try Tensor.linear(t[0], weight: t[1], bias: t[2]) + LoRAAdapter.delta(t[0], a: t[3], b: t[4], scaling: scaling, mask: mask)
        } reference: { v in
            let (x, w, b, a, bb) = (v[0], v[1], v[2], v[3], v[4])
            var out: [Double] = []
            for row in 0..<n {
                let xr = (0..<inF).map { x[row * inF + $0] }
                let xm = (0..<inF).map { xr[$0] * Double(maskValues[row * inF + $0]) }
                let ax = (0..<r).map { k in (0..<inF).reduce(0.0) { $0 + a[k * inF + $1] * xm[$1] } }
                for o in 0..<outF {
                    let base = (0..<inF).reduce(b[o]) { $0 + w[o * inF + $1] * xr[$1] }
                    out.append(base + Double(scaling) * (0..<r).reduce(0.0) { $0 + bb[o * r + $1] * ax[$1] })
                }
            }
            return out
        }
        #expect(report.passed, "\(report)")
    }

    /// The Layers hook: a Linear with an adapter adds it; without one it is unchanged.
    @Test func linearAdapterHook() throws {
        let lin = Linear(weight: GradCheck.random([3, 4], seed: 1), bias: GradCheck.random([3], seed: 2))
        let x = GradCheck.random([2, 4], seed: 3)
        let base = try lin(x).scalars
        let adapter = LoRAAdapter(inFeatures: 4, outFeatures: 3, rank: 2, scaling: 2, dropout: 0, seed: 1)
        try adapter.b.assign(GradCheck.random([3, 2], seed: 4))
        lin.adapter = adapter
        let with = try lin(x).scalars
        let delta = try LoRAAdapter.delta(x, a: adapter.a.value, b: adapter.b.value, scaling: 2).scalars
        for i in 0..<base.count { #expect(abs(with[i] - base[i] - delta[i]) < Tolerance.LoRA.hookedOutput) }
        lin.adapter = nil
        #expect(try lin(x).scalars == base)
        // Kaiming-uniform(a=√5) bound 1/√in, B zero.
        #expect(adapter.a.value.scalars.allSatisfy { abs($0) <= 0.5 })
        #expect(LoRAAdapter(inFeatures: 4, outFeatures: 3, rank: 2, scaling: 1, dropout: 0, seed: 1).b.value.scalars.allSatisfy { $0 == 0 })
    }

    @Test func targetParsing() throws {
        #expect(try LoRAConfig.parseTargets("q,v") == ["q_proj", "v_proj"])
        #expect(try LoRAConfig.parseTargets("gate, down_proj") == ["gate_proj", "down_proj"])
        #expect(throws: (any Error).self) { try LoRAConfig.parseTargets("q-v") }
        // Names are checked against the projections the model's components declare.
        let m = try tinyModel()
        #expect(throws: (any Error).self) { try LoRAModel(attachingTo: m, config: LoRAConfig(targets: ["fc_in"])) }
        do {
            _ = try LoRAModel(attachingTo: m, config: LoRAConfig(targets: try LoRAConfig.parseTargets("qq")))
            Issue.record("expected an error")
        } catch { #expect("\(error)".contains("qq does not exist in this model") && "\(error)".contains("q_proj")) }
    }

    /// On the qwen3-tiny fixture: training moves only adapters; the merged model is base + (α/r)·B·A.
    @Test func qwenFixtureTrainSaveLoadMerge() throws {
        let dir = Fixtures.root.appendingPathComponent("qwen3-tiny").path
        let model = try ModelIO.loadHF(dir)
        let before = ModelIO.hostTensors(model)
        var rng = SplitMix64(seed: 3)
        let ids = randomTokens(2 * 16, 0..<model.dims.vocabSize, &rng)
        let baseLogits = try GradMode.withoutGrad { try model(ids, batch: 2).scalars }

        let cfg = LoRAConfig(rank: 4, alpha: 8, dropout: 0.1, targets: ["q_proj", "v_proj", "gate_proj", "down_proj"], seed: 7)
        let lora = try LoRAModel(attachingTo: model, config: cfg)
        // B = 0: the adapted model starts equal to the base.
        #expect(try GradMode.withoutGrad { try model(ids, batch: 2).scalars } == baseLogits)
        let c = model.dims.hiddenSize, inter = 128, qOut = model.dims.heads * model.dims.headDim, kvOut = model.dims.kvHeads * model.dims.headDim
        let perLayer = 4 * (c + qOut) + 4 * (c + kvOut) + 4 * (c + inter) + 4 * (inter + c)
        #expect(lora.trainableCount == perLayer * model.layers.count)
        #expect(lora.trainableParameters.map(\.name).contains("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"))

        let seqs = (0..<4).map { _ in MaskedSequence(ids: randomTokens(12, 0..<64, &rng), trainable: Array(repeating: true, count: 12)) }
        _ = try fineTune(model, lora.trainableParameters, settings(steps: 5, lr: 1e-2), step: { _, _ in
            StepOutput(loss: try SFTLoss.loss(model: model, batch: SequenceBatching.pad(seqs, padID: 0, maxLength: 16)))
        })
        for (name, p) in model.namedParameters() {
            #expect(!p.isTrainable && p.grad == nil, "\(name) is not frozen")
            #expect(p.value.scalars == before[name]!.values, "\(name) changed")
        }
        #expect(lora.adapters.allSatisfy { $0.adapter.b.value.scalars.contains { $0 != 0 } })

        lora.setTraining(false)
        let adapted = try GradMode.withoutGrad { try model(ids, batch: 2).scalars }
        #expect(adapted != baseLogits)

        // Save as a PEFT folder and load into a fresh base: same outputs.
        let out = tempDir("adapter")
        try lora.save(to: out, baseModel: dir)
        let names = try SafetensorsFile(path: out + "/adapter_model.safetensors").loadAll().keys
        #expect(names.contains("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"))
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/adapter_config.json"))) as! [String: Any]
        #expect(json["r"] as? Int == 4 && (json["lora_alpha"] as? Double) == 8 && (json["lora_dropout"] as? Double) == 0.1)
        #expect(json["target_modules"] as? [String] == ["q_proj", "v_proj", "gate_proj", "down_proj"])
        let fresh = try ModelIO.loadHF(dir)
        let reloaded = try LoRAModel.load(from: out, into: fresh)
        reloaded.setTraining(false)
        #expect(try GradMode.withoutGrad { try fresh(ids, batch: 2).scalars } == adapted)

        // Merge: W' = W + (α/r)·B·A in double precision, and the merged model reproduces the adapted one.
        let expected: [String: [Double]] = Dictionary(uniqueKeysWithValues: lora.adapters.map { e in
            let w = before[e.module + ".weight"]!.values, a = e.adapter.a.value.scalars, b = e.adapter.b.value.scalars
            let (o, i, r) = (e.linear.outFeatures, e.linear.inFeatures, cfg.rank)
            return (e.module + ".weight", (0..<(o * i)).map { idx in
                Double(w[idx]) + 2.0 * (0..<r).reduce(0.0) { $0 + Double(b[(idx / i) * r + $1]) * Double(a[$1 * i + idx % i]) }
            })
        })
        try lora.merge()
        #expect(model.layers[0].attention.qProj.adapter == nil)
        let merged = model.parameterDictionary()
        var worst = 0.0
        for (name, want) in expected {
            for (x, y) in zip(merged[name]!.value.scalars, want) { worst = max(worst, abs(Double(x) - y)) }
        }
        #expect(worst < Tolerance.LoRA.mergedWeights, "merged weights differ by \(worst)")
        let mergedLogits = try GradMode.withoutGrad { try model(ids, batch: 2).scalars }
        let diff = zip(mergedLogits, adapted).map { abs($0 - $1) }.max() ?? 0
        #expect(diff < Tolerance.Model.logits, "merged logits differ by \(diff)")
    }

    /// LoRA alone can fit a fixed mapping: the loss falls a lot.
    @Test func loraLearnsSyntheticTask() throws {
        // A larger init scale: with frozen std-0.02 tied embeddings the logits could not leave ~±1.
        let model = try tinyModel(extra: ["model.init_std=0.3"])
        let lora = try LoRAModel(attachingTo: model, config: LoRAConfig(rank: 8, alpha: 16, targets: LoRAConfig.moduleNames, seed: 1))
        // Prompt "p" → response "p, 20, p": a copy and a constant, learnable by low-rank updates.
        let data = (0..<16).map { k -> MaskedSequence in
            let p = Int32(30 + k)
            return MaskedSequence(ids: [1, p, 2, p, 20, p], trainable: [false, false, false, true, true, true])
        }
        let batch = SequenceBatching.pad(data, padID: 0, maxLength: 31)
        var first: Double?, last = 0.0
        _ = try fineTune(model, lora.trainableParameters, settings(steps: 40, lr: 2e-2), step: { _, _ in
            let l = try SFTLoss.loss(model: model, batch: batch)
            first = first ?? Double(l.item())
            last = Double(l.item())
            return StepOutput(loss: l)
        })
        #expect(last < first! * 0.4, "loss \(first!) → \(last)")
    }
}
