import ArgumentParser
import Foundation
import Models
import Optimizers
import TensorCore
import ToolkitSupport
import Training

struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Training throughput: tokens/s, achieved GFLOP/s (forward + backward + optimizer) and peak RSS.")

    @Option(help: "Recipe.") var recipe: String
    @Option(name: .customLong("set"), help: "Recipe override.") var overrides: [String] = []
    @Option(help: "Sequences per step.") var batchSize = 8
    @Option(help: "Tokens per sequence.") var seqLen = 256
    @Option(help: "Timed steps (after 2 warm-up steps).") var steps = 10
    @Option(help: ArgumentHelp("Optimizer: \(OptimizerCatalog.optimizerNames).")) var optimizer = "adamw"
    @Flag(help: "After the timed steps, time as many again with a busy process beside them (one core of integer work).")
    var contend = false
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        guard batchSize >= 1, seqLen >= 1, steps >= 1 else { throw ValidationError("sizes and --steps must be positive") }
    }

    struct Output: Codable {
        var recipe: String
        var batch_size: Int
        var seq_len: Int
        var steps: Int
        var tokens_per_s: Double
        var median_step_seconds: Double
        /// The fastest timed step: on a shared machine, interference only ever slows a step down,
        /// so A/B comparisons are steadier on this than on the median.
        var best_step_seconds: Double
        var best_tokens_per_s: Double
        var gflops: Double
        var flops_per_token: Double
        var peak_rss_bytes: Int
        var kernel: String
        var simd: String
        /// With --contend: the median step beside a busy process, and idle median / contended median.
        var contended_median_step_seconds: Double?
        var contended_ratio: Double?
    }

    func run() throws {
        BLASRuntime.setThreads(ProcessInfo.processInfo.activeProcessorCount)
        // Size the context (and a learned position table) to the benchmark's sequence length.
        var sizing = ["model.context_length=\(seqLen)"]
        if case .map(let pos)? = try Recipe.load(recipe, overrides: overrides).model["position"], pos["kind"] == .string("learned") {
            sizing.append("model.position.max_positions=\(seqLen)")
        }
        let r = try Recipe.load(recipe, overrides: overrides + sizing)
        let model = try ModelBuilder.build(r)
        var settings = TrainSettings()
        settings.steps = steps + 2 + (contend ? steps : 0)
        settings.batchSize = batchSize
        settings.seqLen = seqLen
        settings.optimizer = optimizer
        settings.warmup = 0
        settings.schedule = "constant"
        settings.lr = 1e-4
        let data = RandomTokens(vocabSize: model.dims.vocabSize)
        let trainer = try Trainer(model: model, data: data, settings: settings)
        var times: [Double] = [], busyTimes: [Double] = []
        var neighbour: SystemPolicy.BusyNeighbour?
        var last = monotonicSeconds()
        let idleSteps = steps
        trainer.onStep = { row, _ in
            let now = monotonicSeconds()
            if row.step > 2 + idleSteps { busyTimes.append(now - last) } else if row.step > 2 { times.append(now - last) }
            if contend && row.step == 2 + idleSteps { neighbour = SystemPolicy.BusyNeighbour() }
            last = monotonicSeconds()
        }
        _ = try trainer.run()
        neighbour?.stop()
        if contend && busyTimes.isEmpty { throw ValidationError("--contend: could not start the busy process") }
        let stats = ModelStats(model: model, batchSize: batchSize)
        let med = Stats.median(times)
        let tokens = Double(batchSize * seqLen)
        let out = Output(recipe: r.name, batch_size: batchSize, seq_len: seqLen, steps: steps, tokens_per_s: tokens / med,
                         median_step_seconds: med, best_step_seconds: times.min() ?? med,
                         best_tokens_per_s: tokens / (times.min() ?? med), gflops: 3 * stats.flopsPerToken * tokens / med / 1e9,
                         flops_per_token: stats.flopsPerToken, peak_rss_bytes: peakRSSBytes(), kernel: BLASRuntime.kernelName,
                         simd: SIMDLevel.current.rawValue,
                         contended_median_step_seconds: busyTimes.isEmpty ? nil : Stats.median(busyTimes),
                         contended_ratio: busyTimes.isEmpty ? nil : med / Stats.median(busyTimes))
        if json { print(try jsonLine(out)) } else {
            print(String(format: "%@ B=%d T=%d: %.0f tok/s (median step %.1f ms over %d; best %.0f tok/s), %.1f GFLOP/s, peak RSS %.0f MiB, BLAS %@",
                         out.recipe, batchSize, seqLen, out.tokens_per_s, med * 1e3, steps, out.best_tokens_per_s, out.gflops,
                         Double(out.peak_rss_bytes) / 1_048_576, out.kernel) + ", SIMD \(out.simd)")
            if let busy = out.contended_median_step_seconds {
                print(String(format: "  beside a busy process: median step %.1f ms (%.0f tok/s), %.2f× the idle speed",
                             busy * 1e3, tokens / busy, out.contended_ratio ?? 0))
            }
        }
    }
}

/// Seeded random tokens (benchmarks only).
struct RandomTokens: TrainingData {
    let vocabSize: Int
    var tokenizerHash: String? { nil }
    func batch(step: Int, micro: Int, settings: TrainSettings, seqLen: Int) throws -> Batch {
        var rng = SplitMix64(seed: UInt64(step))
        let n = settings.batchSize * seqLen
        let input = (0..<n).map { _ in Int32(rng.nextInt(below: vocabSize)) }
        let targets = (0..<n).map { _ in Int32(rng.nextInt(below: vocabSize)) }
        return Batch(input: input, targets: targets, rows: settings.batchSize)
    }
    func validation(settings: TrainSettings, seqLen: Int) throws -> [Batch] { [] }
}
