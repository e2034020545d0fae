import Layers
import Models
import Optimizers
import ToolkitSupport

/// Training hyper-parameters. Every field can be set in a recipe's `train:` block (snake_case key)
/// and overridden by the matching `toolkit train` flag (kebab-case). Unset optimizer settings take
/// PyTorch's defaults (Adam/AdamW betas 0.9, 0.999; eps 1e-8; lr 1e-3; SGD momentum 0; AdamW
/// weight decay 0.01).
public struct TrainSettings: Codable, Equatable, Sendable {
    public var steps = 100
    public var batchSize = 8
    /// Tokens per sequence; nil = the model's context length.
    public var seqLen: Int?
    public var gradAccum = 1
    public var optimizer = "adamw"
    public var lr = 1e-3
    /// Floor of the decay; nil = 0.
    public var minLR: Double?
    public var weightDecay: Double?
    public var momentum: Double?
    public var betas: [Double] = [0.9, 0.999]
    public var eps = 1e-8
    public var warmup = 0
    public var schedule = "cosine"
    /// Fraction of steps WSD spends decaying.
    public var decayFraction = 0.2
    /// 0 = no clipping.
    public var gradClip = 1.0
    public var evalEvery = 0
    public var evalBatches = 8
    /// 0 = only at the end.
    public var saveEvery = 0
    public var keepCheckpoints = 2
    public var seed: UInt64 = 1337
    public var order = "random"
    /// Muon's learning rate for hidden matrices (the AdamW fallback uses `lr`).
    public var muonLR = 0.02
    /// Recompute each block's activations in the backward instead of keeping them (nil: off).
    public var activationCheckpointing: Bool?

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case steps, batchSize = "batch_size", seqLen = "seq_len", gradAccum = "grad_accum", optimizer, lr
        case minLR = "min_lr", weightDecay = "weight_decay", momentum, betas, eps, warmup, schedule
        case decayFraction = "decay_fraction", gradClip = "grad_clip", evalEvery = "eval_every"
        case evalBatches = "eval_batches", saveEvery = "save_every", keepCheckpoints = "keep_checkpoints", seed, order
        case muonLR = "muon_lr"
        case activationCheckpointing = "activation_checkpointing"
    }

    public init() {}

    /// Reads a recipe's `train:` block strictly (unknown keys and wrong types name the key path).
    public init(recipe: Recipe) throws {
        var o = ComponentOptions(path: "\(recipe.path): train", values: recipe.train)
        try apply(&o)
        try o.finish()
    }

    /// Applies the keys present in `o` (recipe block or CLI flags converted to the same keys).
    public mutating func apply(_ o: inout ComponentOptions) throws {
        if let v = try o.optionalInt("steps") { steps = v }
        if let v = try o.optionalInt("batch_size") { batchSize = v }
        if let v = try o.optionalInt("seq_len") { seqLen = v }
        if let v = try o.optionalInt("grad_accum") { gradAccum = v }
        if let v = try o.optionalString("optimizer") { optimizer = v }
        if let v = try o.optionalDouble("lr") { lr = v }
        if let v = try o.optionalDouble("min_lr") { minLR = v }
        if let v = try o.optionalDouble("weight_decay") { weightDecay = v }
        if let v = try o.optionalDouble("momentum") { momentum = v }
        if let v = try o.optionalDoubles("betas") { betas = v }
        if let v = try o.optionalDouble("eps") { eps = v }
        if let v = try o.optionalInt("warmup") { warmup = v }
        if let v = try o.optionalString("schedule") { schedule = v }
        if let v = try o.optionalDouble("decay_fraction") { decayFraction = v }
        if let v = try o.optionalDouble("grad_clip") { gradClip = v }
        if let v = try o.optionalInt("eval_every") { evalEvery = v }
        if let v = try o.optionalInt("eval_batches") { evalBatches = v }
        if let v = try o.optionalInt("save_every") { saveEvery = v }
        if let v = try o.optionalInt("keep_checkpoints") { keepCheckpoints = v }
        if let v = try o.optionalInt("seed") { seed = UInt64(truncatingIfNeeded: v) }
        if let v = try o.optionalString("order") { order = v }
        if let v = try o.optionalDouble("muon_lr") { muonLR = v }
        if let v = try o.optionalBool("activation_checkpointing") { activationCheckpointing = v }
        try validate(o)
    }

    func validate(_ o: ComponentOptions) throws {
        func check(_ ok: Bool, _ key: String, _ msg: String) throws { if !ok { throw o.error(key, msg) } }
        try check(steps >= 1, "steps", "must be at least 1")
        try check(batchSize >= 1, "batch_size", "must be at least 1")
        try check((seqLen ?? 1) >= 1, "seq_len", "must be at least 1")
        try check(gradAccum >= 1, "grad_accum", "must be at least 1")
        try check(OptimizerCatalog.optimizer(optimizer) != nil, "optimizer", "'\(optimizer)' is not one of \(OptimizerCatalog.optimizerNames)")
        try check(lr >= 0 && lr.isFinite, "lr", "must be a non-negative number")
        try check((minLR ?? 0) >= 0, "min_lr", "must not be negative")
        try check((weightDecay ?? 0) >= 0, "weight_decay", "must not be negative")
        try check((momentum ?? 0) >= 0 && (momentum ?? 0) < 1, "momentum", "must be in [0, 1)")
        try check(betas.count == 2 && betas.allSatisfy { $0 >= 0 && $0 < 1 }, "betas", "must be two numbers in [0, 1)")
        try check(eps >= 0, "eps", "must not be negative")
        try check(warmup >= 0, "warmup", "must not be negative")
        try check(OptimizerCatalog.schedule(schedule) != nil, "schedule", "'\(schedule)' is not one of \(OptimizerCatalog.scheduleNames)")
        try check(decayFraction > 0 && decayFraction <= 1, "decay_fraction", "must be in (0, 1]")
        try check(gradClip >= 0, "grad_clip", "must not be negative (0 = off)")
        try check(evalEvery >= 0 && evalBatches >= 1, "eval_every", "eval_every must be >= 0 and eval_batches >= 1")
        try check(saveEvery >= 0, "save_every", "must not be negative")
        try check(keepCheckpoints >= 1, "keep_checkpoints", "must be at least 1")
        try check(["random", "sequential"].contains(order), "order", "'\(order)' is not random or sequential")
        try check(muonLR >= 0, "muon_lr", "must not be negative")
    }
}
