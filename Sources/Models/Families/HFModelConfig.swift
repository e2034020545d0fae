import Checkpointing
import Layers
import ToolkitSupport

/// A model configuration read from (or written to) a Hugging Face `config.json`, in neutral
/// names that do not depend on the family or on the transformers version that wrote it.
///
/// Each `model_type` is one family file in this folder, registered in `ModelFamilies`: it parses
/// and writes the family's keys (transformers 4.x and 5.x spellings), maps its weight names and
/// turns the config into a recipe and back. Missing optional keys take the defaults of the
/// corresponding transformers config class.
public struct HFModelConfig: Codable, Equatable, Sendable {
    /// The HF `model_type` (`gpt2`, `qwen3`, …); each value names a registered family.
    public struct ModelType: RawRepresentable, Hashable, Codable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }
    }

    /// RoPE frequency scaling (`rope_parameters` minus `rope_theta`, or v4 `rope_scaling`).
    public struct RopeScaling: Codable, Equatable, Sendable {
        /// `rope_type`: `yarn`, `linear`, `dynamic`, `llama3`, `longrope`, …
        public var type: String
        public var factor: Double?
        public var originalMaxPositionEmbeddings: Int?
        public var betaFast: Double?
        public var betaSlow: Double?
        public var attentionFactor: Double?
        public var mscale: Double?
        public var mscaleAllDim: Double?
        public var truncate: Bool?
        public var lowFreqFactor: Double?
        public var highFreqFactor: Double?

        public init(
            type: String, factor: Double? = nil, originalMaxPositionEmbeddings: Int? = nil,
            betaFast: Double? = nil, betaSlow: Double? = nil, attentionFactor: Double? = nil,
            mscale: Double? = nil, mscaleAllDim: Double? = nil, truncate: Bool? = nil,
            lowFreqFactor: Double? = nil, highFreqFactor: Double? = nil
        ) {
            self.type = type
            self.factor = factor
            self.originalMaxPositionEmbeddings = originalMaxPositionEmbeddings
            self.betaFast = betaFast
            self.betaSlow = betaSlow
            self.attentionFactor = attentionFactor
            self.mscale = mscale
            self.mscaleAllDim = mscaleAllDim
            self.truncate = truncate
            self.lowFreqFactor = lowFreqFactor
            self.highFreqFactor = highFreqFactor
        }
    }

    /// Mixture-of-experts settings (Qwen3-MoE).
    public struct MoE: Codable, Equatable, Sendable {
        public var numExperts: Int
        public var numExpertsPerToken: Int
        public var moeIntermediateSize: Int
        public var normTopKProb: Bool
        public var routerAuxLossCoef: Double
        public var decoderSparseStep: Int
        public var mlpOnlyLayers: [Int]
        /// `output_router_logits`: HF adds `router_aux_loss_coef · aux` to the loss only when true.
        public var outputRouterLogits: Bool

        public init(
            numExperts: Int, numExpertsPerToken: Int, moeIntermediateSize: Int,
            normTopKProb: Bool = false, routerAuxLossCoef: Double = 0.001,
            decoderSparseStep: Int = 1, mlpOnlyLayers: [Int] = [], outputRouterLogits: Bool = false
        ) {
            self.outputRouterLogits = outputRouterLogits
            self.numExperts = numExperts
            self.numExpertsPerToken = numExpertsPerToken
            self.moeIntermediateSize = moeIntermediateSize
            self.normTopKProb = normTopKProb
            self.routerAuxLossCoef = routerAuxLossCoef
            self.decoderSparseStep = decoderSparseStep
            self.mlpOnlyLayers = mlpOnlyLayers
        }

        /// HF rule: layer `l` is sparse iff `l ∉ mlp_only_layers`, `num_experts > 0` and
        /// `(l + 1) % decoder_sparse_step == 0`.
        public func isSparse(layer: Int) -> Bool {
            !mlpOnlyLayers.contains(layer) && numExperts > 0 && decoderSparseStep > 0
                && (layer + 1) % decoderSparseStep == 0
        }
    }

    public var modelType: ModelType
    public var vocabSize: Int
    public var hiddenSize: Int
    public var numLayers: Int
    public var numHeads: Int
    public var numKVHeads: Int
    public var headDim: Int
    /// Dense MLP width (GPT-2: `n_inner`, default 4·hidden).
    public var intermediateSize: Int
    public var maxPositionEmbeddings: Int
    /// LayerNorm epsilon (GPT-2) or RMSNorm epsilon (Qwen3).
    public var normEps: Double
    /// RoPE base; nil for learned absolute positions (GPT-2).
    public var ropeTheta: Double?
    /// nil for plain RoPE (`rope_type: default`) or no RoPE.
    public var ropeScaling: RopeScaling?
    public var partialRotaryFactor: Double?
    public var attentionBias: Bool
    /// Biases in the MLP projections (Llama `mlp_bias`).
    public var mlpBias: Bool
    public var tieWordEmbeddings: Bool
    /// `activation_function` / `hidden_act` (`gelu_new`, `silu`, …).
    public var activation: String
    public var moe: MoE?
    public var slidingWindow: Int?
    public var useSlidingWindow: Bool
    public var maxWindowLayers: Int?
    /// Per-layer attention types (`full_attention`, `sliding_attention`), when the config lists them.
    public var layerTypes: [String]?
    /// Settings only one family has, by that family's HF key (`query_pre_attn_scalar`,
    /// `no_rope_layers`, …): the family file parses, writes and reads them, so adding a family
    /// never adds fields here.
    package var familyKeys: [String: JSONValue] = [:]
    public var bosTokenId: Int?
    /// `eos_token_id` may be one id or a list.
    public var eosTokenIds: [Int]
    /// `dtype` (v5) / `torch_dtype` (v4) when given, e.g. `float32`, `bfloat16`.
    public var dtype: String?
    /// Training dropout: GPT-2's `embd_pdrop`, `attn_pdrop`, `resid_pdrop`; the Llama layout's
    /// `attention_dropout` (the only rate those models have).
    public var dropout = DropoutRates()

    public init(
        modelType: ModelType, vocabSize: Int, hiddenSize: Int, numLayers: Int, numHeads: Int,
        numKVHeads: Int, headDim: Int, intermediateSize: Int, maxPositionEmbeddings: Int,
        normEps: Double, ropeTheta: Double? = nil, ropeScaling: RopeScaling? = nil,
        partialRotaryFactor: Double? = nil, attentionBias: Bool, mlpBias: Bool = false, tieWordEmbeddings: Bool,
        activation: String, moe: MoE? = nil, slidingWindow: Int? = nil,
        useSlidingWindow: Bool = false, maxWindowLayers: Int? = nil, bosTokenId: Int? = nil,
        eosTokenIds: [Int] = [], dtype: String? = nil
    ) {
        self.modelType = modelType
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.numLayers = numLayers
        self.numHeads = numHeads
        self.numKVHeads = numKVHeads
        self.headDim = headDim
        self.intermediateSize = intermediateSize
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.normEps = normEps
        self.ropeTheta = ropeTheta
        self.ropeScaling = ropeScaling
        self.partialRotaryFactor = partialRotaryFactor
        self.attentionBias = attentionBias
        self.mlpBias = mlpBias
        self.tieWordEmbeddings = tieWordEmbeddings
        self.activation = activation
        self.moe = moe
        self.slidingWindow = slidingWindow
        self.useSlidingWindow = useSlidingWindow
        self.maxWindowLayers = maxWindowLayers
        self.bosTokenId = bosTokenId
        self.eosTokenIds = eosTokenIds
        self.dtype = dtype
    }

    /// Query heads per KV head.
    public var kvGroups: Int { numHeads / max(numKVHeads, 1) }
    /// True for families with LayerNorm (GPT-2); false for RMSNorm.
    public var usesLayerNorm: Bool { (try? family)?.traits.layerNorm ?? false }
    /// True for families with learned absolute positions (GPT-2).
    public var usesLearnedPositions: Bool { (try? family)?.traits.learnedPositions ?? false }
    /// Qwen3 applies RMSNorm to q and k per head.
    public var usesQKNorm: Bool { (try? family)?.traits.qkNorm ?? false }

    /// This config's family.
    package var family: any ModelFamily {
        get throws {
            guard let f = ModelFamilies.registry[modelType.rawValue] else {
                throw ToolkitError("unsupported model_type '\(modelType)' (supported: \(ModelFamilies.known))")
            }
            return f
        }
    }
}
