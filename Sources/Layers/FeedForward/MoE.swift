import TensorCore

/// What one MoE layer's router did in the last forward pass (for the aux loss and logging).
public struct RoutingRecord {
    /// Router probabilities `[N, E]` over all experts (on the tape: the aux loss differentiates them).
    public var probabilities: Tensor
    /// Router logits `[N, E]`.
    public var logits: Tensor
    /// Chosen experts, `[N, k]` row-major.
    public var topK: [Int32]
    /// Routing weights after optional renormalisation, `[N, k]` (values only).
    public var weights: [Float]
    /// Tokens sent to each expert (counting every top-k slot).
    public var expertCounts: [Int]
    /// The router's settings: experts, k and the loss coefficients.
    public var experts: Int
    public var k: Int
    public var auxLossCoefficient: Float
    public var zLossCoefficient: Float

    /// Router z-loss: mean over tokens of logsumexp(logits)² (ST-MoE).
    public func zLoss() throws -> Tensor {
        let lse = try (logits - logits.logSoftmax()).slice(axis: 1, 0..<1)
        return lse.square().mean()
    }
}

/// Sparse mixture of SwiGLU experts with a softmax router. Two routings:
/// - `softmax_topk` (Qwen3-MoE): router linear → softmax over all experts → top-k → optional
///   renormalisation (`norm_topk_prob`);
/// - `topk_softmax` (gpt-oss): top-k on the router logits → softmax over those k;
/// then the weighted sum of the chosen experts. Tokens are grouped per expert so each expert runs
/// one GEMM. gpt-oss also biases the router (`router_bias`) and the experts (`expert_bias`) and
/// uses the clamped SwiGLU (`expert_activation: clamped_swiglu`, `swiglu_alpha`, `swiglu_limit`).
///
/// Keys: `gate.weight` `[E, C]` (`gate.bias`), `experts.{e}.{gate,up,down}_proj.weight` (`.bias`).
/// Recipe kind `moe`: `experts`, `top_k`, `intermediate_size`, `norm_topk_prob` (true),
/// `aux_loss_coef` (0.001), `z_loss_coef` (0), `routing` (softmax_topk), `router_bias` (false),
/// `expert_bias` (false), `expert_activation` (swiglu), `swiglu_alpha` (1.702), `swiglu_limit` (7).
public final class MoE: FeedForward {
    public let gate: Linear
    public let experts: [SwiGLUMLP]
    public let topK: Int
    public let normalizeTopK: Bool
    public let auxLossCoefficient: Float
    public let zLossCoefficient: Float
    /// Softmax then top-k (Qwen3-MoE), or top-k on the logits then softmax over them (gpt-oss).
    public enum Routing: String, Sendable, CaseIterable { case softmaxTopK = "softmax_topk", topKSoftmax = "topk_softmax" }
    public let routing: Routing
    /// Set by each forward pass.
    public private(set) var lastRouting: RoutingRecord?

    public init(hiddenSize: Int, experts: Int, topK: Int, intermediateSize: Int, normalizeTopK: Bool,
                auxLossCoefficient: Float, zLossCoefficient: Float, routing: Routing = .softmaxTopK, routerBias: Bool = false,
                expertBias: Bool = false, expertActivation: SwiGLUMLP.Activation = .silu, alpha: Float = 1.702, limit: Float = 7,
                context: ComponentContext) {
        gate = Linear(hiddenSize, experts, bias: routerBias, context: context)
        self.experts = (0..<experts).map { _ in
            SwiGLUMLP(hiddenSize: hiddenSize, intermediateSize: intermediateSize, bias: expertBias, activation: expertActivation,
                      alpha: alpha, limit: limit, context: context)
        }
        self.routing = routing
        self.topK = topK
        self.normalizeTopK = normalizeTopK
        self.auxLossCoefficient = auxLossCoefficient
        self.zLossCoefficient = zLossCoefficient
    }

    public static func make(_ o: inout ComponentOptions, _ c: ComponentContext) throws -> any FeedForward {
        let e = try o.requiredInt("experts")
        try ModelLimits.check(o, "experts", e, max: ModelLimits.maxExperts)
        let k = try o.requiredInt("top_k")
        guard k <= e else { throw o.error("top_k", "\(k) is greater than the number of experts (\(e))") }
        let inner = try o.requiredInt("intermediate_size")
        try ModelLimits.check(o, "intermediate_size", inner, max: ModelLimits.maxIntermediate)
        let aux = try o.double("aux_loss_coef", default: 0.001), z = try o.double("z_loss_coef", default: 0)
        guard aux >= 0, aux.isFinite else { throw o.error("aux_loss_coef", "must be a non-negative finite number, got \(aux)") }
        guard z >= 0, z.isFinite else { throw o.error("z_loss_coef", "must be a non-negative finite number, got \(z)") }
        let routing = Routing(rawValue: try o.choice("routing", Routing.allCases.map(\.rawValue), default: "softmax_topk"))!
        let activation = try o.choice("expert_activation", ["swiglu", "clamped_swiglu"], default: "swiglu")
        let alpha = try o.positiveFinite("swiglu_alpha", default: 1.702), limit = try o.positiveFinite("swiglu_limit", default: 7)
        return MoE(hiddenSize: c.hiddenSize, experts: e, topK: k, intermediateSize: inner,
                   normalizeTopK: try o.bool("norm_topk_prob", default: true),
                   auxLossCoefficient: Float(aux), zLossCoefficient: Float(z), routing: routing,
                   routerBias: try o.bool("router_bias", default: false), expertBias: try o.bool("expert_bias", default: false),
                   expertActivation: SwiGLUMLP.Activation(rawValue: activation)!, alpha: Float(alpha), limit: Float(limit), context: c)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let c = x.shape[x.rank - 1], n = x.count / c, e = experts.count
        let flat = try x.reshaped([n, c])
        let logits = try gate(flat)                       // [N, E]
        let probs = logits.softmax()                      // [N, E]
        // Top-k per row: highest probability first, lowest index on ties (torch.topk order).
        let p = probs.scalars
        var top = [Int32](repeating: 0, count: n * topK)
        for row in 0..<n {
            let r = p[(row * e)..<((row + 1) * e)]
            let order = r.indices.sorted { r[$0] != r[$1] ? r[$0] > r[$1] : $0 < $1 }
            for j in 0..<topK { top[row * topK + j] = Int32(order[j] - row * e) }
        }
        // Routing weights [N, k], differentiable: gathered from the probabilities and renormalised,
        // or (gpt-oss) the softmax of the chosen logits. Top-k of the probabilities is top-k of the
        // logits (softmax is monotonic), so both routings choose the same experts.
        let flatIndex = (0..<(n * topK)).map { Int32(($0 / topK) * e) + top[$0] }
        var w: Tensor
        switch routing {
        case .softmaxTopK:
            w = try probs.reshaped([n * e, 1]).gatherRows(flatIndex).reshaped([n, topK])
            if normalizeTopK { w = try w / w.sum(axes: [1], keepDims: true) }
        case .topKSoftmax:
            w = try logits.reshaped([n * e, 1]).gatherRows(flatIndex).reshaped([n, topK]).softmax()
        }
        let wFlat = try w.reshaped([n * topK, 1])
        var out: Tensor? = nil
        var counts = [Int](repeating: 0, count: e)
        for (ei, expert) in experts.enumerated() {
            var rows: [Int32] = [], slots: [Int32] = []
            for s in 0..<(n * topK) where top[s] == Int32(ei) {
                rows.append(Int32(s / topK))
                slots.append(Int32(s))
            }
            counts[ei] = rows.count
            guard !rows.isEmpty else { continue }
            let y = try expert(flat.gatherRows(rows))                 // [n_e, C]: one GEMM per projection
            let weighted = try y * wFlat.gatherRows(slots)            // [n_e, C] · [n_e, 1]
            let scattered = try Tensor.scatterAddRows(weighted, indices: rows, rows: n)
            out = try out.map { try $0 + scattered } ?? scattered
        }
        lastRouting = RoutingRecord(probabilities: probs, logits: logits, topK: top, weights: w.scalars, expertCounts: counts,
                                    experts: e, k: topK, auxLossCoefficient: auxLossCoefficient,
                                    zLossCoefficient: zLossCoefficient)
        return try (out ?? Tensor(zeros: [n, c])).reshaped(x.shape)
    }

    /// Router z-loss of the last forward (nil before the first).
    public func zLoss() throws -> Tensor? { try lastRouting?.zLoss() }

    public var options: [String: ConfigValue] {
        var o: [String: ConfigValue] = [
            "kind": .string("moe"), "experts": .int(experts.count), "top_k": .int(topK),
            "intermediate_size": .int(experts[0].gateProj.outFeatures), "norm_topk_prob": .bool(normalizeTopK),
            "aux_loss_coef": .double(Double(auxLossCoefficient)), "z_loss_coef": .double(Double(zLossCoefficient))]
        // The gpt-oss settings, only when they differ from Qwen3-MoE's (older options stay as they were).
        if routing != .softmaxTopK { o["routing"] = .string(routing.rawValue) }
        if gate.bias != nil { o["router_bias"] = .bool(true) }
        if experts[0].gateProj.bias != nil { o["expert_bias"] = .bool(true) }
        if experts[0].activation == .clampedSwiGLU {
            o["expert_activation"] = .string("clamped_swiglu")
            o["swiglu_alpha"] = .double(Double(experts[0].alpha))
            o["swiglu_limit"] = .double(Double(experts[0].limit))
        }
        return o
    }
    public var label: String {
        "moe \(experts.count) × \(experts[0].activation.rawValue) \(experts[0].gateProj.outFeatures), top-\(topK)"
            + (routing == .topKSoftmax ? " then softmax" : "")
    }

    /// The router, then k of the experts per token.
    public func cost(_ shape: CostShape, hidden: Int) -> ComponentCost {
        let (c, i, e, k) = (Double(hidden), Double(experts[0].gateProj.outFeatures), Double(experts.count), Double(topK))
        return ComponentCost(flopsPerToken: 2 * c * e + k * 3 * 2 * c * i,
                             activationBytes: 4 * shape.tokens * (2 * e + k * (3 * i + 2 * c)))
    }

    /// Every expert's projections (PEFT matches `gate_proj` etc. inside `experts.{e}`); not the router.
    public var adaptableLinears: [AdaptableLinear] {
        experts.enumerated().flatMap { e, expert in
            expert.adaptableLinears.map { AdaptableLinear("experts.\(e).\($0.path)", $0.linear) }
        }
    }

    public func decodeStep(_ w: DecodeWeights) throws -> DecodeFeedForward {
        throw DecodeUnsupported("mixture of experts: the router and experts run on the tensor path")
    }

    public func visit(_ v: inout ModuleVisitor) {
        v.child("gate", gate)
        v.children("experts", experts)
    }
}

/// The load-balancing loss exactly as HF `load_balancing_loss_func` (Switch Transformer):
/// router probabilities of all layers concatenated to `[L·N, E]`;
/// `L_aux = E · Σ_e f_e · P̄_e` with f_e the fraction of top-k picks of expert e (Σ_e f_e = k) and
/// P̄_e the mean probability. Only P̄ carries gradient.
public func loadBalancingLoss(_ records: [RoutingRecord], experts e: Int, topK: Int) throws -> Tensor? {
    guard !records.isEmpty else { return nil }
    let probs = try Tensor.concat(records.map(\.probabilities), axis: 0)   // [L·N, E]
    let tokens = probs.shape[0]
    var f = [Float](repeating: 0, count: e)
    for r in records { for i in r.topK { f[Int(i)] += 1 } }
    let fraction = try Tensor(shape: [e], values: f.map { $0 / Float(tokens) })
    let meanProb = try probs.mean(axes: [0])
    return try (meanProb * fraction).sum() * Float(e)
}
