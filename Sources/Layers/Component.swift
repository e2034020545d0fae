import TensorCore

/// The sizes a component's costs are reported at: `batch` sequences of `context` tokens.
public struct CostShape: Sendable {
    public let batch: Int
    public let context: Int
    public init(batch: Int, context: Int) {
        self.batch = batch
        self.context = context
    }
    /// Tokens in one batch (B·T), as a Double for the cost arithmetic.
    public var tokens: Double { Double(batch * context) }
}

/// What one component costs, for `build` and `compare`.
///
/// FLOPs count multiply-adds as 2 and follow nanoGPT/PaLM (attention scores and the weighted sum
/// cost 2·2·H·D·T per token at context T, no causal halving; norms and elementwise ops are not
/// counted). Activation bytes estimate the Float32 tensors the tape keeps for backward.
public struct ComponentCost: Sendable, Equatable {
    public var flopsPerToken: Double
    public var activationBytes: Double
    public init(flopsPerToken: Double = 0, activationBytes: Double = 0) {
        self.flopsPerToken = flopsPerToken
        self.activationBytes = activationBytes
    }
    public static let zero = ComponentCost()
}

/// A linear sub-module that LoRA may target: its module path relative to the component
/// (`q_proj`, `experts.3.gate_proj`) and the layer. The PEFT name is the last path element.
public struct AdaptableLinear {
    public let path: String
    public let linear: Linear
    public init(_ path: String, _ linear: Linear) {
        self.path = path
        self.linear = linear
    }
    /// The PEFT `target_modules` name (`gate_proj` for `experts.3.gate_proj`).
    public var kind: Substring { path.split(separator: ".").last ?? Substring(path) }
}

/// Everything the rest of the toolkit needs from a recipe component, declared by the component
/// itself: its settings as a recipe block, its label and costs for `build` and `compare`, and the
/// projections LoRA may adapt. Each component kind adds its single-token decode step
/// (`decodeStep`, or a `DecodeUnsupported` reason) in its own protocol. HF weight names are the
/// canonical names of `visit` (the Llama/Qwen layout); a family whose checkpoints differ maps them
/// in its family file (Sources/Models/Families).
public protocol Component: Module {
    /// The settings as a recipe block with every default resolved, `kind` included. Building
    /// the component again from this block gives the same component.
    var options: [String: ConfigValue] { get }
    /// A short label for reports: `rope+yarn`, `swiglu 1536`.
    var label: String { get }
    /// Forward FLOPs per token and activation bytes at `shape`, for a model of width `hidden`.
    func cost(_ shape: CostShape, hidden: Int) -> ComponentCost
    /// The projections LoRA may adapt.
    var adaptableLinears: [AdaptableLinear] { get }
}

extension Component {
    public var adaptableLinears: [AdaptableLinear] { [] }
}
