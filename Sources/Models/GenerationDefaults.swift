import Checkpointing
import Foundation
import ToolkitSupport

/// A model folder's generation settings, as transformers reads them: `eos_token_id` (one id or a
/// list) from `config.json`, and `generation_config.json` (eos, `do_sample`, `temperature`, `top_k`,
/// `top_p`, `min_p`, `repetition_penalty`), whose values win. Missing files give empty defaults.
public struct GenerationDefaults: Sendable, Equatable {
    public var eosTokenIds: [Int32] = []
    public var doSample: Bool?
    public var temperature: Float?
    public var topK: Int?
    public var topP: Float?
    public var minP: Float?
    public var repetitionPenalty: Float?

    public init() {}

    public static func load(folder: String) throws -> GenerationDefaults {
        var d = GenerationDefaults()
        for name in ["config.json", "generation_config.json"] {
            let path = (folder as NSString).appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: path) else { continue }
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            guard case .object(let o) = try JSONValue.parse(data, path: path) else { throw ToolkitError.file(path, "not a JSON object") }
            func number(_ key: String) throws -> Double? {
                guard let v = o[key], !v.isNull else { return nil }
                guard let x = v.doubleValue, x.isFinite else { throw ToolkitError.file(path, "key '\(key)' must be a number") }
                return x
            }
            if let v = o["eos_token_id"], !v.isNull {
                let ids = v.arrayValue.map { $0.compactMap(\.intValue) } ?? v.intValue.map { [$0] }
                guard let ids, ids.allSatisfy({ $0 >= 0 && $0 < Int(Int32.max) }) else {
                    throw ToolkitError.file(path, "key 'eos_token_id' must be a token id or a list of them")
                }
                d.eosTokenIds = ids.map { Int32($0) }
            }
            guard name == "generation_config.json" else { continue }
            if case .bool(let b)? = o["do_sample"] { d.doSample = b }
            d.temperature = try number("temperature").map { Float($0) } ?? d.temperature
            d.topK = try number("top_k").map { Int($0) } ?? d.topK
            d.topP = try number("top_p").map { Float($0) } ?? d.topP
            d.minP = try number("min_p").map { Float($0) } ?? d.minP
            d.repetitionPenalty = try number("repetition_penalty").map { Float($0) } ?? d.repetitionPenalty
        }
        return d
    }
}
