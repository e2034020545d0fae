import Foundation
import Testing
import _TestSupport
@testable import TensorCore

/// Dropout: elementwise and on attention weights. Masks are fixed by their seed, so the
/// finite-difference checks run with a fixed mask (the one `Dropout.keeps` names); expectation
/// checks average over seeds.
@Suite struct DropoutTests {
    /// The float64 reference of `attention` with dropout (causal, optional window): softmax weights
    /// times the mask of row (b·H + h)·T + i over 1 − p.
    static func reference(_ x: [[Double]], b: Int, t: Int, h: Int, kvh: Int, d: Int, scale: Double, window: Int?, p: Float,
                          seed: UInt64) -> [Double] {
        var out = [Double](repeating: 0, count: b * t * h * d)
        let group = h / kvh
        for bi in 0..<b {
            for hi in 0..<h {
                for i in 0..<t {
                    var s = [Double](repeating: -1e300, count: t)
                    for j in 0...i where window.map({ i - j < $0 }) ?? true {
                        var dot = 0.0
                        for e in 0..<d { dot += x[0][((bi * t + i) * h + hi) * d + e] * x[1][((bi * t + j) * kvh + hi / group) * d + e] }
                        s[j] = dot * scale
                    }
                    let w = Reference.softmax(s)
                    let keep = Dropout.keeps(seed: seed, row: UInt64((bi * h + hi) * t + i), count: t, p: p)
                    for e in 0..<d {
                        out[((bi * t + i) * h + hi) * d + e] = (0..<t).reduce(0) {
                            $0 + w[$1] * Double(keep[$1]) / (1 - Double(p)) * x[2][((bi * t + $1) * kvh + hi / group) * d + e]
                        }
                    }
                }
            }
        }
        return out
    }

    @Test(arguments: [AttentionKernel.naive, .tiled(queryTile: 4, keyTile: 4)])
    func attentionGradientCheckWithAFixedMask(kernel: AttentionKernel) throws {
        let (b, t, h, kvh, d) = (2, 6, 2, 1, 3)
        let q = GradCheck.random([b, t, h, d], seed: 31), k = GradCheck.random([b, t, kvh, d], seed: 32)
        let v = GradCheck.random([b, t, kvh, d], seed: 33)
        let (p, seed): (Float, UInt64) = (0.3, 99)
        // Some weights are dropped and some kept (a check that the mask is not trivial here).
        let kept = (0..<b * h * t).flatMap { Dropout.keeps(seed: seed, row: UInt64($0), count: t, p: p) }
        #expect(kept.contains(0) && kept.contains(1))
        let r = try GradCheck.check([q, k, v], op: { x in
            try Tensor.attention(q: x[0], k: x[1], v: x[2], options: AttentionOptions(window: 4, scale: 0.6, kernel: kernel,
                                                                                      dropout: p, dropoutSeed: seed))
        }) { x in Self.reference(x, b: b, t: t, h: h, kvh: kvh, d: d, scale: Double(Float(0.6)), window: 4, p: p, seed: seed) }
        #expect(r.passed, "\(r)")
    }

    /// Both kernels drop the same weights: outputs and gradients agree over tile edges, GQA and windows.
    /// (The naive kernel scales its weights by 1/(1 − p) before the sum, the tiled one after: one more
    /// rounding, inside the attention kernels' tolerance.)
    @Test func tiledEqualsNaiveWithDropout() throws {
        try expectTiledEqualsNaive(cases: [(7, 16, 4, 2, nil, 4), (65, 16, 4, 1, 9, 16), (70, 64, 4, 2, nil, 32)], seed: 41) { kernel, d, window in
            AttentionOptions(window: window, scale: 1 / Float(d).squareRoot(), kernel: kernel, dropout: 0.2, dropoutSeed: 5)
        }
    }

    /// Averaged over seeds, attention with dropout is attention without it: each output element's
    /// mean over n seeds lies within 5 standard errors, the variance of one draw being
    /// Σ_j w_j² v_j² · p/(1 − p) (independent Bernoulli masks).
    @Test func attentionDropoutIsUnbiased() throws {
        let (b, t, h, d, p) = (1, 8, 2, 4, Float(0.25))
        let q = GradCheck.random([b, t, h, d], seed: 51), k = GradCheck.random([b, t, h, d], seed: 52)
        let v = GradCheck.random([b, t, h, d], seed: 53)
        let exact = try Tensor.attention(q: q, k: k, v: v, options: AttentionOptions(scale: 0.5, kernel: .naive)).scalars
        let n = 4000
        var sum = [Double](repeating: 0, count: exact.count)
        for seed in 0..<n {
            let o = try Tensor.attention(q: q, k: k, v: v, options: AttentionOptions(scale: 0.5, dropout: p, dropoutSeed: UInt64(seed)))
            for (i, x) in o.scalars.enumerated() { sum[i] += Double(x) }
        }
        let x = [q, k, v].map { $0.scalars.map(Double.init) }
        let weights = Self.weights(x, t: t, h: h, d: d, scale: 0.5)
        for i in 0..<t {
            for hi in 0..<h {
                for e in 0..<d {
                    let idx = (i * h + hi) * d + e
                    let variance = (0...i).reduce(0.0) { acc, j in
                        let wv = weights[hi][i][j] * x[2][(j * h + hi) * d + e]
                        return acc + wv * wv
                    } * Double(p) / (1 - Double(p))
                    let bound = Tolerance.Statistics.sigmas * (variance / Double(n)).squareRoot() + Tolerance.fewRoundings
                    #expect(abs(sum[idx] / Double(n) - Double(exact[idx])) <= bound, "row \(i) head \(hi) e \(e)")
                }
            }
        }
    }

    /// Causal softmax weights [h][i][j] in float64.
    static func weights(_ x: [[Double]], t: Int, h: Int, d: Int, scale: Double) -> [[[Double]]] {
        (0..<h).map { hi in
            (0..<t).map { i in
                var s = [Double](repeating: -1e300, count: t)
                for j in 0...i {
                    s[j] = (0..<d).reduce(0) { $0 + x[0][(i * h + hi) * d + $1] * x[1][(j * h + hi) * d + $1] } * scale
                }
                return Reference.softmax(s)
            }
        }
    }

    @Test func elementwiseGradientCheckWithAFixedMask() throws {
        let x = GradCheck.random([3, 700], seed: 61)  // crosses a mask row (1024 elements)
        let (p, seed): (Float, UInt64) = (0.4, 7)
        let keep = (0..<3).flatMap { Dropout.keeps(seed: seed, row: UInt64($0), count: 1024, p: p) }
        let r = try GradCheck.check([x], maxCoordinates: 256, op: { try $0[0].dropout(p, seed: seed) }) { v in
            v[0].enumerated().map { $0.element * Double(keep[$0.offset]) / (1 - Double(p)) }
        }
        #expect(r.passed, "\(r)")
        // Beside another use of x, the masked gradient is written into x's gradient or added to it
        // (whichever of the two backward steps runs first): both orders of the sum.
        for dropoutFirst in [true, false] {
            let r2 = try GradCheck.check([x], maxCoordinates: 256, op: { v in
                let (d, h) = (try v[0].dropout(p, seed: seed), v[0] * 0.5)
                return try dropoutFirst ? d + h : h + d
            }) { v in
                v[0].enumerated().map { $0.element * Double(keep[$0.offset]) / (1 - Double(p)) + $0.element * 0.5 }
            }
            #expect(r2.passed, "\(r2)")
        }
    }

    /// The kept fraction and the mean of dropout(1): binomial, within 5 standard deviations.
    @Test func elementwiseExpectation() throws {
        let n = 1 << 20
        for p: Float in [0.1, 0.5] {
            let y = try Tensor.ones([n]).dropout(p, seed: 3).scalars
            let kept = Double(y.filter { $0 != 0 }.count) / Double(n)
            let sdKept = (Double(p) * (1 - Double(p)) / Double(n)).squareRoot()
            #expect(abs(kept - (1 - Double(p))) <= Tolerance.Statistics.sigmas * sdKept, "p \(p): kept \(kept)")
            let mean = y.reduce(0.0) { $0 + Double($1) } / Double(n)
            #expect(abs(mean - 1) <= Tolerance.Statistics.sigmas * sdKept / (1 - Double(p)), "p \(p): mean \(mean)")
            #expect(y.allSatisfy { $0 == 0 || $0 == 1 / (1 - p) })
        }
    }

    /// A seed fixes the mask; another seed, or another row, draws another.
    @Test func masksAreFixedBySeedAndIndependentAcrossRows() throws {
        let a = Dropout.keeps(seed: 1, row: 0, count: 4096, p: 0.5), again = Dropout.keeps(seed: 1, row: 0, count: 4096, p: 0.5)
        #expect(a == again)
        let otherSeed = Dropout.keeps(seed: 2, row: 0, count: 4096, p: 0.5), otherRow = Dropout.keeps(seed: 1, row: 1, count: 4096, p: 0.5)
        // Independent masks agree on about half the entries (5 standard deviations: 160 of 4096).
        for other in [otherSeed, otherRow] {
            let same = zip(a, other).filter { $0 == $1 }.count
            #expect(Double(abs(same - 2048)) < Tolerance.Statistics.sigmas * (4096 * 0.25).squareRoot(), "\(same) of 4096 agree")
        }
        #expect(try Tensor.ones([10]).dropout(0, seed: 1).scalars == [Float](repeating: 1, count: 10))
        #expect(throws: TensorError.self) { try Tensor.ones([10]).dropout(1, seed: 1) }
        #expect(throws: TensorError.self) {
            try Tensor.attention(q: .ones([1, 2, 1, 2]), k: .ones([1, 2, 1, 2]), v: .ones([1, 2, 1, 2]),
                                 options: AttentionOptions(scale: 1, dropout: -0.1))
        }
    }
}
