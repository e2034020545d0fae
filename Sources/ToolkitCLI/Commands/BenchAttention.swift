import ArgumentParser
import Foundation
import TensorCore
import ToolkitSupport

struct BenchAttention: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attention", abstract: "Attention kernel time and peak tensor memory.")

    @Option(help: "Batch size.") var batch = 1
    @Option(help: "Sequence length.") var seq = 1024
    @Option(help: "Query heads.") var heads = 8
    @Option(help: "Key/value heads.") var kvHeads = 8
    @Option(help: "Head dimension.") var headDim = 64
    @Option(help: "naive or tiled.") var kernel = "tiled"
    @Option(help: "Tile size (tiled kernel).") var tile = 64
    @Flag(help: "Include the backward pass.") var backward = false
    @Option(help: "Timed repeats.") var repeats = 3
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        for (name, v) in [("batch", batch), ("seq", seq), ("heads", heads), ("kv-heads", kvHeads),
                          ("head-dim", headDim), ("tile", tile), ("repeats", repeats)] where v < 1 {
            throw ValidationError("--\(name) must be at least 1")
        }
        guard heads % kvHeads == 0 else { throw ValidationError("--kv-heads must divide --heads") }
        guard ["naive", "tiled"].contains(kernel) else { throw ValidationError("--kernel must be naive or tiled") }
    }

    struct Result: Codable {
        var kernel: String, batch: Int, seq: Int, heads: Int, kvHeads: Int, headDim: Int, backward: Bool
        var medianSeconds: Double
        var peakTensorBytes: Int
        var maxRSSBytes: Int
    }

    func run() throws {
        BLASRuntime.setThreads(ProcessInfo.processInfo.activeProcessorCount)
        let k: AttentionKernel = kernel == "naive" ? .naive : .tiled(queryTile: tile, keyTile: tile)
        var rng = SplitMix64(seed: 1)
        let q = Tensor.uniform([batch, seq, heads, headDim], low: -1, high: 1, rng: &rng)
        let kk = Tensor.uniform([batch, seq, kvHeads, headDim], low: -1, high: 1, rng: &rng)
        let v = Tensor.uniform([batch, seq, kvHeads, headDim], low: -1, high: 1, rng: &rng)
        let opts = AttentionOptions(scale: 1 / Float(headDim).squareRoot(), kernel: k)
        var times: [Double] = []
        let base = MemoryStats.currentBytes
        MemoryStats.resetPeak()
        for _ in 0..<repeats {
            let t0 = monotonicSeconds()
            if backward {
                let (ql, kl, vl) = (q.requiringGrad(), kk.requiringGrad(), v.requiringGrad())
                let out = try Tensor.attention(q: ql, k: kl, v: vl, options: opts)
                try out.sum().backward()
            } else {
                _ = try GradMode.withoutGrad { try Tensor.attention(q: q, k: kk, v: v, options: opts) }
            }
            times.append(monotonicSeconds() - t0)
        }
        let r = Result(kernel: kernel, batch: batch, seq: seq, heads: heads, kvHeads: kvHeads, headDim: headDim,
                       backward: backward, medianSeconds: Stats.median(times),
                       peakTensorBytes: MemoryStats.peakBytes - base, maxRSSBytes: peakRSSBytes())
        if json {
            print(try jsonLine(r))
        } else {
            print(String(format: "attention %@ B=%d T=%d H=%d KVH=%d D=%d %@: %.1f ms (median of %d), peak tensor memory %.1f MiB, max RSS %.1f MiB",
                         kernel, batch, seq, heads, kvHeads, headDim, backward ? "fwd+bwd" : "fwd",
                         r.medianSeconds * 1e3, repeats, Double(r.peakTensorBytes) / 1048576, Double(r.maxRSSBytes) / 1048576))
        }
    }
}
