import CKernels
import Testing
import _TestSupport
@testable import Layers
@testable import TensorCore

// The worked example of docs/architecture-notes.md ("Adding a component"), compiled and run here:
// a new normalisation is this one type plus one registry line, and every subsystem (training,
// build/compare costs, the fast decoder, LoRA, HF export) then handles it without a downcast.

// BEGIN worked example
/// ScaleNorm (Nguyen & Salazar, 2019): `g · x / rms(x)` with one learned gain `g` instead of a
/// weight per channel. Recipe kind `scalenorm`: `eps` (1e-6). Key `gain`.
public final class ScaleNorm: Normalization {
    public let gain = Parameter(Tensor.ones([1]))
    public let epsilon: Double

    public init(eps: Double) { epsilon = eps }

    public static func make(_ o: inout ComponentOptions, _ c: ComponentContext) throws -> any Normalization {
        ScaleNorm(eps: try o.double("eps", default: 1e-6))
    }

    // Training: the tensor path (differentiable; g broadcasts over the channels).
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try Tensor.rmsNorm(x, weight: nil, eps: Float(epsilon)) * gain.value
    }

    // Checkpoints and LoRA see the parameters through `visit`.
    public func visit(_ v: inout ModuleVisitor) { v.parameter("gain", gain) }

    // `build`, `compare` and HF export read these (the cost comes from `Normalization`'s default).
    public var options: [String: ConfigValue] { ["kind": .string("scalenorm"), "eps": .double(epsilon)] }
    public var label: String { "scalenorm" }

    // The fast decoder: the RMSNorm kernel without a weight, then the gain.
    public func decodeNorm(_ w: DecodeWeights) throws -> DecodeNorm {
        let gain = w.pin(self.gain.value), eps = Float(epsilon)
        return DecodeNorm { x, y, width, rows, stats in
            tk_rmsnorm_forward(x, nil, eps, Int32(width), y, stats, 0, Int32(rows))
            for i in 0..<(width * rows) { y[i] *= gain[0] }
        }
    }
}

// The registry line (in Components.swift for a built-in kind; at start-up for a plug-in):
//     Components.norms.register("scalenorm", ScaleNorm.make)
// END worked example

@Suite struct WorkedExampleTests {
    @Test func scaleNormTrainsAndDecodes() throws {
        Components.norms.register("scalenorm", ScaleNorm.make)
        let c = ComponentContext(hiddenSize: 8, heads: 2, kvHeads: 2, headDim: 4, layers: 1, contextLength: 8)
        let norm = try Components.norms.make(ComponentOptions(path: "model.norm", values: ["kind": .string("scalenorm")]), c)
        #expect(norm.label == "scalenorm" && norm.parameterCount == 1)
        #expect(norm.cost(CostShape(batch: 2, context: 8), hidden: 8).activationBytes == 4 * 16 * 8)
        // The gain's gradient: d/dg Σ g·n(x)·x = Σ n(x)·x, summed in Double.
        var rng = SplitMix64(seed: 3)
        let x = Tensor.randn([2, 3, 8], std: 1, rng: &rng)
        let scale = ScaleNorm(eps: 1e-6)
        try scale.gain.assign(Tensor(shape: [1], values: [1.5]))
        try (scale(x) * x).sum().backward()
        let analytic = Double(scale.gain.grad!.scalars[0])
        let normalised = try Tensor.rmsNorm(x, weight: nil, eps: 1e-6).scalars
        let expected = zip(normalised, x.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }  // d/dg Σ g·n·x
        #expect(abs(analytic - expected) < Tolerance.Reduction.broadcastGradientRelative * max(1, abs(expected)))
        // The fast decoder lowers it through the protocol: one row equals the tensor path.
        let (lowered, _) = try DecodeWeights.lower(format: .f32) { try scale.decodeNorm($0) }
        var row = Array(x.scalars[0..<8]), out = [Float](repeating: 0, count: 8), stats = [Float](repeating: 0, count: 2)
        lowered.apply(&row, &out, 8, 1, &stats)
        let want = try scale(x).scalars[0..<8]
        #expect(zip(out, want).allSatisfy { abs($0 - $1) < Float(Tolerance.fewRoundings) })
    }

    /// docs/architecture-notes.md, the repository's record of the contract, quotes the example verbatim.
    @Test func theDocumentQuotesThisExample() throws {
        let here = try String(contentsOfFile: #filePath, encoding: .utf8)
        let begin = "// BEGIN worked example\n", end = "// END worked example"
        let example = here.components(separatedBy: begin)[1].components(separatedBy: end)[0]
        let notes = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("docs/architecture-notes.md").path
        let doc = try String(contentsOfFile: notes, encoding: .utf8)
        #expect(doc.contains("```swift\n" + example + "```"), "docs/architecture-notes.md no longer quotes the worked example")
    }
}

