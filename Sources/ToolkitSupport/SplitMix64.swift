import Foundation

/// SplitMix64: a tiny, fast, seedable generator with the same output on every machine.
///
/// Floats are derived from the top 24 bits (uniform) and Box–Muller (normal), so a seed fixes
/// every initialisation and sample bit for bit.
public struct SplitMix64: RandomNumberGenerator, Sendable, Codable, Equatable {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 bits of precision.
    public mutating func nextUniform() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    /// Standard normal (Box–Muller; one draw per call, deterministic).
    public mutating func nextNormal() -> Double {
        var u1 = nextUniform()
        if u1 < 1e-300 { u1 = 1e-300 }
        let u2 = nextUniform()
        return (-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2)
    }

    /// Uniform integer in 0..<n.
    public mutating func nextInt(below n: Int) -> Int {
        precondition(n > 0)
        return Int(next() % UInt64(n))
    }
}
