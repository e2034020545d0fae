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
///   attention: {heads: 6, kv_heads: 6, head_dim: 64, bias: true, qk_norm: false, qk_norm_eps: 1.0e-6,
///               window: null, window_from_layer: 0, kernel: tiled, tile_size: 64}
///   position: {kind: learned}   # learned | rope {theta, layout, partial_rotary_factor, scaling} | alibi | none
///   mlp: {kind: gelu, intermediate_size: 1536, approximation: tanh, bias: true}
///        # or {kind: swiglu, intermediate_size} or {kind: moe, experts, top_k, intermediate_size,
///        #     norm_topk_prob, aux_loss_coef, z_loss_coef, sparse_step: 1, mlp_only_layers: [],
///        #     dense_intermediate_size}
/// ```
public enum ModelBuilder {
    /// `initializeWeights: false` leaves weights at zero (fast shape-only builds).
    public static func build(_ recipe: Recipe, initializeWeights: Bool = true) throws -> DecoderModel {
        var o = recipe.modelOptions()
        let vocab = try o.requiredInt("vocab_size")
        let hidden = try o.requiredInt("hidden_size")
        let layerCount = try o.requiredInt("layers")
        let context = try o.requiredInt("context_length")
        let tie = try o.bool("tie_word_embeddings", default: true)
        let initStd = try o.double("init_std", default: 0.02)
        guard initStd >= 0 else { throw o.error("init_std", "must not be negative") }
        let seed = try o.int("seed", default: 0)

        guard var a = try o.nested("attention") else { throw o.error("attention", "missing (required)") }
        let heads = try a.requiredInt("heads")
        let kvHeads = try a.int("kv_heads", default: heads)
        guard kvHeads >= 1, heads % kvHeads == 0 else {
            throw a.error("kv_heads", "\(kvHeads) must divide heads (\(heads))")
        }
        let headDim: Int
        if let d = try a.optionalInt("head_dim") {
            guard d >= 1 else { throw a.error("head_dim", "must be positive") }
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
        let window = try a.optionalInt("window")
        if let window, window < 1 { throw a.error("window", "must be positive, got \(window)") }
        let windowFrom = try a.int("window_from_layer", default: 0)
        let kernelName = try a.choice("kernel", ["tiled", "naive"], default: "tiled")
        let tile = try a.int("tile_size", default: 64)
        guard tile >= 1 else { throw a.error("tile_size", "must be positive") }
        try a.finish()
        let kernel: AttentionKernel = kernelName == "naive" ? .naive : .tiled(queryTile: tile, keyTile: tile)

        let ctx = ComponentContext(hiddenSize: hidden, heads: heads, kvHeads: kvHeads, headDim: headDim, layers: layerCount,
                                   contextLength: context, initStd: Float(initStd), seed: UInt64(truncatingIfNeeded: seed),
                                   initializeWeights: initializeWeights)
        guard let normOptions = try o.nested("norm") else { throw o.error("norm", "missing (required)") }
        guard let posOptions = try o.nested("position") else { throw o.error("position", "missing (required)") }
        guard var mlpOptions = try o.nested("mlp") else { throw o.error("mlp", "missing (required)") }
        try o.finish()

        // Build order fixes the random stream: embeddings, positions, then each layer.
        let embed = Embedding(vocabulary: vocab, dimension: hidden, context: ctx)
        let position = try Components.positions.make(posOptions, ctx)
        if let maxPos = position.maxPositions, maxPos < context {
            throw posOptions.error("kind", "supports \(maxPos) positions, fewer than context_length \(context)")
        }
        // MoE layer placement (HF Qwen3-MoE: sparse_step, mlp_only_layers, dense intermediate size).
        var sparseStep = 1, denseLayers: Set<Int> = [], denseSize: Int? = nil
        var mlpKind = "?"
        do {
            var probe = mlpOptions
            mlpKind = try probe.kind()
        }
        if mlpKind == "moe" {
            var m = mlpOptions
            sparseStep = try m.int("sparse_step", default: 1)
            guard sparseStep >= 1 else { throw m.error("sparse_step", "must be at least 1") }
            if case .list(let l)? = m.values["mlp_only_layers"] {
                for v in l { guard case .int(let i) = v else { throw m.error("mlp_only_layers", "expected integers") }; denseLayers.insert(i) }
            } else if m.values["mlp_only_layers"] != nil && m.values["mlp_only_layers"] != .null {
                throw m.error("mlp_only_layers", "expected a list of layer indices")
            }
            denseSize = try m.optionalInt("dense_intermediate_size")
            var values = mlpOptions.values
            for k in ["sparse_step", "mlp_only_layers", "dense_intermediate_size"] { values.removeValue(forKey: k) }
            mlpOptions = ComponentOptions(path: mlpOptions.path, values: values)
            let needsDense = (0..<layerCount).contains { denseLayers.contains($0) || ($0 + 1) % sparseStep != 0 }
            if needsDense && denseSize == nil {
                throw m.error("dense_intermediate_size", "required when some layers are dense (sparse_step / mlp_only_layers)")
            }
        }
        var blocks: [TransformerBlock] = []
        for i in 0..<layerCount {
            let inputNorm = try Components.norms.make(normOptions, ctx)
            let attn = Attention(hiddenSize: hidden, heads: heads, kvHeads: kvHeads, headDim: headDim, bias: attnBias,
                                 qkNorm: qkNorm, qkNormEps: qkNormEps, window: i >= windowFrom ? window : nil,
                                 kernel: kernel, position: position, context: ctx)
            let postNorm = try Components.norms.make(normOptions, ctx)
            let isDense = mlpKind == "moe" && (denseLayers.contains(i) || (i + 1) % sparseStep != 0)
            let mlp: any FeedForward = isDense
                ? SwiGLUMLP(hiddenSize: hidden, intermediateSize: denseSize!, bias: false, context: ctx)
                : try Components.feedForwards.make(mlpOptions, ctx)
            blocks.append(TransformerBlock(inputNorm: inputNorm, attention: attn, postAttentionNorm: postNorm, mlp: mlp))
        }
        let finalNorm = try Components.norms.make(normOptions, ctx)
        let head = tie ? nil : Linear(hidden, vocab, bias: false, context: ctx)
        let dims = ModelDimensions(vocabSize: vocab, hiddenSize: hidden, layers: layerCount, heads: heads, kvHeads: kvHeads,
                                   headDim: headDim, contextLength: context, tieWordEmbeddings: tie)
        return DecoderModel(dims: dims, embedTokens: embed, position: position, layers: blocks, norm: finalNorm,
                            lmHead: head, recipe: recipe)
    }
}
