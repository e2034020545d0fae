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
        let shape = CostShape(batch: batchSize, context: d.contextLength)
        let (bt, c) = (shape.tokens, Double(d.hiddenSize))
        var rows: [Row] = []
        func params(_ m: (any Module)?) -> Int { m.map { $0.parameterCount } ?? 0 }
        func row(_ name: String, _ component: any Component) -> Row {
            let cost = component.cost(shape, hidden: d.hiddenSize)
            return Row(component: name, count: 1, parameters: params(component), flopsPerToken: cost.flopsPerToken,
                       activationBytes: cost.activationBytes)
        }
        rows.append(Row(component: "embed_tokens", count: 1, parameters: params(model.embedTokens), flopsPerToken: 0,
                        activationBytes: 4 * bt * c))
        rows.append(row("embed_positions (\(model.position.label))", model.position))
        // Identical layer components are grouped (same label).
        var groups: [String: Row] = [:]
        var order: [String] = []
        func add(_ r: Row) {
            if groups[r.component] == nil {
                order.append(r.component)
                groups[r.component] = Row(component: r.component, count: 0, parameters: 0, flopsPerToken: 0, activationBytes: 0)
            }
            groups[r.component]!.count += 1
            groups[r.component]!.parameters += r.parameters
            groups[r.component]!.flopsPerToken += r.flopsPerToken
            groups[r.component]!.activationBytes += r.activationBytes
        }
        for block in model.layers {
            add(row(block.attention.label, block.attention))
            for norm in block.norms { add(row("norms (\(norm.label))", norm)) }
            add(row("mlp (\(block.mlp.label))", block.mlp))
            add(Row(component: "residual", count: 1, parameters: 0, flopsPerToken: 0, activationBytes: 4 * bt * c * 2))
        }
        rows += order.map { groups[$0]! }
        rows.append(row("final norm (\(model.norm.label))", model.norm))
        rows.append(Row(component: model.lmHead == nil ? "lm_head (tied)" : "lm_head", count: 1, parameters: params(model.lmHead),
                        flopsPerToken: 2 * c * Double(d.vocabSize), activationBytes: 4 * bt * Double(d.vocabSize)))
        self.rows = rows
        self.batchSize = batchSize
        self.contextLength = d.contextLength
        totalParameters = model.parameterCount
        nonEmbeddingParameters = totalParameters - params(model.embedTokens) - params(model.position) - params(model.lmHead)
        flopsPerToken = rows.reduce(0) { $0 + $1.flopsPerToken }
        activationBytes = rows.reduce(0) { $0 + $1.activationBytes }
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
