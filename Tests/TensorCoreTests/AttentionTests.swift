import Foundation
import Testing
import _TestSupport
@testable import TensorCore

/// [B, H, T, D] → [B, T, H, D] (the fixture's layout to the kernel's).
private func bhtdToBTHD(_ t: Tensor) throws -> Tensor { try t.permuted([0, 2, 1, 3]).detached() }

private func run(_ q: Tensor, _ k: Tensor, _ v: Tensor, _ dOut: Tensor, _ o: AttentionOptions) throws
    -> (out: [Float], lse: [Float], dq: [Float], dk: [Float], dv: [Float])
{
    let (ql, kl, vl) = (q.requiringGrad(), k.requiringGrad(), v.requiringGrad())
    let (out, lse) = try Tensor.attentionWithLSE(q: ql, k: kl, v: vl, options: o)
    try (out * dOut).sum().backward()
    return (out.scalars, lse.scalars, ql.grad!.scalars, kl.grad!.scalars, vl.grad!.scalars)
}

@Suite struct AttentionTests {
    static let kernels: [AttentionKernel] = [.naive, .tiled(queryTile: 16, keyTile: 16), .tiled(queryTile: 64, keyTile: 32)]

    @Test(arguments: kernels)
    func matchesReferenceFixture(kernel: AttentionKernel) throws {
        let f = try Fixtures.load("attention/attention.safetensors")
        let q = try bhtdToBTHD(f["q"]!.tensor), k = try bhtdToBTHD(f["k"]!.tensor), v = try bhtdToBTHD(f["v"]!.tensor)
        let g = try bhtdToBTHD(f["grad_out"]!.tensor)
        let slopes = f["alibi_slopes"]!.floats
        let modes: [(String, AttentionOptions)] = [
            ("causal", AttentionOptions(scale: 0.25, kernel: kernel)),
            ("alibi", AttentionOptions(alibiSlopes: slopes, scale: 0.25, kernel: kernel)),
            ("sliding_window", AttentionOptions(window: 16, scale: 0.25, kernel: kernel)),
        ]
        for (mode, opts) in modes {
            let r = try run(q, k, v, g, opts)
            let expect: [(String, [Float], Tensor)] = [
                ("out", r.out, try bhtdToBTHD(f["\(mode).out"]!.tensor)),
                ("dq", r.dq, try bhtdToBTHD(f["\(mode).dq"]!.tensor)),
                ("dk", r.dk, try bhtdToBTHD(f["\(mode).dk"]!.tensor)),
                ("dv", r.dv, try bhtdToBTHD(f["\(mode).dv"]!.tensor)),
                ("lse", r.lse, f["\(mode).lse"]!.tensor),
            ]
            for (name, got, want) in expect {
                let diff = Fixtures.maxAbsDiff(got, want.scalars)
                #expect(diff < Tolerance.Attention.vsFloat64Fixture, "\(kernel) \(mode) \(name): max diff \(diff)")
            }
        }
    }

    // (T, D, heads, kvHeads, window, tile): T not a multiple of the tile and T = 1, head_dim 16/64/128,
    // GQA groups 1/2/4, windows smaller and larger than the tile.
    static let sweep: [(Int, Int, Int, Int, Int?, Int)] = [
        (1, 16, 4, 4, nil, 16), (7, 16, 4, 2, nil, 16), (65, 64, 4, 1, nil, 16), (65, 16, 4, 2, 5, 16),
        (130, 16, 4, 4, 40, 32), (33, 128, 2, 1, nil, 16), (64, 64, 8, 2, 100, 64), (40, 16, 4, 2, 3, 8),
    ]

    @Test(arguments: sweep)
    func tiledEqualsNaive(t: Int, d: Int, h: Int, kvh: Int, window: Int?, tile: Int) throws {
        for (causal, alibi) in [(true, false), (true, true), (false, false)] {
            let b = 2
            let q = GradCheck.random([b, t, h, d], seed: 1), k = GradCheck.random([b, t, kvh, d], seed: 2)
            let v = GradCheck.random([b, t, kvh, d], seed: 3), g = GradCheck.random([b, t, h, d], seed: 4)
            let slopes = alibi ? ALiBi.slopes(heads: h) : nil
            var o = AttentionOptions(causal: causal, window: window, alibiSlopes: slopes,
                                     scale: 1 / Float(d).squareRoot(), kernel: .naive)
            let n = try run(q, k, v, g, o)
            o.kernel = .tiled(queryTile: tile, keyTile: tile * 2 > 64 ? tile : tile * 2)
            let ti = try run(q, k, v, g, o)
            for (name, a, c) in [("out", n.out, ti.out), ("lse", n.lse, ti.lse), ("dq", n.dq, ti.dq),
                                 ("dk", n.dk, ti.dk), ("dv", n.dv, ti.dv)] {
                let diff = Fixtures.maxAbsDiff(a, c)
                #expect(diff < Tolerance.Attention.tiledVsNaive, "T \(t) D \(d) H \(h)/\(kvh) window \(String(describing: window)) causal \(causal) alibi \(alibi) \(name): \(diff)")
            }
        }
    }

    /// A NaN in one head's queries reaches that head's outputs (it is not taken for a masked
    /// score and turned into zeros); the other heads stay finite. Both kernels, all queries.
    @Test(arguments: kernels)
    func nanPropagatesAndStaysInItsHead(kernel: AttentionKernel) throws {
        let (b, t, h, d) = (1, 9, 2, 16)
        var qs = GradCheck.random([b, t, h, d], seed: 11).scalars
        for i in 0..<t { qs[(i * h + 0) * d + 5] = .nan }  // head 0, dimension 5, every position
        let q = try Tensor(shape: [b, t, h, d], values: qs)
        let k = GradCheck.random([b, t, h, d], seed: 12), v = GradCheck.random([b, t, h, d], seed: 13)
        let o = try Tensor.attention(q: q, k: k, v: v, options: AttentionOptions(scale: 0.25, kernel: kernel)).scalars
        for i in 0..<t {
            #expect((0..<d).allSatisfy { o[(i * h + 0) * d + $0].isNaN }, "\(kernel) position \(i), head 0")
            #expect((0..<d).allSatisfy { o[(i * h + 1) * d + $0].isFinite }, "\(kernel) position \(i), head 1")
        }
    }

    /// Queries at an offset (keys before them already present) with tiles that cross the causal
    /// diagonal part-way, where the tiled kernel works in strips of query rows and of key columns:
    /// outputs and all three gradients against the naive kernel, with and without a window.
    @Test func queryOffsetTiledEqualsNaiveWithGradients() throws {
        let (b, tq, tk, h, kvh, d) = (2, 45, 61, 4, 2, 16)
        let q = GradCheck.random([b, tq, h, d], seed: 31), k = GradCheck.random([b, tk, kvh, d], seed: 32)
        let v = GradCheck.random([b, tk, kvh, d], seed: 33), g = GradCheck.random([b, tq, h, d], seed: 34)
        for (offset, window) in [(16, nil), (7, nil), (3, 20)] as [(Int, Int?)] {
            var o = AttentionOptions(window: window, queryOffset: offset, scale: 0.25, kernel: .naive)
            let n = try run(q, k, v, g, o)
            for kernel in [AttentionKernel.tiled(queryTile: 32, keyTile: 32), .tiled(queryTile: 64, keyTile: 16)] {
                o.kernel = kernel
                let ti = try run(q, k, v, g, o)
                for (name, a, c) in [("out", n.out, ti.out), ("lse", n.lse, ti.lse), ("dq", n.dq, ti.dq),
                                     ("dk", n.dk, ti.dk), ("dv", n.dv, ti.dv)] {
                    let diff = Fixtures.maxAbsDiff(a, c)
                    #expect(diff < Tolerance.Attention.tiledVsNaive, "offset \(offset) window \(String(describing: window)) \(kernel) \(name): \(diff)")
                }
            }
        }
    }

    @Test func queryOffsetMatchesFullComputationRows() throws {
        // KV-cache decoding: the last 3 queries against all keys equal rows of the full causal call.
        let (b, t, h, kvh, d) = (1, 20, 4, 2, 16)
        let q = GradCheck.random([b, t, h, d], seed: 5), k = GradCheck.random([b, t, kvh, d], seed: 6)
        let v = GradCheck.random([b, t, kvh, d], seed: 7)
        for kernel in Self.kernels {
            let slopes = ALiBi.slopes(heads: h)
            let full = try Tensor.attention(q: q, k: k, v: v, options: AttentionOptions(window: 6, alibiSlopes: slopes, scale: 0.25, kernel: kernel))
            let tail = try Tensor.attention(q: q.slice(axis: 1, 17..<20), k: k, v: v,
                                            options: AttentionOptions(window: 6, alibiSlopes: slopes, queryOffset: 17, scale: 0.25, kernel: kernel))
            let want = try full.slice(axis: 1, 17..<20)
            #expect(Fixtures.maxAbsDiff(tail.scalars, want.scalars) < Tolerance.Attention.queryOffsetRows)
        }
    }

    @Test(arguments: [AttentionKernel.naive, .tiled(queryTile: 4, keyTile: 4)])
    func gradientCheckAgainstFloat64(kernel: AttentionKernel) throws {
        let (b, t, h, kvh, d) = (1, 5, 2, 1, 3)
        let q = GradCheck.random([b, t, h, d], seed: 8), k = GradCheck.random([b, t, kvh, d], seed: 9)
        let v = GradCheck.random([b, t, kvh, d], seed: 10)
        let slopes: [Float] = [0.5, 0.25]
        let r = try GradCheck.check([q, k, v], op: { x in
            try Tensor.attention(q: x[0], k: x[1], v: x[2], options: AttentionOptions(window: 3, alibiSlopes: slopes, scale: 0.6, kernel: kernel))
        }) { x in
            var out = [Double](repeating: 0, count: b * t * h * d)
            for hi in 0..<h {
                for i in 0..<t {
                    var s = [Double](repeating: -.infinity, count: t)
                    for j in 0...i where i - j < 3 {
                        var dot = 0.0
                        for e in 0..<d { dot += x[0][(i * h + hi) * d + e] * x[1][j * d + e] }
                        s[j] = dot * Double(Float(0.6)) - Double(slopes[hi]) * Double(i - j)
                    }
                    let p = Reference.softmax(s.map { $0 == -.infinity ? -1e300 : $0 })
                    for e in 0..<d { out[(i * h + hi) * d + e] = (0..<t).reduce(0) { $0 + p[$1] * x[2][$1 * d + e] } }
                }
            }
            return out
        }
        #expect(r.passed, "\(r)")
    }

    /// Soft-capping (Gemma 2) and sinks (gpt-oss) against a float64 reference: s = cap·tanh(0.6·q·k / cap)
    /// − ALiBi, softmax over the visible keys plus one value-less logit per head; q, k, v and the sinks
    /// are all checked.
    @Test(arguments: [AttentionKernel.naive, .tiled(queryTile: 4, keyTile: 4)])
    func softcapAndSinksGradientCheckAgainstFloat64(kernel: AttentionKernel) throws {
        let (b, t, h, kvh, d) = (1, 5, 2, 1, 3)
        let q = GradCheck.random([b, t, h, d], seed: 18), k = GradCheck.random([b, t, kvh, d], seed: 19)
        let v = GradCheck.random([b, t, kvh, d], seed: 20)
        let sinks = try Tensor(shape: [h], values: [0.3, -0.7])
        let slopes: [Float] = [0.5, 0.25], cap = 1.5
        let r = try GradCheck.check([q, k, v, sinks], op: { x in
            try Tensor.attention(q: x[0], k: x[1], v: x[2], sinks: x[3],
                                 options: AttentionOptions(window: 3, alibiSlopes: slopes, scale: 0.6, kernel: kernel, softcap: Float(cap)))
        }) { x in
            var out = [Double](repeating: 0, count: b * t * h * d)
            for hi in 0..<h {
                for i in 0..<t {
                    var s = [Double](repeating: -1e300, count: t + 1)
                    for j in 0...i where i - j < 3 {
                        var dot = 0.0
                        for e in 0..<d { dot += x[0][(i * h + hi) * d + e] * x[1][j * d + e] }
                        s[j] = cap * Foundation.tanh(dot * Double(Float(0.6)) / cap) - Double(slopes[hi]) * Double(i - j)
                    }
                    s[t] = x[3][hi]
                    let p = Reference.softmax(s)
                    for e in 0..<d { out[(i * h + hi) * d + e] = (0..<t).reduce(0) { $0 + p[$1] * x[2][$1 * d + e] } }
                }
            }
            return out
        }
        #expect(r.passed, "\(r)")
    }

    /// The tiled kernel against the naive one with soft-capping and sinks, over tile edges, GQA and windows.
    @Test func softcapAndSinksTiledEqualsNaive() throws {
        try expectTiledEqualsNaive(cases: [(7, 16, 4, 2, nil, 4), (65, 16, 4, 1, 9, 16), (40, 64, 4, 2, nil, 8)], seed: 21,
                                   sinks: true) { kernel, d, window in
            AttentionOptions(window: window, scale: 2 / Float(d).squareRoot(), kernel: kernel, softcap: 2)
        }
    }

    @Test func alibiSlopesMatchPaperRule() throws {
        #expect(ALiBi.slopes(heads: 4) == [0.25, 0.0625, 0.015625, 0.00390625])
        #expect(ALiBi.slopes(heads: 3) == [0.0625, 0.00390625, 0.25])
        let s12 = ALiBi.slopes(heads: 12)
        let slopeBound = Float(Tolerance.fewRoundings)
        #expect(abs(s12[8] - 0.70710678) < slopeBound && abs(s12[11] - 0.08838835) < slopeBound)
        let s6 = ALiBi.slopes(heads: 6)
        #expect(s6 == [0.25, 0.0625, 0.015625, 0.00390625, 0.5, 0.125])
    }

    @Test func badShapesThrow() {
        let q = Tensor(zeros: [1, 4, 3, 8]), k = Tensor(zeros: [1, 4, 2, 8])
        #expect(throws: TensorError.self) { try Tensor.attention(q: q, k: k, v: k, options: AttentionOptions(scale: 1)) }
    }
}

/// Runs attention with the naive and the tiled kernel (tile `tile`) on the same random inputs for
/// each case (T, D, heads, KV heads, window, tile) and expects the outputs and the gradients of q,
/// k, v (and, with `sinks`, the log-sum-exp and the sinks' gradient) to agree.
func expectTiledEqualsNaive(cases: [(t: Int, d: Int, h: Int, kvh: Int, window: Int?, tile: Int)], seed: UInt64, sinks: Bool = false,
                            options: (AttentionKernel, _ d: Int, _ window: Int?) -> AttentionOptions,
                            sourceLocation: SourceLocation = #_sourceLocation) throws {
    for (t, d, h, kvh, window, tile) in cases {
        let b = 2
        let q = GradCheck.random([b, t, h, d], seed: seed), k = GradCheck.random([b, t, kvh, d], seed: seed + 1)
        let v = GradCheck.random([b, t, kvh, d], seed: seed + 2), g = GradCheck.random([b, t, h, d], seed: seed + 3)
        let sinkValues = (0..<h).map { Float($0) * 0.5 - 0.6 }
        func go(_ kernel: AttentionKernel) throws -> [[Float]] {
            let (ql, kl, vl) = (q.requiringGrad(), k.requiringGrad(), v.requiringGrad())
            let sl = sinks ? try Tensor(shape: [h], values: sinkValues).requiringGrad() : nil
            let (out, lse) = try Tensor.attentionWithLSE(q: ql, k: kl, v: vl, sinks: sl, options: options(kernel, d, window))
            try (out * g).sum().backward()
            let grads = [ql.grad!.scalars, kl.grad!.scalars, vl.grad!.scalars]
            return sinks ? [out.scalars, lse.scalars] + grads + [sl!.grad!.scalars] : [out.scalars] + grads
        }
        let naive = try go(.naive), tiled = try go(.tiled(queryTile: tile, keyTile: tile))
        let names = sinks ? ["out", "lse", "dq", "dk", "dv", "dsinks"] : ["out", "dq", "dk", "dv"]
        for (i, name) in names.enumerated() {
            let diff = Fixtures.maxAbsDiff(naive[i], tiled[i])
            #expect(diff < Tolerance.Attention.tiledVsNaive, "T \(t) D \(d) window \(String(describing: window)) \(name): \(diff)",
                    sourceLocation: sourceLocation)
        }
    }
}
