import CPlatform

/// What the running CPU supports (x86-64 CPUID with the OS-enabled register state, or aarch64
/// hardware capabilities), read once by the platform seam.
public struct CPUFeatures: Sendable, Codable, Equatable {
    public var architecture: String
    public var vendor: String
    public var model: String
    public var sse42 = false
    public var pclmul = false
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
    public var neon = false
    public var dotProduct = false
    public var sve = false
    public var armBF16 = false

    /// Feature names that are present, in a fixed order.
    public var names: [String] {
        let all: [(String, Bool)] = [
            ("sse4.2", sse42), ("pclmul", pclmul), ("avx", avx), ("avx2", avx2), ("fma", fma), ("avx512f", avx512f),
            ("avx512bw", avx512bw), ("avx512dq", avx512dq), ("avx512vl", avx512vl),
            ("avx512cd", avx512cd), ("avx512_bf16", avx512bf16), ("avx512_vnni", avx512vnni),
            ("amx_tile", amxTile), ("amx_bf16", amxBF16), ("neon", neon), ("asimddp", dotProduct), ("sve", sve),
            ("bf16", armBF16),
        ]
        return all.filter(\.1).map(\.0)
    }

    /// The features of the CPU this process runs on.
    public static func detect() -> CPUFeatures {
        let c = tk_cpu()!.pointee
        func text<T>(_ t: T) -> String {
            withUnsafeBytes(of: t) { raw in String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self) }
        }
        var f = CPUFeatures(architecture: text(c.arch), vendor: text(c.vendor), model: text(c.model))
        f.sse42 = c.sse42 != 0
        f.pclmul = c.pclmul != 0
        f.avx = c.avx != 0
        f.avx2 = c.avx2 != 0
        f.fma = c.fma != 0
        f.avx512f = c.avx512f != 0
        f.avx512bw = c.avx512bw != 0
        f.avx512dq = c.avx512dq != 0
        f.avx512vl = c.avx512vl != 0
        f.avx512cd = c.avx512cd != 0
        f.avx512bf16 = c.avx512bf16 != 0
        f.avx512vnni = c.avx512vnni != 0
        f.amxTile = c.amx_tile != 0
        f.amxBF16 = c.amx_bf16 != 0
        f.neon = c.neon != 0
        f.dotProduct = c.asimddp != 0
        f.sve = c.sve != 0
        f.armBF16 = c.arm_bf16 != 0
        return f
    }
}

/// The instruction-set level the C kernels dispatch on. Each kernel is compiled once per level;
/// `TOOLKIT_SIMD` lowers the level so that every path can be tested on one
/// machine.
public enum SIMDLevel: String, Sendable, Codable, CaseIterable, Comparable {
    case portable, avx2, avx512, neon

    var raw: Int32 {
        switch self {
        case .portable: Int32(TK_SIMD_PORTABLE)
        case .avx2: Int32(TK_SIMD_AVX2)
        case .avx512: Int32(TK_SIMD_AVX512)
        case .neon: Int32(TK_SIMD_NEON)
        }
    }

    init?(raw: Int32) {
        guard let p = tk_simd_name(raw), let l = SIMDLevel(rawValue: String(cString: p)) else { return nil }
        self = l
    }

    public static func < (a: SIMDLevel, b: SIMDLevel) -> Bool { a.raw < b.raw }

    /// The level in effect.
    public static var current: SIMDLevel { SIMDLevel(raw: tk_simd_level()) ?? .portable }
    /// The best level this CPU supports.
    public static var best: SIMDLevel { SIMDLevel(raw: tk_simd_best()) ?? .portable }
    /// Every level this CPU can run, lowest first.
    public static var supported: [SIMDLevel] { allCases.filter { tk_simd_supported($0.raw) != 0 } }
    /// Why `TOOLKIT_SIMD` was not applied, or nil.
    public static var environmentError: String? { tk_simd_env_error().map { String(cString: $0) } }
}
