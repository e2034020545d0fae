import Foundation
import Testing
import _TestSupport
@testable import TensorCore

private func rnd(_ shape: [Int], _ seed: UInt64, _ lo: Float = -1, _ hi: Float = 1) -> Tensor {
    GradCheck.random(shape, seed: seed, low: lo, high: hi)
}

private func expectPass(_ r: GradCheck.Report, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(r.passed, "\(r)", sourceLocation: sourceLocation)
}

/// Finite-difference gradient checks (float64 reference) for every differentiable op.
@Suite struct GradientTests {
    // Shapes for broadcasting: same shape, trailing vector, middle singleton, scalar, odd sizes.
    static let broadcastCases: [([Int], [Int])] = [
        ([3, 4], [3, 4]), ([2, 3, 5], [5]), ([2, 1, 5], [3, 1]), ([7], [1]), ([1], [4, 3]), ([3, 1], [1, 6]),
    ]

    @Test(arguments: broadcastCases)
    func binaryOps(a: [Int], b: [Int]) throws {
        let x = rnd(a, 1), y = rnd(b, 2, 0.5, 1.5)
        let ops: [(String, (Tensor, Tensor) throws -> Tensor, (Double, Double) -> Double)] = [
            ("+", { try $0 + $1 }, { $0 + $1 }), ("-", { try $0 - $1 }, { $0 - $1 }),
            ("*", { try $0 * $1 }, { $0 * $1 }), ("/", { try $0 / $1 }, { $0 / $1 }),
        ]
        for (name, op, f) in ops {
            let r = try GradCheck.check([x, y], op: { try op($0[0], $0[1]) }) { v in
                Reference.broadcast(v[0], a, v[1], b, f)
            }
            #expect(r.passed, "\(name) \(a) \(b): \(r)")
        }
    }

    @Test(arguments: [[5], [3, 7], [2, 3, 4]])
    func unaryOps(shape: [Int]) throws {
        let x = rnd(shape, 3), pos = rnd(shape, 4, 0.2, 2)
        let cases: [(String, Tensor, (Tensor) -> Tensor, (Double) -> Double)] = [
            ("neg", x, { -$0 }, { -$0 }),
            ("add scalar", x, { $0 + 0.5 }, { $0 + 0.5 }),
            ("mul scalar", x, { $0 * 1.7 }, { $0 * Double(Float(1.7)) }),
            ("exp", x, { $0.exp() }, { exp($0) }),
            ("log", pos, { $0.log() }, { log($0) }),
            ("sqrt", pos, { $0.sqrt() }, { $0.squareRoot() }),
            ("square", x, { $0.square() }, { $0 * $0 }),
            ("tanh", x, { $0.tanh() }, { tanh($0) }),
            ("sigmoid", x, { $0.sigmoid() }, { 1 / (1 + exp(-$0)) }),
            ("relu", pos - 1.05, { $0.relu() }, { max($0, 0) }),
            ("clamped", x * 3, { $0.clamped(min: -1, max: 1.2) }, { min(max($0, -1), Double(Float(1.2))) }),
            ("pow", pos, { $0.pow(1.5) }, { pow($0, 1.5) }),
            ("gelu tanh", x * 3, { $0.gelu(.tanh) }, Reference.geluTanh),
            ("gelu exact", x * 3, { $0.gelu(.exact) }, Reference.geluExact),
            ("silu", x * 3, { $0.silu() }, Reference.silu),
        ]
        for (name, input, op, f) in cases {
            let r = try GradCheck.check([input], op: { op($0[0]) }) { $0[0].map(f) }
            #expect(r.passed, "\(name) \(shape): \(r)")
        }
    }

    @Test(arguments: [([2, 3, 4], [0]), ([2, 3, 4], [1]), ([2, 3, 4], [2]), ([2, 3, 4], [0, 2]), ([5, 17], [1]), ([9], [0])])
    func reductions(shape: [Int], axes: [Int]) throws {
        let x = rnd(shape, 5)
        let set = Set(axes)
        let n = Double(axes.reduce(1) { $0 * shape[$1] })
        for keep in [false, true] {
            expectPass(try GradCheck.check([x], op: { try $0[0].sum(axes: axes, keepDims: keep) }) {
                Reference.reduce($0[0], shape, axes: set, initial: 0, +)
            })
            expectPass(try GradCheck.check([x], op: { try $0[0].mean(axes: axes, keepDims: keep) }) {
                Reference.reduce($0[0], shape, axes: set, initial: 0, +).map { $0 / n }
            })
            expectPass(try GradCheck.check([x], op: { try $0[0].max(axes: axes, keepDims: keep) }) {
                Reference.reduce($0[0], shape, axes: set, initial: -.infinity, max)
            })
        }
        expectPass(try GradCheck.check([x], op: { $0[0].sum() }) { [$0[0].reduce(0, +)] })
        expectPass(try GradCheck.check([x], op: { $0[0].mean() }) { [$0[0].reduce(0, +) / Double(x.count)] })
    }

    @Test func shapeOps() throws {
        let x = rnd([2, 3, 4], 6)
        expectPass(try GradCheck.check([x], op: { try $0[0].reshaped([4, -1]).square() }) { $0[0].map { $0 * $0 } })
        for perm in [[0, 2, 1], [2, 0, 1], [1, 2, 0]] {
            let shape = [2, 3, 4]
            let outShape = perm.map { shape[$0] }
            expectPass(try GradCheck.check([x], op: { try $0[0].permuted(perm) }) { v in
                (0..<24).map { o in
                    let oi = Reference.unravel(o, outShape)
                    var ii = [0, 0, 0]
                    for d in 0..<3 { ii[perm[d]] = oi[d] }
                    return v[0][ii[0] * 12 + ii[1] * 4 + ii[2]]
                }
            })
        }
        expectPass(try GradCheck.check([x], op: { try $0[0].transposed(0, 2) }) { v in
            (0..<24).map { o in let i = Reference.unravel(o, [4, 3, 2]); return v[0][i[2] * 12 + i[1] * 4 + i[0]] }
        })
        expectPass(try GradCheck.check([x], op: { try $0[0].slice(axis: 1, 1..<3) }) { v in
            (0..<16).map { o in let i = Reference.unravel(o, [2, 2, 4]); return v[0][i[0] * 12 + (i[1] + 1) * 4 + i[2]] }
        })
        let y = rnd([2, 5, 4], 7)
        let concatRef: ([[Double]]) -> [Double] = { v in
            var out: [Double] = []
            for b in 0..<2 {
                out += v[0][(b * 12)..<(b * 12 + 12)]
                out += v[1][(b * 20)..<(b * 20 + 20)]
            }
            return out
        }
        expectPass(try GradCheck.check([x, y], op: { try Tensor.concat([$0[0], $0[1]], axis: 1) }, reference: concatRef))
        let splitRef: ([[Double]]) -> [Double] = { v in
            var out: [Double] = []
            for r in 0..<6 {
                out += v[0][(r * 4 + 1)..<(r * 4 + 4)].map { $0 * 2 }
                out.append(v[0][r * 4])
            }
            return out
        }
        let splitOp: ([Tensor]) throws -> Tensor = { t in
            let parts = try t[0].split(axis: 2, sizes: [1, 3])
            return try Tensor.concat([parts[1] * 2, parts[0]], axis: 2)
        }
        expectPass(try GradCheck.check([x], op: splitOp, reference: splitRef))
    }

    // (batchA, batchB, m, n, k): equal batches, shared 2-D B, shared 2-D A, odd sizes.
    static let matmulCases: [([Int], [Int], Int, Int, Int)] = [
        ([], [], 3, 5, 4), ([2], [2], 3, 2, 5), ([2, 3], [], 4, 3, 5), ([], [3], 2, 3, 7), ([1], [1], 1, 1, 1),
    ]

    @Test(arguments: matmulCases)
    func matmul(batchA: [Int], batchB: [Int], m: Int, n: Int, k: Int) throws {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let sa = batchA + (ta ? [k, m] : [m, k]), sb = batchB + (tb ? [n, k] : [k, n])
            let a = rnd(sa, 8), b = rnd(sb, 9)
            let batches = max(batchA.reduce(1, *), batchB.reduce(1, *))
            let r = try GradCheck.check([a, b], op: { try $0[0].matmul($0[1], transposeA: ta, transposeB: tb) }) { v in
                (0..<batches).flatMap { i in
                    let ai = batchA.isEmpty ? v[0] : Array(v[0][(i * m * k)..<((i + 1) * m * k)])
                    let bi = batchB.isEmpty ? v[1] : Array(v[1][(i * k * n)..<((i + 1) * k * n)])
                    return Reference.matmul(ai, bi, m: m, n: n, k: k, ta: ta, tb: tb)
                }
            }
            #expect(r.passed, "ta \(ta) tb \(tb) \(sa) \(sb): \(r)")
        }
    }

    @Test(arguments: [true, false])
    func linear(withBias: Bool) throws {
        let x = rnd([2, 3, 5], 10), w = rnd([4, 5], 11), b = rnd([4], 12)
        let inputs = withBias ? [x, w, b] : [x, w]
        expectPass(try GradCheck.check(inputs, op: { t in
            try Tensor.linear(t[0], weight: t[1], bias: t.count > 2 ? t[2] : nil)
        }) { v in
            let y = Reference.matmul(v[0], v[1], m: 6, n: 4, k: 5, ta: false, tb: true)
            return withBias ? y.enumerated().map { $0.element + v[2][$0.offset % 4] } : y
        })
    }

    @Test func embeddingScatterAddsRepeatedIds() throws {
        let w = rnd([6, 3], 13)
        let ids: [Int32] = [1, 4, 1, 0, 5, 1]
        expectPass(try GradCheck.check([w], op: { try Tensor.embedding($0[0], ids: ids, shape: [2, 3]) }) { v in
            ids.flatMap { Array(v[0][(Int($0) * 3)..<(Int($0) * 3 + 3)]) }
        })
        #expect(throws: TensorError.self) { try Tensor.embedding(w, ids: [6], shape: [1]) }
    }

    @Test(arguments: [[4, 7], [2, 3, 16], [1, 33]])
    func softmaxAndLogSoftmax(shape: [Int]) throws {
        let x = rnd(shape, 14, -3, 3)
        let c = shape.last!
        expectPass(try GradCheck.check([x], op: { $0[0].softmax() }) { Reference.rows($0[0], c, Reference.softmax) })
        expectPass(try GradCheck.check([x], op: { $0[0].logSoftmax() }) { v in
            Reference.rows(v[0], c) { r in let l = Reference.logSumExp(r); return r.map { $0 - l } }
        })
    }

    @Test func crossEntropyWithIgnoreIndex() throws {
        let logits = rnd([2, 3, 11], 15, -3, 3)
        let targets: [Int32] = [3, -100, 0, 10, 7, -100]
        expectPass(try GradCheck.check([logits], op: { try Tensor.crossEntropy(logits: $0[0], targets: targets) }) { v in
            var total = 0.0, n = 0.0
            for (row, t) in targets.enumerated() where t != -100 {
                let r = Array(v[0][(row * 11)..<(row * 11 + 11)])
                total += Reference.logSumExp(r) - r[Int(t)]
                n += 1
            }
            return [total / n]
        })
        #expect(throws: TensorError.self) { try Tensor.crossEntropy(logits: logits, targets: [1, 2]) }
        #expect(throws: TensorError.self) { try Tensor.crossEntropy(logits: logits, targets: [11, 0, 0, 0, 0, 0]) }
    }

    @Test(arguments: [(true, true), (true, false), (false, false)])
    func layerNorm(weight: Bool, bias: Bool) throws {
        let c = 7
        let x = rnd([3, 2, c], 16, -2, 2), w = rnd([c], 17, 0.5, 1.5), b = rnd([c], 18)
        var inputs = [x]
        if weight { inputs.append(w) }
        if bias { inputs.append(b) }
        expectPass(try GradCheck.check(inputs, op: { t in
            try Tensor.layerNorm(t[0], weight: weight ? t[1] : nil, bias: bias ? t[2] : nil, eps: 1e-5)
        }) { v in
            Reference.rows(v[0], c) { r in
                let mu = r.reduce(0, +) / Double(c)
                let variance = r.reduce(0) { $0 + ($1 - mu) * ($1 - mu) } / Double(c)
                return r.enumerated().map { j, xv in
                    var n = (xv - mu) / (variance + Double(Float(1e-5))).squareRoot()
                    if weight { n *= v[1][j] }
                    if bias { n += v[2][j] }
                    return n
                }
            }
        })
    }

    @Test(arguments: [true, false])
    func rmsNorm(weight: Bool) throws {
        let c = 9
        let x = rnd([4, c], 19, -2, 2), w = rnd([c], 20, 0.5, 1.5)
        expectPass(try GradCheck.check(weight ? [x, w] : [x], op: { t in
            try Tensor.rmsNorm(t[0], weight: weight ? t[1] : nil, eps: 1e-6)
        }) { v in
            Reference.rows(v[0], c) { r in
                let rstd = 1 / (r.reduce(0) { $0 + $1 * $1 } / Double(c) + Double(Float(1e-6))).squareRoot()
                return r.enumerated().map { j, xv in xv * rstd * (weight ? v[1][j] : 1) }
            }
        })
    }

    @Test func swiglu() throws {
        let g = rnd([3, 5], 21, -3, 3), u = rnd([3, 5], 22)
        expectPass(try GradCheck.check([g, u], op: { try Tensor.swiglu(gate: $0[0], up: $0[1]) }) { v in
            zip(v[0], v[1]).map { Reference.silu($0) * $1 }
        })
        // One tensor as both inputs: its new gradient buffer is written by one half and added into by the other.
        expectPass(try GradCheck.check([g], op: { try Tensor.swiglu(gate: $0[0], up: $0[0]) }) { v in v[0].map { Reference.silu($0) * $0 } })
    }
}

@Suite struct IndexingAndRoPEGradientTests {
    @Test(arguments: RoPELayout.allCases)
    func rope(layout: RoPELayout) throws {
        let (b, t, h, d, half, offset) = (2, 3, 2, 6, 2, 1)  // partial rotary: 4 of 6 dims
        let x = GradCheck.random([b, t, h, d], seed: 30)
        let angles = (0..<(5 * half)).map { Float($0) * 0.37 }
        let cosT = try Tensor(shape: [5, half], values: angles.map { cos($0) * 1.1 })
        let sinT = try Tensor(shape: [5, half], values: angles.map { sin($0) * 1.1 })
        let r = try GradCheck.check([x], op: { try Tensor.rope($0[0], cos: cosT, sin: sinT, offset: offset, layout: layout) }) { v in
            var out = v[0]
            for row in 0..<(b * t) {
                let pos = offset + row % t
                for hh in 0..<h {
                    let base = (row * h + hh) * d
                    for i in 0..<half {
                        let (ia, ib) = layout == .interleaved ? (2 * i, 2 * i + 1) : (i, i + half)
                        let c = Double(cosT.scalars[pos * half + i]), s = Double(sinT.scalars[pos * half + i])
                        out[base + ia] = v[0][base + ia] * c - v[0][base + ib] * s
                        out[base + ib] = v[0][base + ib] * c + v[0][base + ia] * s
                    }
                }
            }
            return out
        }
        #expect(r.passed, "\(r)")
    }

    @Test func gatherAndScatterRows() throws {
        let x = GradCheck.random([4, 3], seed: 31)
        let idx: [Int32] = [2, 0, 2]
        let g = try GradCheck.check([x], op: { try $0[0].gatherRows(idx) }) { v in idx.flatMap { Array(v[0][(Int($0) * 3)..<(Int($0) * 3 + 3)]) } }
        #expect(g.passed, "\(g)")
        let vals = GradCheck.random([3, 3], seed: 32)
        let s = try GradCheck.check([vals], op: { try Tensor.scatterAddRows($0[0], indices: idx, rows: 4) }) { v in
            var out = [Double](repeating: 0, count: 12)
            for (i, r) in idx.enumerated() { for j in 0..<3 { out[Int(r) * 3 + j] += v[0][i * 3 + j] } }
            return out
        }
        #expect(s.passed, "\(s)")
    }
}

/// Backward kernels write a gradient buffer that is new (never zero-filled: it may hold an old
/// tensor's values) and add into one that already holds a gradient; identity-gradient ops (a
/// reshape, either side of a sum) hand dOut's buffer on. Each op applied twice to the same inputs
/// must give exactly twice the gradient of one application (the two backward passes compute the
/// same values, so 2g is exact), with the buffer pool primed with NaN-filled buffers so that a
/// kernel adding into a new buffer shows.
@Suite struct GradientBufferReuseTests {
    /// Returns NaN-filled buffers of these element counts to the pool (each count a few times).
    static func primePool(_ counts: [Int]) {
        var held: [TensorStorage] = []
        for n in counts { for _ in 0..<4 { let s = TensorStorage(count: n, zeroed: false); s.pointer.initialize(repeating: .nan, count: n); held.append(s) } }
        held.removeAll()
    }

    static func weightedSum(_ y: Tensor) throws -> Tensor {
        let w = GradCheck.random(y.shape, seed: 99)
        return try (y * w).sum()
    }

    @Test func backwardWritesNewAndAddsIntoExistingGradients() throws {
        let x = GradCheck.random([4, 2, 6], seed: 40), y = GradCheck.random([4, 2, 6], seed: 41, low: 0.5, high: 1.5)
        let w = GradCheck.random([6], seed: 42, low: 0.5, high: 1.5)
        let angles = (0..<12).map { Float($0) * 0.37 }
        let cosT = try Tensor(shape: [4, 3], values: angles.map { cos($0) }), sinT = try Tensor(shape: [4, 3], values: angles.map { sin($0) })
        let targets: [Int32] = [3, -100, 0, 5, 1, -100, 2, 4]
        // Weight gradients of norms are sums over rows added into the buffer one row at a time, so
        // two applications round differently from one doubled: only the other inputs compare exactly.
        let cases: [(String, [Tensor], ([Tensor]) throws -> Tensor)] = [
            ("+", [x, y], { try Self.weightedSum($0[0] + $0[1]) }), ("-", [x, y], { try Self.weightedSum($0[0] - $0[1]) }),
            ("*", [x, y], { try Self.weightedSum($0[0] * $0[1]) }), ("/", [x, y], { try Self.weightedSum($0[0] / $0[1]) }),
            ("x + x", [x], { try Self.weightedSum($0[0] + $0[0]) }), ("x - x", [x], { try Self.weightedSum($0[0] - $0[0]) }),
            ("reshape", [x], { try Self.weightedSum($0[0].reshaped([8, 6])) }),
            ("exp", [x], { try Self.weightedSum($0[0].exp()) }), ("x * 1.7", [x], { try Self.weightedSum($0[0] * 1.7) }),
            ("rmsNorm", [x, w], { try Self.weightedSum(Tensor.rmsNorm($0[0], weight: $0[1], eps: 1e-6)) }),
            ("layerNorm", [x, w], { try Self.weightedSum(Tensor.layerNorm($0[0], weight: $0[1], bias: nil, eps: 1e-5)) }),
            ("gelu tanh", [x], { try Self.weightedSum($0[0].gelu(.tanh)) }), ("silu", [x], { try Self.weightedSum($0[0].silu()) }),
            ("swiglu", [x, y], { try Self.weightedSum(Tensor.swiglu(gate: $0[0], up: $0[1])) }),
            ("rope", [x], { try Self.weightedSum(Tensor.rope($0[0].reshaped([1, 4, 2, 6]), cos: cosT, sin: sinT, offset: 0, layout: .half)) }),
            ("crossEntropy", [x], { try Tensor.crossEntropy(logits: $0[0].reshaped([8, 6]), targets: targets) }),
            ("checkpointed", [x, w], { t in try Self.weightedSum(Tensor.checkpointed(t[0], parameters: [t[1]]) { try Tensor.rmsNorm($0, weight: t[1], eps: 1e-6) + $0 }) }),
        ]
        for (name, inputs, op) in cases {
            func gradients(applications: Int) throws -> [[Float]] {
                Self.primePool([x.count, w.count, 1])
                let leaves = inputs.map { $0.detached().requiringGrad() }
                var loss = try op(leaves)
                for _ in 1..<applications { loss = try loss + op(leaves) }
                try loss.backward()
                return leaves.map { $0.grad!.scalars }
            }
            let once = try gradients(applications: 1), twice = try gradients(applications: 2)
            for (i, (a, b)) in zip(once, twice).enumerated() where !(name == "rmsNorm" || name == "layerNorm" || name == "checkpointed") || i == 0 {
                #expect(a.allSatisfy(\.isFinite) && zip(a, b).allSatisfy { 2 * $0 == $1 }, "\(name) input \(i): \(a) vs \(b)")
            }
        }
    }
}

/// Bias and norm-weight gradients sum fixed 256-row blocks in parallel, then the partial rows in
/// order (`Kernels.addRowBlockSums`); the small tensors of the gradient checks take the one-block
/// path, so these use 600 rows (three blocks, the last one short).
@Suite struct RowBlockSumTests {
    @Test func columnSumsAndNormWeightGradientOverBlocks() throws {
        let (rows, c) = (600, 37)
        let x = GradCheck.random([rows, c], seed: 50).scalars, g = GradCheck.random([rows, c], seed: 51).scalars
        let rstd = (0..<rows).map { Float(0.5 + Double($0 % 7) * 0.1) }
        var sums = [Float](repeating: 0.25, count: c), gw = [Float](repeating: -0.5, count: c)  // added into
        x.withUnsafeBufferPointer { px in sums.withUnsafeMutableBufferPointer { Kernels.addColumnSums(px.baseAddress!, rows: rows, cols: c, into: $0.baseAddress!) } }
        x.withUnsafeBufferPointer { px in
            g.withUnsafeBufferPointer { pg in
                rstd.withUnsafeBufferPointer { ps in
                    gw.withUnsafeMutableBufferPointer { out in
                        Kernels.addNormWeightGradient(
                            x: UnsafeSendablePointer(UnsafeMutablePointer(mutating: px.baseAddress!)),
                            g: UnsafeSendablePointer(UnsafeMutablePointer(mutating: pg.baseAddress!)),
                            stats: UnsafeSendablePointer(UnsafeMutablePointer(mutating: ps.baseAddress!)),
                            layerNorm: false, rows: rows, columns: c, into: out.baseAddress!)
                    }
                }
            }
        }
        for j in 0..<c {
            let wantSum = 0.25 + (0..<rows).reduce(0.0) { $0 + Double(x[$1 * c + j]) }
            let wantGrad = -0.5 + (0..<rows).reduce(0.0) { $0 + Double(g[$1 * c + j]) * Double(x[$1 * c + j]) * Double(rstd[$1]) }
            #expect(abs(Double(sums[j]) - wantSum) < Tolerance.Reduction.rowBlockSumsVsFloat64, "column \(j): \(sums[j]) vs \(wantSum)")
            #expect(abs(Double(gw[j]) - wantGrad) < Tolerance.Reduction.rowBlockSumsVsFloat64, "column \(j): \(gw[j]) vs \(wantGrad)")
        }
    }
}
