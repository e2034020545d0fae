import Foundation
import CKernels
import Layers
import TensorCore
import ToolkitSupport

/// Single-sequence decoding without the tensor machinery: each new token runs through C kernels
/// (matrix-vector products split over a persistent thread pool, one-row norms, rotary embedding,
/// attention of one query over the KV cache), with every buffer allocated once.
///
/// Decoding one token reads every weight once, so the speed is set by the bytes of the weights
/// (`format`) and by per-token overheads, which this path removes. Norms, biases, embeddings and
/// the KV cache stay Float32 in every format. The prompt is processed by the tensor path
/// (matrix-matrix products), which fills the same `KVCache`.
///
/// Every component lowers itself (`decodeStep`, `decodeNorm`, `decodePositions` into
/// `DecodeWeights`), so the engine knows only the block structure: embeddings, pre-norm blocks, the
/// final norm and the LM head. A component without a single-token step says why
/// (`DecodeUnsupported`): `DecodeEngine.unsupportedReason(_:)` returns that reason (MoE layers,
/// adapters), and callers use the tensor path.
///
/// The engine reads the parameters it was built from: f32 in place, bf16/int8 as copies made at
/// init. Build a new engine after changing the weights (`step` refuses once a parameter's storage
/// has been replaced, e.g. by loading a checkpoint or merging an adapter).
///
/// `step(tokens:caches:)` decodes one token for each of several sequences at once, each with its
/// own cache and length (continuous batching, as `toolkit serve` does): every weight matrix is
/// read from memory once for all of them, and each sequence's logits equal a single-sequence
/// step's bit for bit.
///
/// One engine runs one step at a time (its scratch buffers are shared between steps); steps of
/// different engines are serialised by the kernels' thread pool.
public final class DecodeEngine {
    public let model: DecoderModel
    public let format: DecodeWeightFormat

    private let blocks: [DecodeBlock]
    private let finalNorm: DecodeNorm
    private let head: DecodeMatrix
    private let embedding: UnsafePointer<Float>
    private let positions: DecodePositions
    private let weights: DecodeWeights
    /// The model's parameters and their storage when the engine was built (staleness check).
    private let parameters: [(Parameter, TensorStorage)]
    private var scratch: UnsafeMutablePointer<Float>
    /// Sequences per step the scratch has room for (grown on demand).
    private var scratchRows = 0
    private let dims: ModelDimensions
    /// Bytes of weight matrices read per token (norms, biases and the KV cache not included).
    public var matrixBytes: Int { weights.matrixBytes }

    /// The lowered model: blocks, final norm, LM head, embeddings and position hooks.
    private typealias Lowered = (blocks: [DecodeBlock], norm: DecodeNorm, head: DecodeMatrix, embedding: UnsafePointer<Float>,
                                 positions: DecodePositions)

    private static func lower(_ model: DecoderModel, _ w: DecodeWeights) throws -> Lowered {
        let blocks = try model.layers.enumerated().map { i, b in
            do { return try b.decodeStep(w) } catch let e as DecodeUnsupported { throw DecodeUnsupported("layer \(i): \(e.reason)") }
        }
        let head: DecodeMatrix
        do { head = try model.lmHead.map { try w.matrix($0) } ?? w.matrix(model.embedTokens.weight.value, bias: nil) } catch let e as DecodeUnsupported {
            throw DecodeUnsupported("the LM head: \(e.reason)")
        }
        return (blocks, try model.norm.decodeNorm(w), head, w.pin(model.embedTokens.weight.value),
                try model.position.decodePositions(w))
    }

    /// Why `model` cannot use this path (the first component without a decode step, and its
    /// reason), or nil when it can.
    public static func unsupportedReason(_ model: DecoderModel) -> String? {
        do {
            try DecodeWeights.check { _ = try lower(model, $0) }
            return nil
        } catch let e as DecodeUnsupported {
            return e.reason
        } catch {
            return "\(error)"
        }
    }

    public init(model: DecoderModel, format: DecodeWeightFormat = .f32) throws {
        self.model = model
        self.format = format
        dims = model.dims
        guard model.embedTokens.weight.shape == [dims.vocabSize, dims.hiddenSize],
              model.outputWeight.shape == [dims.vocabSize, dims.hiddenSize]
        else {
            throw ToolkitError("the decode engine needs embeddings and an LM head of [\(dims.vocabSize), \(dims.hiddenSize)]")
        }
        tk_pool_configure(Int32(Parallel.workers))  // takes effect before the pool's first use
        parameters = model.namedParameters().map { ($0.parameter, $0.parameter.value.storage) }
        let (lowered, w): (Lowered, DecodeWeights)
        do { (lowered, w) = try DecodeWeights.lower(format: format) { try Self.lower(model, $0) } } catch let e as DecodeUnsupported {
            throw ToolkitError("the decode engine does not support this model: \(e.reason)")
        }
        weights = w
        (blocks, finalNorm, head, embedding, positions) = lowered
        scratch = UnsafeMutablePointer<Float>.allocate(capacity: 1)
        reserve(rows: 1)
    }

    deinit { scratch.deallocate() }

    /// Room for `rows` sequences per step (x, norm statistics and logits per row, then the largest
    /// block's scratch).
    private func reserve(rows: Int) {
        guard rows > scratchRows else { return }
        let d = dims
        let count = rows * (2 * d.hiddenSize + d.vocabSize) + (blocks.map { $0.scratchFloats(d.contextLength, rows) }.max() ?? 0)
        scratch.deallocate()
        scratch = UnsafeMutablePointer<Float>.allocate(capacity: count)
        scratch.initialize(repeating: 0, count: count)
        scratchRows = rows
    }

    /// Runs `token` at position `cache.length` (batch 1): stores its keys and values in `cache`,
    /// advances it, and returns the next-token logits (valid until the next call).
    public func step(token: Int32, cache: KVCache) throws -> UnsafeBufferPointer<Float> {
        try step(tokens: [token], caches: [cache])
    }

    /// Runs `tokens[r]` at position `caches[r].length` for every sequence r in one pass over the
    /// weights: stores each row's keys and values in its cache, advances the caches, and returns
    /// the next-token logits `[tokens.count, vocab]` (valid until the next call). The caches must
    /// be distinct, batch-1 caches of this model.
    public func step(tokens: [Int32], caches: [KVCache]) throws -> UnsafeBufferPointer<Float> {
        let d = dims, c = d.hiddenSize, n = tokens.count
        guard !parameters.contains(where: { $0.0.value.storage !== $0.1 }) else {
            throw ToolkitError("decode engine: the model's weights were replaced after the engine was built; build a new one")
        }
        guard n >= 1, caches.count == n else { throw ToolkitError("decode engine: \(n) tokens for \(caches.count) caches") }
        for (r, cache) in caches.enumerated() {
            guard cache.batch == 1, cache.kvHeads == d.kvHeads, cache.headDim == d.headDim, cache.layers == blocks.count else {
                throw ToolkitError("decode engine: the KV cache does not belong to this model (batch \(cache.batch))")
            }
            guard cache.length < cache.capacity, cache.length < d.contextLength else {
                throw ToolkitError("decode engine: position \(cache.length) is beyond the cache (\(cache.capacity)) or the context (\(d.contextLength))")
            }
            guard tokens[r] >= 0, Int(tokens[r]) < d.vocabSize else {
                throw ToolkitError("token id \(tokens[r]) is outside the vocabulary (0..<\(d.vocabSize))")
            }
            guard !caches[..<r].contains(where: { $0 === cache }) else { throw ToolkitError("decode engine: a cache appears twice in one step") }
        }
        reserve(rows: n)
        let rows = DecodeRows(caches: caches)
        let x = scratch, stats = x + n * c, logits = stats + n * c, rest = logits + n * d.vocabSize
        for r in 0..<n {
            let xr = x + r * c
            xr.update(from: embedding + Int(tokens[r]) * c, count: c)
            if model.embeddingScale != 1 { for i in 0..<c { xr[i] *= model.embeddingScale } }
            positions.embed?(xr, rows.positions[r])
        }
        for (layer, b) in blocks.enumerated() { b.run(x, rows, layer, rest) }
        finalNorm.apply(x, x, c, n, stats)
        DecodeKernels.gemv(head, logits, x: x, vectors: n, accumulate: false)
        if let cap = model.finalLogitSoftcap { for i in 0..<(n * d.vocabSize) { logits[i] = Foundation.tanh(logits[i] / cap) * cap } }
        for cache in caches { cache.advance(by: 1) }
        return UnsafeBufferPointer(start: logits, count: n * d.vocabSize)
    }
}
