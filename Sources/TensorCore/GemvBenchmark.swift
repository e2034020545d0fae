import CKernels
import CPlatform
import ToolkitSupport

/// One-thread matrix-vector bandwidth: the decoder's kernel (`tk_gemv_rows`, at the SIMD level in
/// effect, in each weight format) against the BLAS library's single-threaded `sgemv` on the same
/// float32 matrix, interleaved round by round in one process (`toolkit bench gemv`).
public enum GemvBenchmark {
    public struct Result: Codable, Sendable {
        public var rows: Int, cols: Int
        public var rounds: Int
        public var simd: String
        public var blasKernel: String
        /// Median GB/s of weight bytes streamed, per path ("sgemv", "f32", "bf16", "int8").
        public var gbPerSecond: [String: Double]
        /// Each toolkit path's median over sgemv's, per round (then the median of those).
        public var ratioToSgemv: [String: Double]
    }

    public static func run(rows: Int, cols: Int, rounds: Int, minSampleSeconds: Double = 0.05) -> Result {
        var rng = SplitMix64(seed: 3)
        let count = rows * cols
        let w = UnsafeMutablePointer<Float>.allocate(capacity: count)
        let x = UnsafeMutablePointer<Float>.allocate(capacity: cols)
        let y = UnsafeMutablePointer<Float>.allocate(capacity: rows)
        let bf = UnsafeMutablePointer<UInt16>.allocate(capacity: count)
        let q = UnsafeMutablePointer<Int8>.allocate(capacity: count)
        let scales = UnsafeMutablePointer<Float>.allocate(capacity: rows)
        defer { w.deallocate(); x.deallocate(); y.deallocate(); bf.deallocate(); q.deallocate(); scales.deallocate() }
        for i in 0..<count { w[i] = Float(rng.nextUniform() - 0.5) }
        for i in 0..<cols { x[i] = Float(rng.nextUniform() - 0.5) }
        tk_to_bf16(w, count, bf)
        _ = tk_quantize_q8(w, Int32(rows), Int32(cols), q, scales)
        let r = Int32(rows), c = Int32(cols)
        // (path, bytes per weight, matrix; nil: BLAS sgemv on the float32 matrix)
        let mats: [(String, Int, tk_matrix?)] = [
            ("sgemv", 4, nil),
            ("f32", 4, tk_matrix(rows: r, cols: c, format: Int32(TK_W_F32), data: w, scales: nil, bias: nil)),
            ("bf16", 2, tk_matrix(rows: r, cols: c, format: Int32(TK_W_BF16), data: bf, scales: nil, bias: nil)),
            ("int8", 1, tk_matrix(rows: r, cols: c, format: Int32(TK_W_Q8), data: q, scales: scales, bias: nil)),
        ]
        func once(_ m: tk_matrix?) {
            if var mat = m {
                tk_gemv_rows(&mat, x, y, 0, r, 0)
            } else {
                tk_sgemv(0, r, c, 1, w, c, x, 1, 0, y, 1)
            }
        }
        // Loop count per sample from one warm call of each path.
        var inner: [Int] = []
        for i in mats.indices {
            once(mats[i].2)
            let t = monotonicSeconds()
            once(mats[i].2)
            inner.append(max(1, Int((minSampleSeconds / max(monotonicSeconds() - t, 1e-7)).rounded(.up))))
        }
        var gb: [String: [Double]] = [:], ratios: [String: [Double]] = [:]
        for _ in 0..<max(1, rounds) {
            var round: [String: Double] = [:]
            for i in mats.indices {
                let t = monotonicSeconds()
                for _ in 0..<inner[i] { once(mats[i].2) }
                let seconds = (monotonicSeconds() - t) / Double(inner[i])
                round[mats[i].0] = Double(count * mats[i].1) / seconds / 1e9
                gb[mats[i].0, default: []].append(round[mats[i].0]!)
            }
            for (name, _, _) in mats.dropFirst() {
                ratios[name, default: []].append(round[name]! / round["sgemv"]!)
            }
        }
        return Result(
            rows: rows, cols: cols, rounds: max(1, rounds), simd: SIMDLevel.current.rawValue,
            blasKernel: BLASLibrary.kernel, gbPerSecond: gb.mapValues(Stats.median),
            ratioToSgemv: ratios.mapValues(Stats.median))
    }
}
