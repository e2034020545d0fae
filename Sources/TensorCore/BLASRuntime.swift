@_exported import Platform
import Foundation

/// The BLAS kernel in use and the toolkit's thread policy for it.
///
/// The kernel is chosen by the platform seam before `main` runs (`BLASLibrary`, `tk_platform.h`):
/// a constructor re-selects OpenBLAS's kernel for the CPU features and the SIMD level in effect,
/// checks a product against float64 and falls back to the next kernel when it is wrong. This type
/// adds the check of the toolkit's own split products (`verify()`).
public enum BLASRuntime {
    /// Candidate kernels for this CPU and SIMD level, best first.
    public static var candidateKernels: [String] { BLASLibrary.candidates }

    /// How this process's kernel was chosen.
    public static var source: BLASLibrary.Source { BLASLibrary.source }

    /// The kernel the library reports.
    public static var kernelName: String { BLASLibrary.kernel }

    /// The library's build configuration string.
    public static var configString: String { BLASLibrary.configuration }

    /// Cores one large product is split over (`BLAS.threads`); OpenBLAS itself runs single-threaded.
    public static var threads: Int { BLAS.threads }

    /// The library's own thread count (1 once `BLAS` is first used).
    public static var openblasThreads: Int { BLASLibrary.threads }

    /// Sets how many cores one product is split over (at start-up).
    public static func setThreads(_ n: Int) {
        BLAS.threads = max(1, n)
        BLASLibrary.threads = 1
    }

    /// Multiplies odd-sized random matrices in every transpose combination through `BLAS.gemm`
    /// and compares with a float64 reference (doctor, tests). Returns the worst relative error
    /// (max |Δ| / max |reference|). Two of the shapes are large enough for `BLAS.gemm` to split
    /// over cores, by rows and by columns, so the blocks' offsets are checked too; the library's
    /// own kernel was already checked at start-up (`BLASLibrary.startupError`).
    public static func verify() -> (ok: Bool, maxRelativeError: Double) {
        var rng = SplitMix64(seed: 0x5EED)
        var worst = 0.0
        let shapes = [(67, 45, 129), (301, 45, 257), (37, 290, 301)]
        for (m, n, k) in shapes {
            let a = (0..<(m * k)).map { _ in Float(rng.nextUniform() * 2 - 1) }
            let b = (0..<(k * n)).map { _ in Float(rng.nextUniform() * 2 - 1) }
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                worst = max(worst, relativeError(m: m, n: n, k: k, a: a, transA: ta, b: b, transB: tb))
            }
        }
        return (worst < 1e-5 && worst.isFinite, worst)
    }

    /// max |BLAS.gemm − float64 reference| / max |reference| for one shape and transpose pair
    /// (`a` is stored [m,k], or [k,m] when transposed, and likewise `b`).
    private static func relativeError(m: Int, n: Int, k: Int, a: [Float], transA ta: Bool, b: [Float], transB tb: Bool) -> Double {
        var c = [Float](repeating: 0, count: m * n)
        BLAS.gemm(
            transA: ta, transB: tb, m: m, n: n, k: k, alpha: 1, a: a, lda: ta ? m : k,
            b: b, ldb: tb ? k : n, beta: 0, c: &c, ldc: n)
        var maxRef = 0.0, maxDiff = 0.0
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0
                for p in 0..<k {
                    let av = ta ? a[p * m + i] : a[i * k + p]
                    let bv = tb ? b[j * k + p] : b[p * n + j]
                    s += Double(av) * Double(bv)
                }
                maxRef = max(maxRef, abs(s))
                maxDiff = max(maxDiff, abs(s - Double(c[i * n + j])))
            }
        }
        return maxDiff / max(maxRef, 1e-30)
    }
}
