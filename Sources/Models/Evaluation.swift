import CKernels
import Foundation
import TensorCore
import ToolkitSupport

/// Next-token cross-entropy of a model over token sequences (no gradients).
public enum Evaluation {
    public struct Result: Codable, Sendable {
        /// Mean cross-entropy in nats over all predicted tokens.
        public var loss: Double
        public var perplexity: Double
        /// Predicted tokens.
        public var tokens: Int
        /// Bits per byte of the predicted tokens' text, when their byte lengths are known.
        public var bitsPerByte: Double?
    }

    /// Scores each sequence on predicting `ids[t+1]` from `ids[...t]`; sequences longer than the
    /// context are cut into consecutive windows of `context + 1` tokens overlapping by one.
    /// `tokenBytes`, when given, maps an id to its UTF-8 byte length for bits-per-byte.
    /// With `engine`, every window is scored token by token through the fast decoder (batch 1, its
    /// weight format), e.g. to measure what int8 weights cost in perplexity.
    public static func score(_ model: DecoderModel, sequences: [[Int32]], tokenBytes: ((Int32) -> Int)? = nil,
                             engine: DecodeEngine? = nil, source: String = "the input",
                             progress: ((Int) -> Void)? = nil) throws -> Result {
        let v = model.dims.vocabSize, ctx = model.dims.contextLength
        var windows: [[Int32]] = []
        for (i, s) in sequences.enumerated() {
            if let bad = s.first(where: { $0 < 0 || Int($0) >= v }) {
                throw ToolkitError("\(source): sequence \(i): token id \(bad) is outside the vocabulary (0..<\(v))")
            }
            var start = 0
            while start + 1 < s.count {
                let end = min(start + ctx + 1, s.count)
                windows.append(Array(s[start..<end]))
                start = end - 1
            }
        }
        guard !windows.isEmpty else { throw ToolkitError("\(source): no sequence has two or more tokens to score") }
        var total = 0.0, count = 0, bytes = 0
        if let engine {
            guard engine.model === model else { throw ToolkitError("eval: the decode engine belongs to another model") }
            for w in windows {
                let cache = model.makeCache(batch: 1, capacity: w.count - 1)
                for t in 0..<(w.count - 1) {
                    let logits = try engine.step(token: w[t], cache: cache)
                    var lse: Float = 0  // the cross-entropy's own log-sum-exp kernel
                    tk_logsumexp_rows(logits.baseAddress, &lse, Int32(v), 0, 1)
                    total += Double(lse) - Double(logits[Int(w[t + 1])])
                    if let tokenBytes { bytes += tokenBytes(w[t + 1]) }
                }
                count += w.count - 1
                progress?(count)
            }
            return result(total: total, count: count, bytes: bytes, hasBytes: tokenBytes != nil)
        }
        // Batch windows of equal length together.
        let groups = Dictionary(grouping: windows.indices, by: { windows[$0].count })
        try GradMode.withoutGrad {
            for len in groups.keys.sorted() {
                let idx = groups[len]!
                for chunk in stride(from: 0, to: idx.count, by: 8) {
                    let rows = idx[chunk..<min(chunk + 8, idx.count)].map { windows[$0] }
                    let input = rows.flatMap { $0.dropLast() }
                    let targets = rows.flatMap { $0.dropFirst() }
                    let ce = try model.crossEntropy(input, targets: targets, batch: rows.count)
                    total += Double(ce.item()) * Double(targets.count)
                    count += targets.count
                    if let tokenBytes { bytes += targets.reduce(0) { $0 + tokenBytes($1) } }
                    progress?(count)
                }
            }
        }
        return result(total: total, count: count, bytes: bytes, hasBytes: tokenBytes != nil)
    }

    private static func result(total: Double, count: Int, bytes: Int, hasBytes: Bool) -> Result {
        let loss = total / Double(count)
        return Result(loss: loss, perplexity: Foundation.exp(loss), tokens: count,
                      bitsPerByte: hasBytes && bytes > 0 ? total / (Foundation.log(2) * Double(bytes)) : nil)
    }

    /// Reads a JSON array of token-id arrays.
    public static func readTokenFile(_ path: String) throws -> [[Int32]] {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw ToolkitError.file(path, "cannot read: \(error.localizedDescription)")
        }
        do {
            return try JSONDecoder().decode([[Int32]].self, from: data)
        } catch let DecodingError.typeMismatch(_, ctx), let DecodingError.dataCorrupted(ctx) {
            let at = ctx.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined()
            if at.isEmpty { throw ToolkitError.file(path, "expected a JSON array of token-id arrays (\(ctx.debugDescription))") }
            throw ToolkitError.file(path, "element \(at) is not an integer token id")
        } catch {
            throw ToolkitError.file(path, "expected a JSON array of token-id arrays: \(error)")
        }
    }
}
