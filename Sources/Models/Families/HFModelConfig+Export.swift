import Checkpointing
import Foundation
import ToolkitSupport

extension HFModelConfig {
    /// The HF architecture class for `architectures`.
    public var architecture: String { (try? family)?.architecture ?? modelType.rawValue }

    /// The `config.json` object for export: the keys every family shares here, the family's own
    /// (`ModelFamily.write`), in transformers-5 spelling (`rope_parameters`, `num_local_experts`,
    /// `dtype`) plus the transformers-4 spellings of the same values (`rope_theta`,
    /// `rope_scaling`, `num_experts`, `torch_dtype`), which both versions accept, so either can
    /// load the result. `parse` of the output gives back `self`.
    package var hfJSON: JSONValue {
        var o: [String: JSONValue] = [
            "architectures": .array([.string(architecture)]),
            "model_type": .string(modelType.rawValue),
            "vocab_size": .int(Int64(vocabSize)),
            "tie_word_embeddings": .bool(tieWordEmbeddings),
            "bos_token_id": bosTokenId.map { .int(Int64($0)) } ?? .null,
            "eos_token_id": eosTokenIds.count == 1
                ? .int(Int64(eosTokenIds[0]))
                : eosTokenIds.isEmpty ? .null : .array(eosTokenIds.map { .int(Int64($0)) }),
            "use_cache": .bool(true),
        ]
        if let dtype {
            o["dtype"] = .string(dtype)
            o["torch_dtype"] = .string(dtype)
        }
        if let family = try? family { o.merge(family.write(self)) { _, new in new } }
        return .object(o)
    }

    /// `config.json` text (2-space indent, sorted keys, trailing newline).
    public func hfConfigJSON() -> String { hfJSON.rendered() + "\n" }

    /// Writes `config.json` atomically.
    public func writeHFConfig(to path: String) throws {
        try validate(path: path)
        try AtomicFile.write(hfConfigJSON(), to: path)
    }
}

extension HFModelConfig.RopeScaling {
    /// The scaling entries in HF spelling, including `rope_type`.
    var hfJSON: [String: JSONValue] {
        var o: [String: JSONValue] = ["rope_type": .string(type)]
        let doubles: [(String, Double?)] = [
            ("factor", factor), ("beta_fast", betaFast), ("beta_slow", betaSlow),
            ("attention_factor", attentionFactor), ("mscale", mscale),
            ("mscale_all_dim", mscaleAllDim), ("low_freq_factor", lowFreqFactor),
            ("high_freq_factor", highFreqFactor),
        ]
        for case (let k, let v?) in doubles { o[k] = .double(v) }
        if let originalMaxPositionEmbeddings {
            o["original_max_position_embeddings"] = .int(Int64(originalMaxPositionEmbeddings))
        }
        if let truncate { o["truncate"] = .bool(truncate) }
        return o
    }
}
