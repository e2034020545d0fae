import Foundation

/// ALiBi head slopes (Press et al., 2022; `x-transformers` `AlibiPositionalBias._get_slopes`).
///
/// ```
/// slopes_pow2(n) = [2^(−8(i+1)/n) for i in 0..<n]
/// H a power of two: slopes_pow2(H)
/// else: c = 2^⌊log2 H⌋; slopes_pow2(c) + slopes_pow2(2c)[0::2][:H−c]
/// ```
public enum ALiBi {
    public static func slopes(heads: Int) -> [Float] {
        func pow2(_ n: Int) -> [Double] {
            let start = Foundation.pow(2.0, -8.0 / Double(n))
            return (0..<n).map { Foundation.pow(start, Double($0 + 1)) }
        }
        guard heads > 0 else { return [] }
        let c = 1 << Int(Foundation.log2(Double(heads)).rounded(.down))
        if c == heads { return pow2(heads).map(Float.init) }
        let extra = stride(from: 0, to: 2 * c, by: 2).map { pow2(2 * c)[$0] }.prefix(heads - c)
        return (pow2(c) + extra).map(Float.init)
    }
}
