import Checkpointing
import Foundation
import Layers
import Models
import Optimizers
import TensorCore
import ToolkitSupport

/// LoRA hyper-parameters (PEFT `LoraConfig` names in `adapter_config.json`).
public struct LoRAConfig: Sendable, Equatable {
    public var rank: Int
    public var alpha: Double
    public var dropout: Double
    /// Module names as PEFT writes them: `q_proj`, `k_proj`, `v_proj`, `o_proj`, `gate_proj`, `up_proj`,
    /// `down_proj`, `fc_in`, `fc_out`.
    public var targets: [String]
    public var seed: UInt64

    public init(rank: Int = 8, alpha: Double = 16, dropout: Double = 0, targets: [String] = ["q_proj", "v_proj"], seed: UInt64 = 0) {
        self.rank = rank
        self.alpha = alpha
        self.dropout = dropout
        self.targets = targets
        self.seed = seed
    }

    /// `alpha / rank`.
    public var scaling: Float { Float(alpha / Double(rank)) }

    /// Short names accepted on the command line and their module names.
    public static let shortNames: [String: String] = [
        "q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj",
        "gate": "gate_proj", "up": "up_proj", "down": "down_proj",
    ]
    /// The projection names of the built-in components; `all` means every projection a model has
    /// (each component declares its own, `Component.adaptableLinears`).
    public static let moduleNames = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "fc_in", "fc_out"]

    /// A PEFT module name: letters, digits and underscores, not starting with a digit.
    static func isModuleName(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, !CharacterSet.decimalDigits.contains(first) else { return false }
        return s.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) && $0.isASCII || $0 == "_" }
    }

    /// Parses `q,v,gate` / `q_proj,v_proj` / `all` (every projection the model has) into module
    /// names. Whether the model has them is checked when the adapters are attached.
    public static func parseTargets(_ text: String) throws -> [String] {
        let parts = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !parts.isEmpty else { throw ToolkitError("--targets: no modules given") }
        if parts == ["all"] { return moduleNames }
        return try parts.map { p in
            let name = shortNames[p] ?? p
            guard isModuleName(name) else {
                throw ToolkitError("--targets: '\(p)' is not a module name (e.g. q, k, v, o, gate, up, down, fc_in, fc_out or all)")
            }
            return name
        }
    }

    func validate() throws {
        guard rank >= 1 else { throw ToolkitError("LoRA rank must be at least 1, got \(rank)") }
        guard alpha > 0, alpha.isFinite else { throw ToolkitError("LoRA alpha must be positive, got \(alpha)") }
        guard dropout >= 0, dropout < 1 else { throw ToolkitError("LoRA dropout must be in [0, 1), got \(dropout)") }
    }
}

/// `ΔW x = (α/r)·B A dropout(x)` with A `[r, in]` (Kaiming-uniform, a = √5: U(±1/√in)) and B `[out, r]`
/// zero, as litgpt/PEFT. Attached to a `Linear` as its adapter, so `y = W x + b + (α/r)·B A x`.
public final class LoRAAdapter: LinearAdapter, Module {
    public let a: Parameter
    public let b: Parameter
    public let scaling: Float
    public let dropout: Float
    /// Dropout is applied only while training.
    public var training = true
    /// The mask seed of this adapter's next forwards (`LoRAModel.setDropoutSeed`: one per training
    /// micro-batch, so a resumed run and a recomputed forward drop what the first run dropped).
    public var dropoutSeed: UInt64

    public init(inFeatures: Int, outFeatures: Int, rank: Int, scaling: Float, dropout: Float, seed: UInt64) {
        var init_ = SplitMix64(seed: seed)
        let bound = 1 / Float(inFeatures).squareRoot()
        a = Parameter(Tensor.uniform([rank, inFeatures], low: -bound, high: bound, rng: &init_))
        b = Parameter(Tensor(zeros: [outFeatures, rank]))
        self.scaling = scaling
        self.dropout = dropout
        dropoutSeed = seed ^ 0x9E37_79B9_7F4A_7C15
    }

    /// The low-rank term for input x (`mask`: optional dropout mask, already scaled by 1/(1−p)).
    public static func delta(_ x: Tensor, a: Tensor, b: Tensor, scaling: Float, mask: Tensor? = nil) throws -> Tensor {
        let input = try mask.map { try x * $0 } ?? x
        return try Tensor.linear(Tensor.linear(input, weight: a), weight: b) * scaling
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let input = training && dropout > 0 ? try x.dropout(dropout, seed: dropoutSeed) : x
        return try Self.delta(input, a: a.value, b: b.value, scaling: scaling)
    }

    /// `(α/r)·B·A` `[out, in]`.
    public func deltaWeight() throws -> Tensor {
        try GradMode.withoutGrad { try b.value.detached().matmul(a.value.detached()) * scaling }
    }

    public func visit(_ v: inout ModuleVisitor) {
        v.parameter("lora_A.weight", a)
        v.parameter("lora_B.weight", b)
    }
}

/// The LoRA adapters attached to a model: the base is frozen, only A and B train. Saved as a PEFT
/// adapter folder (`adapter_model.safetensors` with `base_model.model.<module>.lora_{A,B}.weight`
/// and `adapter_config.json`).
public final class LoRAModel {
    public let model: DecoderModel
    public let config: LoRAConfig
    /// Module name (canonical, e.g. `model.layers.0.self_attn.q_proj`), its Linear and its adapter.
    public private(set) var adapters: [(module: String, linear: Linear, adapter: LoRAAdapter)]

    /// Every LoRA-able projection of the model by canonical module name and PEFT module name, as
    /// each component declares them (`adaptableLinears`).
    static func projections(_ model: DecoderModel) -> [(module: String, kind: String, linear: Linear)] {
        model.layers.enumerated().flatMap { i, block in
            [("self_attn", block.attention as any Component), ("mlp", block.mlp)].flatMap { name, component in
                component.adaptableLinears.map { ("model.layers.\(i).\(name).\($0.path)", String($0.kind), $0.linear) }
            }
        }
    }

    /// Freezes every base parameter and attaches fresh adapters to the targeted projections.
    public init(attachingTo model: DecoderModel, config: LoRAConfig) throws {
        try config.validate()
        let all = Self.projections(model)
        let available = Set(all.map(\.kind))
        var targets = config.targets
        // `all` expands to every projection kind the model's components declare; explicit names must exist.
        if Set(targets) == Set(LoRAConfig.moduleNames) {
            var seen = Set<String>()
            targets = all.map(\.kind).filter { seen.insert($0).inserted }
        }
        if let missing = targets.first(where: { !available.contains($0) }) {
            throw ToolkitError("LoRA target \(missing) does not exist in this model (it has \(available.sorted().joined(separator: ", ")))")
        }
        self.model = model
        var cfg = config
        cfg.targets = targets
        self.config = cfg
        for (_, p) in model.namedParameters() { p.isTrainable = false }
        adapters = []
        for (i, (module, kind, linear)) in all.enumerated() where targets.contains(kind) {
            guard linear.adapter == nil else { throw ToolkitError("\(module) already has an adapter") }
            let adapter = LoRAAdapter(inFeatures: linear.inFeatures, outFeatures: linear.outFeatures, rank: cfg.rank,
                                      scaling: cfg.scaling, dropout: Float(cfg.dropout), seed: cfg.seed &+ UInt64(i) &* 7919)
            linear.adapter = adapter
            adapters.append((module, linear, adapter))
        }
    }

    /// The adapters' parameters under their PEFT names.
    public var trainableParameters: [NamedParameter] {
        adapters.flatMap { entry in
            entry.adapter.namedParameters().map { ("base_model.model.\(entry.module).\($0.name)", $0.parameter) }
        }
    }

    /// Number of trainable scalars (A and B of every adapter).
    public var trainableCount: Int { trainableParameters.reduce(0) { $0 + $1.parameter.count } }

    /// Switches adapter dropout on or off.
    public func setTraining(_ on: Bool) { for e in adapters { e.adapter.training = on } }

    /// Seeds the adapters' dropout masks for the next forward (each adapter its own, from `seed`).
    public func setDropoutSeed(_ seed: UInt64) {
        for (i, e) in adapters.enumerated() { e.adapter.dropoutSeed = Dropout.seed(seed, UInt64(i)) }
    }

    /// Writes `adapter_model.safetensors` and `adapter_config.json` into `dir`.
    public func save(to dir: String, baseModel: String? = nil) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var w = SafetensorsWriter(metadata: ["format": "pt"])
        for (name, p) in trainableParameters { try w.add(name, HostTensor(shape: p.shape, values: p.value.scalars)) }
        try w.write(to: dir + "/adapter_model.safetensors")
        var json: [String: Any] = [
            "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": config.rank, "lora_alpha": config.alpha,
            "lora_dropout": config.dropout, "target_modules": config.targets, "bias": "none", "fan_in_fan_out": false,
            "inference_mode": true, "init_lora_weights": true,
        ]
        if let baseModel { json["base_model_name_or_path"] = baseModel }
        let data = try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        try AtomicFile.write(data, to: dir + "/adapter_config.json")
    }

    /// Reads `adapter_config.json` of an adapter folder.
    public static func readConfig(_ dir: String) throws -> LoRAConfig {
        let path = dir + "/adapter_config.json"
        guard let data = FileManager.default.contents(atPath: path) else { throw ToolkitError.file(path, "cannot read") }
        guard let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ToolkitError.file(path, "not a JSON object")
        }
        if let type = obj["peft_type"], (type as? String)?.uppercased() != "LORA" {
            throw ToolkitError.file(path, "key peft_type: '\(type)' is not LORA (only LoRA adapters can be loaded or merged)")
        }
        guard let r = obj["r"] as? Int else { throw ToolkitError.file(path, "key r: missing or not an integer") }
        guard r >= 1, r <= 65536 else { throw ToolkitError.file(path, "key r: \(r) is outside 1...65536") }
        guard let alpha = (obj["lora_alpha"] as? NSNumber)?.doubleValue else {
            throw ToolkitError.file(path, "key lora_alpha: missing or not a number")
        }
        let targets: [String]
        if let list = obj["target_modules"] as? [String] { targets = list }
        else if let one = obj["target_modules"] as? String { targets = [one] }
        else { throw ToolkitError.file(path, "key target_modules: missing or not a list of strings") }
        if let bad = targets.first(where: { !LoRAConfig.isModuleName($0) }) {
            throw ToolkitError.file(path, "key target_modules: '\(bad)' is not a module name")
        }
        let dropout = (obj["lora_dropout"] as? NSNumber)?.doubleValue ?? 0
        let cfg = LoRAConfig(rank: r, alpha: alpha, dropout: dropout, targets: targets)
        do { try cfg.validate() } catch let e as ToolkitError { throw ToolkitError.file(path, e.message) }
        return cfg
    }

    /// Attaches the adapters saved in `dir` to `model` (which must be the base they were trained on).
    public static func load(from dir: String, into model: DecoderModel) throws -> LoRAModel {
        let lora = try LoRAModel(attachingTo: model, config: readConfig(dir))
        let path = dir + "/adapter_model.safetensors"
        let tensors = try SafetensorsFile(path: path).loadAll()
        let params = lora.trainableParameters
        let expected = Set(params.map(\.name))
        if let extra = tensors.keys.sorted().first(where: { !expected.contains($0) }) {
            throw ToolkitError.file(path, "unexpected tensor \(extra) (adapter for a different model?)")
        }
        for (name, p) in params {
            guard let t = tensors[name] else { throw ToolkitError.file(path, "missing tensor \(name)") }
            guard t.shape == p.shape else {
                throw ToolkitError.file(path, "tensor \(name) has shape \(t.shape), the model expects \(p.shape)")
            }
            try p.assign(Tensor(shape: t.shape, values: t.values))
        }
        return lora
    }

    /// Folds every adapter into its base weight (`W += (α/r)·B·A`) and detaches the adapters.
    public func merge() throws {
        for e in adapters {
            let w = e.linear.weight
            let merged = try GradMode.withoutGrad { try w.value.detached() + e.adapter.deltaWeight() }
            try w.assign(merged)
            e.linear.adapter = nil
        }
        adapters = []
    }
}
