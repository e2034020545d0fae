import Foundation
import TensorCore
import ToolkitSupport

/// The bounds every model size from a recipe or a config.json is checked against before anything
/// is allocated or looped over, and the memory a model's weights may take.
///
/// Each size has a ceiling far above any published model (so that no product of two sizes can
/// overflow), and the estimated bytes of the weights and position tables must fit the memory
/// available now (`MemAvailable`), or `--max-memory` / `TOOLKIT_MAX_MEMORY` when set.
public enum ModelLimits {
    public static let maxVocabulary = 1 << 24
    public static let maxHidden = 1 << 20
    public static let maxLayers = 1 << 14
    public static let maxHeads = 1 << 12
    public static let maxHeadDim = 1 << 14
    public static let maxContext = 1 << 26
    public static let maxIntermediate = 1 << 22
    public static let maxExperts = 1 << 14

    /// Set by `--max-memory`; otherwise `TOOLKIT_MAX_MEMORY` (bytes, or with a K/M/G/T suffix).
    nonisolated(unsafe) public static var memoryOverride: Int?

    /// The bytes a model may take: the override, `TOOLKIT_MAX_MEMORY`, or the memory available
    /// now (nil: unknown). An unreadable `TOOLKIT_MAX_MEMORY` is an error, not ignored.
    public static func memoryLimit() throws -> Int? {
        if let memoryOverride { return memoryOverride }
        if let env = ProcessInfo.processInfo.environment["TOOLKIT_MAX_MEMORY"] {
            do { return try parseBytes(env) } catch let e as ToolkitError { throw ToolkitError("TOOLKIT_MAX_MEMORY: \(e.message)") }
        }
        return SystemPolicy.availableMemory
    }

    /// `12G`, `512M`, `1.5T`, `4096` (bytes).
    public static func parseBytes(_ text: String) throws -> Int {
        let t = text.trimmingCharacters(in: .whitespaces).uppercased()
        let units: [Character: Double] = ["K": 1024, "M": 1_048_576, "G": 1_073_741_824, "T": 1_099_511_627_776]
        var number = Substring(t), scale = 1.0
        if number.hasSuffix("B") { number = number.dropLast() }  // 12GB, 12GiB
        if number.hasSuffix("I") { number = number.dropLast() }
        if let last = number.last, let u = units[last] { number = number.dropLast(); scale = u }
        guard let v = Double(number), v.isFinite, v > 0, v * scale < 9e18 else {
            throw ToolkitError("'\(text)' is not a memory size (e.g. 12G, 512M or a number of bytes)")
        }
        return Int(v * scale)
    }

    /// Throws, naming `key`, when `value` is outside `1...max`.
    public static func check(_ o: ComponentOptions, _ key: String, _ value: Int, max: Int, min: Int = 1) throws {
        guard value >= min, value <= max else {
            throw o.error(key, "\(value) is outside \(min)...\(max)")
        }
    }

    /// Estimated bytes of the weights and position tables (Float32), with overflow-checked
    /// arithmetic over the sizes; the MLP term takes the widest block (`intermediate_size`, or
    /// 4·hidden, times its experts) for every layer, so it is an upper bound for mixed layers.
    public static func estimatedBytes(vocab: Int, hidden: Int, layers: Int, context: Int, heads: Int, kvHeads: Int,
                               headDim: Int, tied: Bool, learnedPositions: Bool, mlps: [[String: ConfigValue]]) -> Int {
        // The MLP sizes come straight from the recipe (the components check them later): clamp
        // them so that the products below stay in range, and let the overflow checks saturate.
        func int(_ v: ConfigValue?) -> Int? { if case .int(let i)? = v { return Swift.min(Swift.max(i, 0), 1 << 40) }; return nil }
        var widest = 0
        for m in mlps {
            let inner = max(int(m["intermediate_size"]) ?? 4 * hidden, int(m["dense_intermediate_size"]) ?? 0)
            let experts = max(int(m["experts"]) ?? 1, 1)
            let (w, overflow) = (3 * inner).multipliedReportingOverflow(by: experts)
            widest = overflow ? .max / 4 : max(widest, w + experts)
        }
        let terms: [[Int]] = [
            [vocab, hidden, tied ? 1 : 2],
            [layers, hidden, headDim, 2 * heads + 2 * kvHeads],
            [layers, hidden, widest],
            [context, learnedPositions ? hidden : headDim],  // the position table, or the rotary cos/sin tables
        ]
        var total = 0
        for t in terms {
            var product = 4
            for f in t {
                let (p, overflow) = product.multipliedReportingOverflow(by: Swift.max(f, 0))
                if overflow { return .max }
                product = p
            }
            let (s, overflow) = total.addingReportingOverflow(product)
            if overflow { return .max }
            total = s
        }
        return total
    }

    public static func describe(_ bytes: Int) -> String {
        if bytes == .max { return "more than 8 EiB" }
        if bytes < 1 << 30 { return String(format: "%.2f MiB", Double(bytes) / Double(1 << 20)) }
        return String(format: "%.2f GiB", Double(bytes) / Double(1 << 30))
    }
}
