import COpenBLAS
import Foundation

/// What the running CPU supports, read from CPUID (and XGETBV for OS-enabled vector state).
public struct CPUFeatures: Sendable, Codable, Equatable {
    public var vendor: String
    public var model: String
    public var sse42 = false
    public var avx = false
    public var avx2 = false
    public var fma = false
    public var avx512f = false
    public var avx512bw = false
    public var avx512dq = false
    public var avx512vl = false
    public var avx512cd = false
    public var avx512bf16 = false
    public var avx512vnni = false
    public var amxTile = false
    public var amxBF16 = false

    /// Feature names that are present, in a fixed order.
    public var names: [String] {
        let all: [(String, Bool)] = [
            ("sse4.2", sse42), ("avx", avx), ("avx2", avx2), ("fma", fma), ("avx512f", avx512f),
            ("avx512bw", avx512bw), ("avx512dq", avx512dq), ("avx512vl", avx512vl),
            ("avx512cd", avx512cd), ("avx512_bf16", avx512bf16), ("avx512_vnni", avx512vnni),
            ("amx_tile", amxTile), ("amx_bf16", amxBF16),
        ]
        return all.filter(\.1).map(\.0)
    }

    /// Reads the features of the CPU this process runs on.
    public static func detect() -> CPUFeatures {
        var a: UInt32 = 0, b: UInt32 = 0, c: UInt32 = 0, d: UInt32 = 0
        _ = toolkit_cpuid(0, 0, &a, &b, &c, &d)
        let maxLeaf = a
        let vendor = [b, d, c].map { v in
            String(decoding: withUnsafeBytes(of: v.littleEndian) { Array($0) }, as: UTF8.self)
        }.joined()
        var f = CPUFeatures(vendor: vendor, model: Self.brandString())
        guard maxLeaf >= 1 else { return f }
        _ = toolkit_cpuid(1, 0, &a, &b, &c, &d)
        f.sse42 = c & (1 << 20) != 0
        let osxsave = c & (1 << 27) != 0
        let cpuAVX = c & (1 << 28) != 0
        f.fma = c & (1 << 12) != 0
        var xcr0: UInt64 = 0
        if osxsave { xcr0 = toolkit_xgetbv() }
        let osAVX = xcr0 & 0x6 == 0x6  // XMM and YMM state
        let osAVX512 = xcr0 & 0xE6 == 0xE6  // plus opmask, ZMM_Hi256, Hi16_ZMM
        let osAMX = xcr0 & (0x3 << 17) == (0x3 << 17)  // XTILECFG, XTILEDATA
        f.avx = cpuAVX && osAVX
        f.fma = f.fma && f.avx
        guard maxLeaf >= 7 else { return f }
        _ = toolkit_cpuid(7, 0, &a, &b, &c, &d)
        f.avx2 = f.avx && b & (1 << 5) != 0
        f.avx512f = osAVX512 && b & (1 << 16) != 0
        f.avx512dq = osAVX512 && b & (1 << 17) != 0
        f.avx512cd = osAVX512 && b & (1 << 28) != 0
        f.avx512bw = osAVX512 && b & (1 << 30) != 0
        f.avx512vl = osAVX512 && b & (1 << 31) != 0
        f.avx512vnni = osAVX512 && c & (1 << 11) != 0
        f.amxBF16 = osAMX && d & (1 << 22) != 0
        f.amxTile = osAMX && d & (1 << 24) != 0
        var a1: UInt32 = 0, b1: UInt32 = 0, c1: UInt32 = 0, d1: UInt32 = 0
        if toolkit_cpuid(7, 1, &a1, &b1, &c1, &d1) != 0 {
            f.avx512bf16 = osAVX512 && a1 & (1 << 5) != 0
        }
        return f
    }

    private static func brandString() -> String {
        var a: UInt32 = 0, b: UInt32 = 0, c: UInt32 = 0, d: UInt32 = 0
        _ = toolkit_cpuid(0x8000_0000, 0, &a, &b, &c, &d)
        guard a >= 0x8000_0004 else { return "unknown" }
        var bytes: [UInt8] = []
        for leaf in UInt32(0x8000_0002)...0x8000_0004 {
            _ = toolkit_cpuid(leaf, 0, &a, &b, &c, &d)
            for v in [a, b, c, d] { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        }
        return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
            .trimmingCharacters(in: .whitespaces)
    }
}

/// OpenBLAS kernel selection, verification and thread policy.
///
/// OpenBLAS (DYNAMIC_ARCH) picks its kernel in a load-time constructor from `OPENBLAS_CORETYPE`
/// or its own CPU detection. Debian's 0.3.21 does not recognise recent CPUs and falls back to a
/// generic kernel (~30 GFLOP/s instead of ~200). `ensureKernelSelected` therefore re-executes the
/// process once with the best `OPENBLAS_CORETYPE` for the CPUID features, checks the product of
/// the chosen kernel against a float64 reference, and falls back to the next kernel if it is wrong.
/// A value the user set is respected (and still verified by `toolkit doctor`).
public enum BLASRuntime {
    /// Environment marker: the chain of kernels tried by this process's ancestors.
    static let markerVariable = "TOOLKIT_BLAS_TRIED"

    /// Candidate kernels for this CPU, best first. Empty means: let OpenBLAS decide.
    public static func candidateKernels(for f: CPUFeatures) -> [String] {
        var list: [String] = []
        if f.avx512f && f.avx512bw && f.avx512dq && f.avx512vl && f.avx512cd {
            if f.avx512bf16 { list.append("Cooperlake") }
            list.append("SkylakeX")
        }
        if f.avx2 && f.fma { list.append("Haswell") }
        if f.avx { list.append("SandyBridge") }
        return list
    }

    /// Where the kernel choice came from.
    public enum Source: String, Codable, Sendable {
        case user, toolkit, openblas
    }

    /// How this process's kernel was chosen.
    public static var source: Source {
        let env = ProcessInfo.processInfo.environment
        if env["OPENBLAS_CORETYPE"] == nil { return .openblas }
        return env[markerVariable] == nil ? .user : .toolkit
    }

    /// Call first thing in `main`. May replace the process image (execv) and never returns then.
    public static func ensureKernelSelected(arguments: [String]) {
        let env = ProcessInfo.processInfo.environment
        if let tried = env[markerVariable] {
            // We were re-executed with a candidate: verify it, else move on to the next one.
            let triedList = tried.split(separator: ",").map(String.init)
            // "none" means every candidate failed and OpenBLAS chose by itself: stop here and
            // let `toolkit doctor` report the failed check.
            if triedList.contains("none") || verify().ok { return }
            let remaining = candidateKernels(for: .detect()).filter { !triedList.contains($0) }
            if let next = remaining.first {
                reexec(arguments: arguments, kernel: next, tried: triedList + [next])
            }
            // Nothing left: run without forcing a kernel.
            unsetenv("OPENBLAS_CORETYPE")
            reexec(arguments: arguments, kernel: nil, tried: triedList + ["none"])
            return
        }
        if env["OPENBLAS_CORETYPE"] != nil { return }  // the user's choice
        guard let best = candidateKernels(for: .detect()).first else { return }
        reexec(arguments: arguments, kernel: best, tried: [best])
    }

    /// `OPENBLAS_NUM_THREADS=1` is set on re-execution: the toolkit splits products over cores
    /// itself (`BLAS.gemm`), so OpenBLAS never starts its worker threads, whose idle spinning
    /// (sched_yield for up to ~0.1 s after each call) took a core from our own parallel loops.
    private static func reexec(arguments: [String], kernel: String?, tried: [String]) {
        if let kernel { setenv("OPENBLAS_CORETYPE", kernel, 1) }
        setenv("OPENBLAS_NUM_THREADS", "1", 1)
        setenv(markerVariable, tried.joined(separator: ","), 1)
        var cargs: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        cargs.append(nil)
        execv("/proc/self/exe", cargs)
        // execv failed: continue in this process with whatever kernel is loaded.
        for p in cargs { free(p) }
    }

    /// The kernel OpenBLAS reports (`openblas_get_corename`).
    public static var kernelName: String {
        guard let p = openblas_get_corename() else { return "unknown" }
        return String(cString: p)
    }

    /// OpenBLAS build configuration string.
    public static var configString: String {
        guard let p = openblas_get_config() else { return "unknown" }
        return String(cString: p).trimmingCharacters(in: .whitespaces)
    }

    /// Cores one large product is split over (`BLAS.threads`); OpenBLAS itself runs single-threaded.
    public static var threads: Int { BLAS.threads }

    /// OpenBLAS's own thread count (1 once `BLAS` is first used).
    public static var openblasThreads: Int { Int(openblas_get_num_threads()) }

    /// Sets how many cores one product is split over (at start-up).
    public static func setThreads(_ n: Int) {
        BLAS.threads = max(1, n)
        openblas_set_num_threads(1)
    }

    /// Multiplies odd-sized random matrices in every transpose combination and compares with a
    /// float64 reference. Returns the worst relative error (max |Δ| / max |reference|).
    /// `thorough` (doctor, tests) adds two larger shapes that `BLAS.gemm` splits over cores, by
    /// rows and by columns, so the blocks' offsets are checked too; the start-up check stays small.
    public static func verify(thorough: Bool = false) -> (ok: Bool, maxRelativeError: Double) {
        var rng = SplitMix64(seed: 0x5EED)
        var worst = 0.0
        let shapes = thorough ? [(67, 45, 129), (301, 45, 257), (37, 290, 301)] : [(67, 45, 129)]
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
