import CPlatform
import Foundation
import Platform
import Testing
import _TestSupport

@Suite struct PlatformTests {
    private func candidates(_ f: tk_cpu_info, _ level: Int32) -> [String] {
        var f = f
        var out = [UnsafePointer<CChar>?](repeating: nil, count: 4)
        let n = Int(tk_blas_candidates_for(&f, level, &out))
        return (0..<n).map { String(cString: out[$0]!) }
    }

    private func cpu(_ arch: String) -> tk_cpu_info {
        var f = tk_cpu_info()
        withUnsafeMutableBytes(of: &f.arch) { raw in
            for (i, b) in arch.utf8.enumerated() { raw[i] = b }
        }
        return f
    }

    @Test func blasCandidatesFollowFeaturesAndLevel() {
        var f = cpu("x86_64")
        #expect(candidates(f, Int32(TK_SIMD_PORTABLE)).isEmpty)
        f.avx = 1
        #expect(candidates(f, Int32(TK_SIMD_PORTABLE)) == ["SandyBridge"])
        #expect(candidates(f, Int32(TK_SIMD_AVX2)) == ["Haswell", "SandyBridge"])
        #expect(candidates(f, Int32(TK_SIMD_AVX512)) == ["SkylakeX", "Haswell", "SandyBridge"])
        f.avx512bf16 = 1
        #expect(candidates(f, Int32(TK_SIMD_AVX512)).first == "Cooperlake")
        #expect(candidates(cpu("aarch64"), Int32(TK_SIMD_NEON)).isEmpty)
    }

    @Test func startupSelectionIsConsistent() {
        // The constructor checked the kernel in use against float64 before main.
        #expect(BLASLibrary.startupError < Tolerance.GEMM.startupCheckRelative, "\(BLASLibrary.kernel): \(BLASLibrary.startupError)")
        #expect(BLASLibrary.threads == 1)
        if BLASLibrary.source == .toolkit {
            // OpenBLAS spells some names differently from the OPENBLAS_CORETYPE value ("Sandybridge").
            let kernel = BLASLibrary.kernel.lowercased()
            #expect(BLASLibrary.tried.last?.lowercased() == kernel)
            #expect(BLASLibrary.candidates.map { $0.lowercased() }.contains(kernel))
            // Nothing better than the level allows: an AVX2 run uses an AVX2 kernel.
            if SIMDLevel.current == .avx2 { #expect(kernel == "haswell") }
        }
    }

    @Test func simdLevelFollowsTheEnvironment() throws {
        let level = SIMDLevel.current
        #expect(SIMDLevel.supported.contains(level))
        #expect(SIMDLevel.supported.contains(.portable))
        #expect(level <= SIMDLevel.best)
        #expect(SIMDLevel.environmentError == nil)
        if let env = ProcessInfo.processInfo.environment["TOOLKIT_SIMD"], !env.isEmpty {
            #expect(level.rawValue == env)
        } else {
            #expect(level == SIMDLevel.best)
        }
        for l in SIMDLevel.allCases {
            #expect(tk_simd_parse(l.rawValue) >= 0)
            #expect(String(cString: tk_simd_name(tk_simd_parse(l.rawValue))) == l.rawValue)
        }
        #expect(tk_simd_parse("sse9") == -1)
    }

    @Test func featuresMatchTheBuild() {
        let f = CPUFeatures.detect()
        #if arch(x86_64)
        #expect(f.architecture == "x86_64")
        #expect(!f.vendor.isEmpty)
        // Every x86-64 level the toolkit dispatches on implies the features it was compiled for.
        if SIMDLevel.supported.contains(.avx2) { #expect(f.avx2 && f.fma) }
        if SIMDLevel.supported.contains(.avx512) { #expect(f.avx512f && f.avx512bw && f.avx512vl) }
        #elseif arch(arm64)
        #expect(f.architecture == "aarch64")
        #expect(f.neon)
        #endif
        #expect(SystemPolicy.availableCores >= 1)
    }
}
