import Checkpointing
import Layers
import Foundation
import ToolkitSupport

/// Typed access to a JSON object with errors naming the file and the key path.
/// `null` is treated like an absent key.
package struct ConfigObject {
    let object: [String: JSONValue]
    let path: String
    let prefix: String

    func fail(_ key: String, _ what: String) -> ToolkitError {
        ToolkitError.file(path, "key '\(prefix)\(key)' \(what)")
    }

    func value(_ key: String) -> JSONValue? {
        guard let v = object[key], !v.isNull else { return nil }
        return v
    }

    /// The value of the first present key among `keys` (alternative spellings); if several are
    /// present they must agree.
    func value(_ keys: [String]) throws -> (key: String, value: JSONValue)? {
        var found: (key: String, value: JSONValue)?
        for k in keys {
            guard let v = value(k) else { continue }
            if let f = found, f.value != v,
                f.value.doubleValue == nil || f.value.doubleValue != v.doubleValue
            {
                throw fail(k, "conflicts with '\(prefix)\(f.key)'")
            }
            if found == nil { found = (k, v) }
        }
        return found
    }

    func int(_ keys: String...) throws -> Int? { try int(keys) }

    func requiredInt(_ keys: String...) throws -> Int {
        guard let i = try int(keys) else {
            throw ToolkitError.file(path, "missing required key '\(prefix)\(keys[0])'")
        }
        return i
    }

    private func int(_ keys: [String]) throws -> Int? {
        guard let (k, v) = try value(keys) else { return nil }
        guard let i = v.intValue else { throw fail(k, "is \(v.typeName), expected an integer") }
        return i
    }

    func double(_ keys: String...) throws -> Double? {
        guard let (k, v) = try value(keys) else { return nil }
        guard let d = v.doubleValue else { throw fail(k, "is \(v.typeName), expected a number") }
        return d
    }

    func bool(_ key: String, default def: Bool) throws -> Bool {
        guard let v = value(key) else { return def }
        guard let b = v.boolValue else { throw fail(key, "is \(v.typeName), expected a boolean") }
        return b
    }

    func string(_ keys: String...) throws -> String? {
        guard let (k, v) = try value(keys) else { return nil }
        guard let s = v.stringValue else { throw fail(k, "is \(v.typeName), expected a string") }
        return s
    }

    func intList(_ key: String) throws -> [Int]? {
        guard let v = value(key) else { return nil }
        if let i = v.intValue { return [i] }
        guard let a = v.arrayValue else {
            throw fail(key, "is \(v.typeName), expected an integer or a list of integers")
        }
        return try a.enumerated().map { i, e in
            guard let x = e.intValue else { throw fail("\(key)[\(i)]", "is not an integer") }
            return x
        }
    }

    func stringList(_ key: String) throws -> [String]? {
        guard let v = value(key) else { return nil }
        guard let a = v.arrayValue else { throw fail(key, "is \(v.typeName), expected a list of strings") }
        return try a.enumerated().map { i, e in
            guard let s = e.stringValue else { throw fail("\(key)[\(i)]", "is not a string") }
            return s
        }
    }

    /// Whether `key` is present at all (even as null), to tell "explicit null" from "absent".
    func has(_ key: String) -> Bool { object[key] != nil }
}

extension HFModelConfig {
    /// Reads and parses a `config.json`.
    public static func load(_ path: String) throws -> HFModelConfig {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw ToolkitError.file(path, "cannot read: \(error.localizedDescription)")
        }
        return try parse(data, path: path)
    }

    /// Parses the text of a `config.json`; `path` names the file in error messages.
    public static func parse(_ data: Data, path: String = "config.json") throws -> HFModelConfig {
        guard let object = try JSONValue.parse(data, path: path).objectValue else {
            throw ToolkitError.file(path, "expected a JSON object")
        }
        let c = ConfigObject(object: object, path: path, prefix: "")
        guard let typeName = try c.string("model_type") else {
            throw ToolkitError.file(path, "missing required key 'model_type'")
        }
        guard let family = ModelFamilies.registry[typeName] else {
            throw ToolkitError.file(
                path, "unsupported model_type '\(typeName)' (supported: \(ModelFamilies.known))")
        }
        var config = try family.parse(c)
        if !family.traits.residualDropout { config.dropout = DropoutRates(attention: try c.double("attention_dropout") ?? 0) }
        config.dtype = try c.string("dtype", "torch_dtype")
        try config.validate(path: path)
        return config
    }

    static let supportedRopeTypes: Set<String> = ["default", "linear", "dynamic", "yarn", "llama3"]
    static let ropeKeys: Set<String> = [
        "rope_type", "type", "rope_theta", "factor", "original_max_position_embeddings",
        "beta_fast", "beta_slow", "attention_factor", "mscale", "mscale_all_dim", "truncate",
        "low_freq_factor", "high_freq_factor", "partial_rotary_factor",
    ]

    /// RoPE settings from v5 `rope_parameters` or v4 `rope_theta` + `rope_scaling`; when both
    /// forms are present they must agree.
    /// `defaultTheta`: the config class's base when the file names none.
    package static func parseRope(_ c: ConfigObject, defaultTheta: Double = 10000) throws
        -> (theta: Double, scaling: RopeScaling?, partialRotaryFactor: Double?)
    {
        var theta = try c.double("rope_theta")
        var partial = try c.double("partial_rotary_factor")
        var scaling: RopeScaling?
        for key in ["rope_parameters", "rope_scaling"] {
            guard let v = c.value(key) else { continue }
            guard let o = v.objectValue else {
                throw c.fail(key, "is \(v.typeName), expected an object")
            }
            let r = ConfigObject(object: o, path: c.path, prefix: key + ".")
            for k in o.keys.sorted() where !ropeKeys.contains(k) {
                throw r.fail(k, "is not a supported RoPE parameter")
            }
            if let t = try r.double("rope_theta") {
                if let theta, theta != t {
                    throw r.fail("rope_theta", "conflicts with 'rope_theta'")
                }
                theta = t
            }
            if let p = try r.double("partial_rotary_factor") {
                if let partial, partial != p {
                    throw r.fail("partial_rotary_factor", "conflicts with 'partial_rotary_factor'")
                }
                partial = p
            }
            let type = try r.string("rope_type", "type") ?? "default"
            guard supportedRopeTypes.contains(type) else {
                let known = supportedRopeTypes.sorted().joined(separator: ", ")
                throw r.fail("rope_type", "'\(type)' is not supported (supported: \(known))")
            }
            var s: RopeScaling? = RopeScaling(
                type: type, factor: try r.double("factor"),
                originalMaxPositionEmbeddings: try r.int("original_max_position_embeddings"),
                betaFast: try r.double("beta_fast"), betaSlow: try r.double("beta_slow"),
                attentionFactor: try r.double("attention_factor"), mscale: try r.double("mscale"),
                mscaleAllDim: try r.double("mscale_all_dim"),
                truncate: r.has("truncate") ? try r.bool("truncate", default: true) : nil,
                lowFreqFactor: try r.double("low_freq_factor"),
                highFreqFactor: try r.double("high_freq_factor"))
            if type == "default" { s = nil }
            if let scaling, scaling != s {
                throw c.fail("rope_parameters", "conflicts with 'rope_scaling'")
            }
            scaling = s
        }
        return (theta ?? defaultTheta, scaling, partial)
    }

    /// Checks the invariants the model builder relies on; errors name the HF key.
    public func validate(path: String = "config.json") throws {
        func check(_ ok: Bool, _ key: String, _ what: String) throws {
            if !ok { throw ToolkitError.file(path, "key '\(key)' \(what)") }
        }
        let gpt2 = modelType == .gpt2
        // Ceilings first, so that no later product of sizes can overflow and nothing loops over
        // an absurd layer count before the weights are compared with the config.
        let bounds: [(Int, String, Int)] = [
            (vocabSize, "vocab_size", ModelLimits.maxVocabulary), (hiddenSize, gpt2 ? "n_embd" : "hidden_size", ModelLimits.maxHidden),
            (numLayers, gpt2 ? "n_layer" : "num_hidden_layers", ModelLimits.maxLayers),
            (numHeads, gpt2 ? "n_head" : "num_attention_heads", ModelLimits.maxHeads), (numKVHeads, "num_key_value_heads", ModelLimits.maxHeads),
            (headDim, "head_dim", ModelLimits.maxHeadDim), (intermediateSize, gpt2 ? "n_inner" : "intermediate_size", ModelLimits.maxIntermediate),
            (maxPositionEmbeddings, gpt2 ? "n_positions" : "max_position_embeddings", ModelLimits.maxContext),
            (slidingWindow ?? 1, "sliding_window", ModelLimits.maxContext), (moe?.numExperts ?? 1, "num_local_experts", ModelLimits.maxExperts),
            (moe?.moeIntermediateSize ?? 1, "moe_intermediate_size", ModelLimits.maxIntermediate),
        ]
        for (value, key, limit) in bounds where value > limit {
            try check(false, key, "is \(value), above the largest supported \(limit)")
        }
        try check(vocabSize > 0, "vocab_size", "must be positive (got \(vocabSize))")
        try check(
            hiddenSize > 0, gpt2 ? "n_embd" : "hidden_size", "must be positive (got \(hiddenSize))")
        try check(
            numLayers > 0, gpt2 ? "n_layer" : "num_hidden_layers",
            "must be positive (got \(numLayers))")
        try check(
            numHeads > 0, gpt2 ? "n_head" : "num_attention_heads",
            "must be positive (got \(numHeads))")
        try check(
            numKVHeads > 0 && numHeads % numKVHeads == 0, "num_key_value_heads",
            "(\(numKVHeads)) must be positive and divide num_attention_heads (\(numHeads))")
        if gpt2 {
            try check(
                hiddenSize % numHeads == 0, "n_head",
                "(\(numHeads)) must divide n_embd (\(hiddenSize))")
        }
        try check(headDim > 0, "head_dim", "must be positive (got \(headDim))")
        let rates = gpt2 ? [(dropout.embedding, "embd_pdrop"), (dropout.attention, "attn_pdrop"), (dropout.residual, "resid_pdrop")]
            : [(dropout.attention, "attention_dropout")]
        for (p, key) in rates { try check(p >= 0 && p < 1, key, "must be a probability in [0, 1) (got \(p))") }
        try check(
            intermediateSize > 0, gpt2 ? "n_inner" : "intermediate_size",
            "must be positive (got \(intermediateSize))")
        try check(
            maxPositionEmbeddings > 0, gpt2 ? "n_positions" : "max_position_embeddings",
            "must be positive (got \(maxPositionEmbeddings))")
        try check(
            normEps > 0 && normEps.isFinite, gpt2 ? "layer_norm_epsilon" : "rms_norm_eps",
            "must be positive (got \(normEps))")
        if let ropeTheta {
            try check(
                ropeTheta > 0 && ropeTheta.isFinite, "rope_theta",
                "must be positive (got \(ropeTheta))")
        }
        if let s = ropeScaling {
            if let f = s.factor {
                try check(
                    f > 0 && f.isFinite, "rope_parameters.factor", "must be positive (got \(f))")
            } else if s.type != "dynamic" {
                try check(false, "rope_parameters.factor", "is required for rope_type '\(s.type)'")
            }
            if let o = s.originalMaxPositionEmbeddings {
                try check(
                    o > 0, "rope_parameters.original_max_position_embeddings",
                    "must be positive (got \(o))")
            }
        }
        if let p = partialRotaryFactor {
            try check(p > 0 && p <= 1, "partial_rotary_factor", "must be in (0, 1] (got \(p))")
        }
        if let w = slidingWindow {
            try check(w > 0, "sliding_window", "must be positive (got \(w))")
        }
        if let types = layerTypes {
            try check(types.count == numLayers, "layer_types", "has \(types.count) entries for \(numLayers) layers")
            for t in types {
                try check(["full_attention", "sliding_attention"].contains(t), "layer_types",
                          "entry '\(t)' is not full_attention or sliding_attention")
            }
        }
        if let m = moe {
            try check(
                m.numExperts > 0, "num_local_experts", "must be positive (got \(m.numExperts))")
            try check(
                m.numExpertsPerToken > 0 && m.numExpertsPerToken <= m.numExperts,
                "num_experts_per_tok",
                "(\(m.numExpertsPerToken)) must be in 1...num_local_experts (\(m.numExperts))")
            try check(
                m.moeIntermediateSize > 0, "moe_intermediate_size",
                "must be positive (got \(m.moeIntermediateSize))")
            try check(
                m.decoderSparseStep > 0, "decoder_sparse_step",
                "must be positive (got \(m.decoderSparseStep))")
            try check(m.routerAuxLossCoef >= 0, "router_aux_loss_coef", "must not be negative")
            for l in m.mlpOnlyLayers {
                try check(
                    l >= 0 && l < numLayers, "mlp_only_layers",
                    "entry \(l) is not a layer index in 0..<\(numLayers)")
            }
        }
    }
}
