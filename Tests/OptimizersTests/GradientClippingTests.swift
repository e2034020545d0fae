import Layers
import Optimizers
import TensorCore
import Testing
import _TestSupport

@Suite struct GradientClippingTests {
    /// Parameters whose gradients are exactly `grads` (from `L = Σ p·g`).
    func parameters(withGradients grads: [[Float]]) throws -> [NamedParameter] {
        var out: [NamedParameter] = []
        var loss: Tensor?
        for (i, g) in grads.enumerated() {
            let p = Parameter(Tensor(zeros: [g.count]))
            let term = try (p.value * Tensor(shape: [g.count], values: g)).sum()
            loss = try loss.map { try $0 + term } ?? term
            out.append(("p\(i)", p))
        }
        try loss?.backward()
        return out
    }

    @Test func clipsToMaxNormAndReturnsPreClipNorm() throws {
        let params = try parameters(withGradients: [[3, 4], [12]])
        #expect(abs(GradientClipping.globalNorm(params) - 13) < Tolerance.double)
        let norm = GradientClipping.clipByGlobalNorm(params, maxNorm: 1)
        #expect(abs(norm - 13) < Tolerance.double)
        #expect(abs(GradientClipping.globalNorm(params) - 1) < Tolerance.fewRoundings)
        let g0 = try #require(params[0].parameter.grad).scalars
        let bound = Float(Tolerance.fewRoundings)
        #expect(abs(g0[0] - 3 / 13) < bound && abs(g0[1] - 4 / 13) < bound)
    }

    @Test func belowThresholdIsUnchanged() throws {
        let params = try parameters(withGradients: [[3, 4], [12]])
        #expect(GradientClipping.clipByGlobalNorm(params, maxNorm: 100) == 13)
        #expect(try #require(params[1].parameter.grad).scalars == [12])
    }

    @Test func parametersWithoutGradientsAreIgnored() throws {
        var params = try parameters(withGradients: [[3, 4]])
        params.append(("frozen", Parameter(Tensor(shape: [3], repeating: 9))))
        #expect(GradientClipping.globalNorm(params) == 5)
        #expect(GradientClipping.nonFiniteGradients(params).isEmpty)
    }

    @Test func nonFiniteGradientsAreReportedAndLeftAlone() throws {
        let params = try parameters(withGradients: [[1, 2], [.nan, 1], [.infinity]])
        #expect(GradientClipping.nonFiniteGradients(params) == ["p1", "p2"])
        let norm = GradientClipping.clipByGlobalNorm(params, maxNorm: 1)
        #expect(!norm.isFinite)
        #expect(try #require(params[0].parameter.grad).scalars == [1, 2])
    }
}
