import Layers

/// Per-component parameters, forward FLOPs per token and training activation memory.
///
/// FLOPs count multiply-adds as 2 and follow nanoGPT/PaLM: attention scores and the weighted sum of
/// values cost 2·2·H·D·T per token at context T (no causal halving); norms and elementwise ops are
/// not counted. Activation memory estimates the Float32 tensors the tape keeps for backward at
/// batch B and context T (tiled attention keeps O(T) per head; naive keeps the T×T probabilities).
public struct ModelStats: Codable, Sendable {
    public struct Row: Codable, Sendable {
        public var component: String
        public var count: Int
        public var parameters: Int
        public var flopsPerToken: Double
        public var activationBytes: Double
    }

    public var rows: [Row]
    public var batchSize: Int
    public var contextLength: Int
    public var totalParameters: Int
    public var nonEmbeddingParameters: Int
    public var flopsPerToken: Double
    public var activationBytes: Double

    public init(model: DecoderModel, batchSize: Int) {
        let d = model.dims
        let (b, t, c) = (Double(batchSize), Double(d.contextLength), Double(d.hiddenSize))
        let bt = b * t
        var rows: [Row] = []
        func params(_ m: (any Module)?) -> Int { m.map { $0.parameterCount } ?? 0 }
        rows.append(Row(component: "embed_tokens", count: 1, parameters: params(model.embedTokens), flopsPerToken: 0,
                        activationBytes: 4 * bt * c))
        let posParams = params(model.position)
        rows.append(Row(component: "embed_positions (\(Self.kind(model.position)))", count: 1, parameters: posParams,
                        flopsPerToken: 0, activationBytes: posParams > 0 ? 4 * bt * c : 0))
        // Group identical layer components.
        var groups: [String: Row] = [:]
        var order: [String] = []
        func add(_ name: String, _ p: Int, _ f: Double, _ a: Double) {
            if groups[name] == nil { order.append(name); groups[name] = Row(component: name, count: 0, parameters: 0, flopsPerToken: 0, activationBytes: 0) }
            groups[name]!.count += 1
            groups[name]!.parameters += p
            groups[name]!.flopsPerToken += f
            groups[name]!.activationBytes += a
        }
        for block in model.layers {
            let a = block.attention
            let (h, kvh, hd) = (Double(a.heads), Double(a.kvHeads), Double(a.headDim))
            let proj = 2 * c * h * hd * 2 + 2 * 2 * c * kvh * hd
            let core = 2 * 2 * h * hd * t
            var act = 4 * bt * (2 * (h + 2 * kvh) * hd + h * hd + c) + 4 * b * h * t  // q,k,v (+rotated), out, o_proj, lse
            if case .naive = a.kernel { act += 4 * b * h * t * t }
            let attnName = "attention (\(Int(h))/\(Int(kvh)) heads × \(Int(hd))\(a.qNorm != nil ? ", qk-norm" : ""))"
            add(attnName, params(a), proj + core, act)
            add("norms", params(block.inputNorm) + params(block.postAttentionNorm), 0, 4 * bt * c * 2)
            switch block.mlp {
            case let m as GELUMLP:
                let i = Double(m.fcIn.outFeatures)
                add("mlp (gelu \(Int(i)))", params(m), 2 * 2 * c * i, 4 * bt * (2 * i + c))
            case let m as SwiGLUMLP:
                let i = Double(m.gateProj.outFeatures)
                add("mlp (swiglu \(Int(i)))", params(m), 3 * 2 * c * i, 4 * bt * (3 * i + c))
            case let m as MoE:
                let i = Double(m.experts[0].gateProj.outFeatures), e = Double(m.experts.count), k = Double(m.topK)
                add("moe (\(Int(e)) × swiglu \(Int(i)), top-\(Int(k)))", params(m), 2 * c * e + k * 3 * 2 * c * i,
                    4 * bt * (2 * e + k * (3 * i + 2 * c)))
            default:
                add("mlp", params(block.mlp), 0, 0)
            }
            add("residual", 0, 0, 4 * bt * c * 2)
        }
        rows += order.map { groups[$0]! }
        rows.append(Row(component: "final norm", count: 1, parameters: params(model.norm), flopsPerToken: 0, activationBytes: 4 * bt * c))
        rows.append(Row(component: model.lmHead == nil ? "lm_head (tied)" : "lm_head", count: 1, parameters: params(model.lmHead),
                        flopsPerToken: 2 * c * Double(d.vocabSize), activationBytes: 4 * bt * Double(d.vocabSize)))
        self.rows = rows
        self.batchSize = batchSize
        self.contextLength = d.contextLength
        totalParameters = model.parameterCount
        nonEmbeddingParameters = totalParameters - params(model.embedTokens) - posParams - params(model.lmHead)
        flopsPerToken = rows.reduce(0) { $0 + $1.flopsPerToken }
        activationBytes = rows.reduce(0) { $0 + $1.activationBytes }
    }

    static func kind(_ p: any PositionalEncoding) -> String {
        switch p {
        case is LearnedPositions: return "learned"
        case let r as RotaryEmbedding:
            if case .yarn = r.scaling { return "rope+yarn" }
            return "rope"
        case is ALiBiPositions: return "alibi"
        default: return "none"
        }
    }

    /// A plain-text table.
    public func table() -> String {
        func fmt(_ v: Double) -> String {
            if v >= 1e9 { return String(format: "%.2fG", v / 1e9) }
            if v >= 1e6 { return String(format: "%.2fM", v / 1e6) }
            if v >= 1e3 { return String(format: "%.1fk", v / 1e3) }
            return String(format: "%.0f", v)
        }
        func mib(_ b: Double) -> String { String(format: "%.1f MiB", b / 1_048_576) }
        let header = ["component", "×", "parameters", "FLOPs/token", "activations"]
        var lines = rows.map { [$0.component, String($0.count), Self.grouped($0.parameters), fmt($0.flopsPerToken), mib($0.activationBytes)] }
        lines.append(["total", "", Self.grouped(totalParameters), fmt(flopsPerToken), mib(activationBytes)])
        let widths = (0..<5).map { i in (lines + [header]).map { $0[i].count }.max() ?? 0 }
        func row(_ r: [String]) -> String {
            r.enumerated().map { i, s in i == 0 ? s.padding(toLength: widths[i], withPad: " ", startingAt: 0)
                : String(repeating: " ", count: widths[i] - s.count) + s }.joined(separator: "  ")
        }
        var out = [row(header), String(repeating: "-", count: widths.reduce(0, +) + 8)]
        out += lines.dropLast().map(row)
        out.append(String(repeating: "-", count: widths.reduce(0, +) + 8))
        out.append(row(lines.last!))
        out.append("non-embedding parameters: \(Self.grouped(nonEmbeddingParameters)); activations at batch \(batchSize) × context \(contextLength)")
        return out.joined(separator: "\n")
    }

    /// 124439808 → "124,439,808".
    public static func grouped(_ n: Int) -> String {
        let s = String(n)
        var out = ""
        for (i, ch) in s.reversed().enumerated() {
            if i > 0 && i % 3 == 0 { out.append(",") }
            out.append(ch)
        }
        return String(out.reversed())
    }
}
