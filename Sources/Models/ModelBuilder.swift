import Layers
import TensorCore
import ToolkitSupport

/// Composes a `DecoderModel` from a recipe's `model:` block, validating it with key paths.
///
/// ```yaml
/// model:
///   vocab_size: 8192            # int, required
///   hidden_size: 384            # int, required
///   layers: 6                   # int, required
///   context_length: 256         # int, required: longest sequence (positions tables, KV cache)
///   tie_word_embeddings: true   # bool (true): LM head shares the embedding matrix
///   init_std: 0.02              # float (0.02): N(0, std²) init; residual projections / √(2·layers)
///   seed: 0                     # int (0): initialisation seed
///   norm: {kind: layernorm, eps: 1.0e-5, bias: true}            # or {kind: rmsnorm, eps}
///   norm_placement: pre         # pre | post (OLMo 2: on the branch outputs) | sandwich (Gemma: both)
///   embedding_scale: 1.0        # float: token embeddings × this (Gemma: √hidden)
///   final_logit_softcap: null   # float or null: logits → cap·tanh(logits / cap)
///   dropout: 0.0                # training only: one probability, or {embedding, attention, residual}
///   attention: {heads: 6, kv_heads: 6, head_dim: 64, bias: true, qk_norm: false, qk_norm_eps: 1.0e-6,
///               qk_norm_scope: head, scale: null, window: null, window_from_layer: 0, kernel: tiled, tile_size: 64}
///               # scale: the score scale (null: 1/√head_dim); softcap: null (Gemma 2: scores → c·tanh(s / c));
///               # sinks: false (gpt-oss: a learned logit per head in every softmax denominator)
///               # qk_norm_scope: head (per head, Qwen3) | projection (the whole q and k, OLMo 2)
///   position: {kind: learned}   # learned | rope {theta, layout, partial_rotary_factor, scaling} | alibi | none
///   mlp: {kind: gelu, intermediate_size: 1536, approximation: tanh, bias: true}
///        # or {kind: swiglu, intermediate_size} or {kind: moe, experts, top_k, intermediate_size,
///        #     norm_topk_prob, aux_loss_coef, z_loss_coef, sparse_step: 1, mlp_only_layers: [],
///        #     dense_intermediate_size}
///   layer_types: [local, local, global]   # names, cycled over the layers (or one per layer)
///   layer_type_overrides:                 # per name: blocks merged into attention / position / mlp
///     local: {attention: {window: 128}, position: {theta: 10000}}
///     global: {}
/// ```
///
/// Per-layer variation is one mechanism: each layer gets its own attention window, position block
/// (a rotary base, another kind, or `none` for NoPE layers) and feed-forward block. `layer_types`
/// with `layer_type_overrides` states it directly; `window_from_layer` (a window on the layers from
/// that index on), and MoE's `sparse_step` / `mlp_only_layers` (dense SwiGLU of
/// `dense_intermediate_size` on the other layers) are shorthands that expand to the same per-layer
/// blocks. A layer whose position block equals the model's shares the model's encoding.
public enum ModelBuilder {
    /// `initializeWeights: false` leaves weights at zero (fast shape-only builds).
    /// `memoryLimit` overrides `ModelLimits.memoryLimit` for this build.
    public static func build(_ recipe: Recipe, initializeWeights: Bool = true, memoryLimit: Int? = nil) throws -> DecoderModel {
        var o = recipe.modelOptions()
        let vocab = try o.requiredInt("vocab_size")
        let hidden = try o.requiredInt("hidden_size")
        let layerCount = try o.requiredInt("layers")
        let context = try o.requiredInt("context_length")
        let tie = try o.bool("tie_word_embeddings", default: true)
        let initStd = try o.double("init_std", default: 0.02)
        guard initStd >= 0 else { throw o.error("init_std", "must not be negative") }
        let seed = try o.int("seed", default: 0)
        try ModelLimits.check(o, "vocab_size", vocab, max: ModelLimits.maxVocabulary)
        try ModelLimits.check(o, "hidden_size", hidden, max: ModelLimits.maxHidden)
        try ModelLimits.check(o, "layers", layerCount, max: ModelLimits.maxLayers)
        try ModelLimits.check(o, "context_length", context, max: ModelLimits.maxContext)
        guard initStd.isFinite else { throw o.error("init_std", "must be a finite number, got \(initStd)") }

        guard var a = try o.nested("attention") else { throw o.error("attention", "missing (required)") }
        let heads = try a.requiredInt("heads")
        let kvHeads = try a.int("kv_heads", default: heads)
        try ModelLimits.check(a, "heads", heads, max: ModelLimits.maxHeads)
        guard kvHeads >= 1, heads % kvHeads == 0 else {
            throw a.error("kv_heads", "\(kvHeads) must divide heads (\(heads))")
        }
        let headDim: Int
        if let d = try a.optionalInt("head_dim") {
            try ModelLimits.check(a, "head_dim", d, max: ModelLimits.maxHeadDim)
            headDim = d
        } else {
            guard hidden % heads == 0 else {
                throw a.error("heads", "hidden_size (\(hidden)) is not divisible by heads (\(heads)); set head_dim explicitly")
            }
            headDim = hidden / heads
        }
        let attnBias = try a.bool("bias", default: false)
        let qkNorm = try a.bool("qk_norm", default: false)
        let qkNormEps = try a.double("qk_norm_eps", default: 1e-6)
        guard qkNormEps > 0, qkNormEps.isFinite else { throw a.error("qk_norm_eps", "must be a positive finite number") }
        let qkScope = QKNormScope(rawValue: try a.choice("qk_norm_scope", QKNormScope.allCases.map(\.rawValue), default: "head"))!
        let scale = try a.optionalPositiveFinite("scale")
        let attnSoftcap = try a.optionalPositiveFinite("softcap")
        let sinks = try a.bool("sinks", default: false)
        let window = try a.optionalInt("window")
        if let window { try ModelLimits.check(a, "window", window, max: ModelLimits.maxContext) }
        let windowFrom = try a.int("window_from_layer", default: 0)
        try ModelLimits.check(a, "window_from_layer", windowFrom, max: layerCount, min: 0)
        let kernelName = try a.choice("kernel", ["tiled", "naive"], default: "tiled")
        let tile = try a.int("tile_size", default: 64)
        guard tile >= 1 else { throw a.error("tile_size", "must be positive") }
        try a.finish()
        let kernel: AttentionKernel = kernelName == "naive" ? .naive : .tiled(queryTile: tile, keyTile: tile)

        let ctx = ComponentContext(hiddenSize: hidden, heads: heads, kvHeads: kvHeads, headDim: headDim, layers: layerCount,
                                   contextLength: context, initStd: Float(initStd), seed: UInt64(truncatingIfNeeded: seed),
                                   initializeWeights: initializeWeights)
        guard let normOptions = try o.nested("norm") else { throw o.error("norm", "missing (required)") }
        let placement = NormPlacement(rawValue: try o.choice("norm_placement", NormPlacement.allCases.map(\.rawValue), default: "pre"))!
        let embeddingScale = try o.positiveFinite("embedding_scale", default: 1)
        let softcap = try o.optionalPositiveFinite("final_logit_softcap")
        let dropout = try DropoutRates(o.value("dropout"), in: o)
        // QK-norm is the model's norm over head_dim (or the projection): Gemma's (1 + w) form too.
        let qkUnitOffset = normOptions.values["unit_offset"] == .bool(true)
        guard let posOptions = try o.nested("position") else { throw o.error("position", "missing (required)") }
        guard let mlpOptions = try o.nested("mlp") else { throw o.error("mlp", "missing (required)") }
        // Before any per-layer loop or allocation: the weights must fit the memory.
        let overrideMLPs: [[String: ConfigValue]] = {
            guard case .map(let t)? = o.values["layer_type_overrides"] else { return [] }
            return t.values.compactMap { if case .map(let b) = $0, case .map(let m)? = b["mlp"] { return m }; return nil }
        }()
        var positionRows = context  // a learned table may be longer than the context
        if case .int(let n)? = posOptions.values["max_positions"] { positionRows = max(context, n) }
        let bytes = ModelLimits.estimatedBytes(vocab: vocab, hidden: hidden, layers: layerCount, context: positionRows, heads: heads,
                                               kvHeads: kvHeads, headDim: headDim, tied: tie,
                                               learnedPositions: posOptions.values["kind"] == .string("learned"),
                                               mlps: [mlpOptions.values] + overrideMLPs)
        if let limit = try memoryLimit ?? ModelLimits.memoryLimit(), bytes > limit {
            throw o.error("hidden_size", "these sizes (vocab_size \(vocab), hidden_size \(hidden), layers \(layerCount), "
                          + "context_length \(context), the MLP widths) need about \(ModelLimits.describe(bytes)) for the weights, "
                          + "more than the \(ModelLimits.describe(limit)) available (--max-memory or TOOLKIT_MAX_MEMORY to change)")
        }
        var plans = (0..<layerCount).map { i in
            LayerPlan(window: i >= windowFrom ? window : nil, position: posOptions, mlp: mlpOptions)
        }
        try expandMoEShorthands(mlpOptions, into: &plans)
        try applyLayerTypes(&o, into: &plans)
        try o.finish()

        // Build order fixes the random stream: embeddings, positions, then each layer.
        let embed = Embedding(vocabulary: vocab, dimension: hidden, context: ctx)
        let position = try Components.positions.make(posOptions, ctx)
        if let maxPos = position.maxPositions, maxPos < context {
            throw posOptions.error("kind", "supports \(maxPos) positions, fewer than context_length \(context)")
        }
        var blocks: [TransformerBlock] = []
        for (i, plan) in plans.enumerated() {
            var layerPosition = position
            if plan.position.values != posOptions.values {
                layerPosition = try Components.positions.make(plan.position, ctx)
                guard !layerPosition.addsToEmbeddings else {
                    throw plan.position.error("kind", "layer \(i) cannot have its own \(layerPosition.label) positions (they are added to the embeddings)")
                }
            }
            let attn = Attention(hiddenSize: hidden, heads: heads, kvHeads: kvHeads, headDim: headDim, bias: attnBias,
                                 qkNorm: qkNorm, qkNormEps: qkNormEps, qkNormScope: qkScope, qkNormUnitOffset: qkUnitOffset,
                                 scale: scale, softcap: attnSoftcap, sinks: sinks, window: plan.window, kernel: kernel,
                                 position: layerPosition, context: ctx)
            let mlp = try Components.feedForwards.make(plan.mlp, ctx)
            blocks.append(try TransformerBlock(placement: placement, makeNorm: { try Components.norms.make(normOptions, ctx) },
                                               attention: attn, mlp: mlp))
        }
        let finalNorm = try Components.norms.make(normOptions, ctx)
        let head = tie ? nil : Linear(hidden, vocab, bias: false, context: ctx)
        let dims = ModelDimensions(vocabSize: vocab, hiddenSize: hidden, layers: layerCount, heads: heads, kvHeads: kvHeads,
                                   headDim: headDim, contextLength: context, tieWordEmbeddings: tie)
        return DecoderModel(dims: dims, embedTokens: embed, position: position, layers: blocks, norm: finalNorm,
                            lmHead: head, recipe: recipe, embeddingScale: Float(embeddingScale), finalLogitSoftcap: softcap.map { Float($0) },
                            dropout: dropout)
    }

    /// One layer's window, position block and feed-forward block (with the key path errors name),
    /// before building.
    struct LayerPlan {
        var window: Int?
        var position: ComponentOptions
        var mlp: ComponentOptions
    }

    /// MoE's HF shorthands: `sparse_step` and `mlp_only_layers` pick the sparse layers; the others
    /// get a dense SwiGLU of `dense_intermediate_size` (HF Qwen3-MoE's rule).
    static func expandMoEShorthands(_ mlpOptions: ComponentOptions, into plans: inout [LayerPlan]) throws {
        var m = mlpOptions
        guard try m.kind() == "moe" else { return }
        let sparseStep = try m.int("sparse_step", default: 1)
        guard sparseStep >= 1 else { throw m.error("sparse_step", "must be at least 1") }
        var denseLayers = Set<Int>()
        switch m.values["mlp_only_layers"] {
        case nil, .null?: break
        case .list(let l)?:
            for v in l {
                guard case .int(let i) = v else { throw m.error("mlp_only_layers", "expected integers") }
                denseLayers.insert(i)
            }
        default: throw m.error("mlp_only_layers", "expected a list of layer indices")
        }
        let denseSize = try m.optionalInt("dense_intermediate_size")
        var sparse = mlpOptions.values
        for k in ["sparse_step", "mlp_only_layers", "dense_intermediate_size"] { sparse.removeValue(forKey: k) }
        if let bad = denseLayers.first(where: { !plans.indices.contains($0) }) {
            throw m.error("mlp_only_layers", "entry \(bad) is not a layer index in 0..<\(plans.count)")
        }
        if let denseSize { try ModelLimits.check(m, "dense_intermediate_size", denseSize, max: ModelLimits.maxIntermediate) }
        for i in plans.indices {
            if denseLayers.contains(i) || (i + 1) % sparseStep != 0 {
                guard let denseSize else {
                    throw m.error("dense_intermediate_size", "required when some layers are dense (sparse_step / mlp_only_layers)")
                }
                plans[i].mlp = ComponentOptions(path: mlpOptions.path + " (dense layer \(i))",
                                                values: ["kind": .string("swiglu"), "intermediate_size": .int(denseSize)])
            } else {
                plans[i].mlp = ComponentOptions(path: mlpOptions.path, values: sparse)
            }
        }
    }

    /// `layer_types` (names cycled over the layers, or one per layer) and `layer_type_overrides`
    /// (per name: `attention: {window}`, `position` and `mlp` blocks merged into the model's).
    static func applyLayerTypes(_ o: inout ComponentOptions, into plans: inout [LayerPlan]) throws {
        guard let types = try o.optionalStrings("layer_types") else {
            guard try o.nested("layer_type_overrides") == nil else {
                throw o.error("layer_type_overrides", "needs layer_types to say which layer is which")
            }
            return
        }
        guard !types.isEmpty, types.count <= plans.count, plans.count % types.count == 0 else {
            throw o.error("layer_types", "\(types.count) names do not cycle evenly over \(plans.count) layers")
        }
        let overrides = try o.nested("layer_type_overrides") ?? ComponentOptions(path: o.path + ".layer_type_overrides", values: [:])
        var table: [String: (window: Int??, position: ComponentOptions?, mlp: ComponentOptions?)] = [:]
        var seen = overrides
        for name in Set(types) {
            var t = try seen.nested(name) ?? ComponentOptions(path: overrides.path + "." + name, values: [:])
            var window: Int?? = nil
            if var a = try t.nested("attention") {
                switch a.values["window"] {
                case nil: break
                case .null?: window = .some(nil)
                case .int(let w)? where w >= 1: window = .some(w)
                case let v?: throw a.error("window", "expected a positive integer or null, got \(v)")
                }
                _ = try a.optionalInt("window").map { _ in () }
                do { try a.finish() } catch {
                    throw a.error(a.values.keys.sorted().first { $0 != "window" } ?? "window",
                                  "only the window can vary per layer (heads and projections are the model's)")
                }
            }
            let position = try t.nested("position")
            let mlp = try t.nested("mlp")
            try t.finish()
            table[name] = (window, position, mlp)
        }
        try seen.finish()
        for i in plans.indices {
            guard let t = table[types[i % types.count]] else { continue }
            if let w = t.window { plans[i].window = w }
            if let p = t.position { plans[i].position = overlay(plans[i].position, p) }
            if let m = t.mlp { plans[i].mlp = overlay(plans[i].mlp, m) }
        }
    }

    /// A layer's block with an override on top: merged key by key, or replaced whole when the
    /// override names another `kind` (as `extends:` treats blocks).
    static func overlay(_ base: ComponentOptions, _ top: ComponentOptions) -> ComponentOptions {
        if let kind = top.values["kind"], kind != base.values["kind"] { return top }
        return ComponentOptions(path: top.path, values: ConfigValue.merge(base.values, top.values))
    }
}
