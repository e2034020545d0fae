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
        abstract: "Training throughput: tokens/s, achieved GFLOP/s (forward + backward + optimizer) and peak RSS.",
        discussion: """
            Under mpirun every rank trains its share of each step's micro-batches (--grad-accum, by default the \
            number of ranks) and rank 0 reports the job's tokens/s. --ranks 1,2 runs the benchmark under \
            mpirun once per rank count, each rank on one core with one thread and the same global batch, and \
            reports the scaling against the first count.
            """)

    @Option(help: "Recipe.") var recipe: String
    @Option(name: .customLong("set"), help: "Recipe override.") var overrides: [String] = []
    @Option(help: "Sequences per step.") var batchSize = 8
    @Option(help: "Tokens per sequence.") var seqLen = 256
    @Option(help: "Timed steps (after 2 warm-up steps).") var steps = 10
    @Option(help: ArgumentHelp("Optimizer: \(OptimizerCatalog.optimizerNames).")) var optimizer = "adamw"
    @Flag(help: "After the timed steps, time as many again with a busy process beside them (one core of integer work).")
    var contend = false
    @Option(help: "Micro-batches of --batch-size per step (default: the ranks of the job, or the largest of --ranks).")
    var gradAccum: Int?
    @Option(help: "Threads for the products (default: the cores this process may use).") var threads: Int?
    @Option(help: "Run under mpirun with each of these rank counts (e.g. 1,2) and report the scaling.") var ranks: String?
    @Option(help: "Extra mpirun arguments with --ranks, e.g. \"--mca btl tcp,self\".") var mpiArgs = ""
    @OptionGroup(title: "Data parallel (mpirun)") var parallel: DataParallelFlags
    @Flag(help: "Recompute each block in the backward (train --activation-checkpointing).") var activationCheckpointing = false
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        guard batchSize >= 1, seqLen >= 1, steps >= 1 else { throw ValidationError("sizes and --steps must be positive") }
        if let gradAccum, gradAccum < 1 { throw ValidationError("--grad-accum must be positive") }
        if let threads, threads < 1 { throw ValidationError("--threads must be positive") }
        if ranks != nil {
            let counts = try rankCounts()
            if let g = gradAccum, let bad = counts.first(where: { g % $0 != 0 }) {
                throw ValidationError("--grad-accum \(g) does not split over \(bad) ranks")
            }
        }
    }

    func rankCounts() throws -> [Int] {
        let counts = (ranks ?? "").split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !counts.isEmpty, counts.allSatisfy({ ($0 ?? 0) >= 1 && ($0 ?? 0) <= 1024 }) else {
            throw ValidationError("--ranks: a comma-separated list of rank counts (1 to 1024), got '\(ranks ?? "")'")
        }
        return counts.map { $0! }
    }

    struct Output: Codable {
        var recipe: String
        var ranks: Int
        var batch_size: Int
        var grad_accum: Int
        var seq_len: Int
        var steps: Int
        var tokens_per_s: Double
        var median_step_seconds: Double
        /// The fastest timed step: on a shared machine, interference only ever slows a step down,
        /// so A/B comparisons are steadier on this than on the median.
        var best_step_seconds: Double
        var best_tokens_per_s: Double
        /// Every timed step, in order (idle steps; not the --contend ones).
        var step_seconds: [Double]
        var gflops: Double
        var flops_per_token: Double
        var peak_rss_bytes: Int
        /// The optimizer state this process (rank 0) holds.
        var optimizer_state_bytes: Int
        var kernel: String
        var simd: String
        /// With --contend: the median step beside a busy process, and idle median / contended median.
        /// Under mpirun: the median time a step waited for gradient/parameter traffic after its backward.
        var median_wait_seconds: Double?
        var contended_median_step_seconds: Double?
        var contended_ratio: Double?
    }

    func run() throws {
        if ranks != nil { return try runScaling() }
        let comm = Job.world
        BLASRuntime.setThreads(threads ?? ProcessInfo.processInfo.activeProcessorCount)
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
        settings.gradAccum = gradAccum ?? comm.size
        if activationCheckpointing { settings.activationCheckpointing = true }
        let data = RandomTokens(vocabSize: model.dims.vocabSize)
        let trainer = try Trainer(model: model, data: data, settings: settings, communicator: comm, parallel: parallel.options)
        var times: [Double] = [], busyTimes: [Double] = [], waits: [Double] = []
        var neighbour: SystemPolicy.BusyNeighbour?
        var last = monotonicSeconds()
        let idleSteps = steps
        trainer.onStep = { [unowned trainer] row, _ in
            let now = monotonicSeconds()
            if row.step > 2 + idleSteps { busyTimes.append(now - last) } else if row.step > 2 {
                times.append(now - last)
                waits.append(trainer.lastStepWaitSeconds)
            }
            if contend && row.step == 2 + idleSteps { neighbour = SystemPolicy.BusyNeighbour() }
            last = monotonicSeconds()
        }
        _ = try trainer.run()
        neighbour?.stop()
        if contend && busyTimes.isEmpty { throw ValidationError("--contend: could not start the busy process") }
        let stats = ModelStats(model: model, batchSize: batchSize)
        let med = Stats.median(times)
        let tokens = Double(batchSize * seqLen * settings.gradAccum)
        (comm as? MPICommunicator)?.finalize()
        guard comm.isRoot else { return }
        let out = Output(recipe: r.name, ranks: comm.size, batch_size: batchSize, grad_accum: settings.gradAccum, seq_len: seqLen,
                         steps: steps, tokens_per_s: tokens / med,
                         median_step_seconds: med, best_step_seconds: times.min() ?? med,
                         best_tokens_per_s: tokens / (times.min() ?? med), step_seconds: times, gflops: 3 * stats.flopsPerToken * tokens / med / 1e9,
                         flops_per_token: stats.flopsPerToken, peak_rss_bytes: peakRSSBytes(),
                         optimizer_state_bytes: trainer.optimizer.stateTensors().values.reduce(0) { $0 + 4 * $1.values.count }, kernel: BLASRuntime.kernelName,
                         simd: SIMDLevel.current.rawValue, median_wait_seconds: comm.size > 1 ? Stats.median(waits) : nil,
                         contended_median_step_seconds: busyTimes.isEmpty ? nil : Stats.median(busyTimes),
                         contended_ratio: busyTimes.isEmpty ? nil : med / Stats.median(busyTimes))
        if json { print(try jsonLine(out)) } else {
            print(String(format: "%@ B=%d×%d T=%d: %.0f tok/s (median step %.1f ms over %d; best %.0f tok/s), %.1f GFLOP/s, peak RSS %.0f MiB, optimizer state %.0f MiB, BLAS %@",
                         out.recipe, batchSize, settings.gradAccum, seqLen, out.tokens_per_s, med * 1e3, steps, out.best_tokens_per_s, out.gflops,
                         Double(out.peak_rss_bytes) / 1_048_576, Double(out.optimizer_state_bytes) / 1_048_576, out.kernel) + ", SIMD \(out.simd)"
                  + (comm.size > 1 ? String(format: ", %d ranks, waited %.1f ms a step for the sums", comm.size, Stats.median(waits) * 1e3) : ""))
            if let busy = out.contended_median_step_seconds {
                print(String(format: "  beside a busy process: median step %.1f ms (%.0f tok/s), %.2f× the idle speed",
                             busy * 1e3, tokens / busy, out.contended_ratio ?? 0))
            }
        }
    }
}

extension BenchTrain {
    struct ScalingRow: Codable {
        var ranks: Int
        var tokens_per_s: Double
        var median_step_seconds: Double
        var median_wait_seconds: Double?
        var scaling: Double
    }

    /// `--ranks 1,2`: this benchmark under `mpirun -np N` for each N, one thread per rank, the same
    /// global batch; the scaling is tokens/s against the first count's.
    func runScaling() throws {
        let counts = try rankCounts()
        func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }
        let accum = gradAccum ?? counts.reduce(1) { $0 / gcd($0, $1) * $1 }  // every count divides it
        var args = ["bench", "train", "--recipe", recipe] + overrides.flatMap { ["--set", $0] }
        args += ["--batch-size", "\(batchSize)", "--seq-len", "\(seqLen)", "--steps", "\(steps)", "--optimizer", optimizer,
                 "--grad-accum", "\(accum)", "--threads", "1", "--json", "--bucket-mb", "\(parallel.bucketMb)"]
        if parallel.noOverlap { args.append("--no-overlap") }
        if parallel.shardOptimizer { args.append("--shard-optimizer") }
        var rows: [ScalingRow] = []
        for n in counts {
            let launcher = ["mpirun", "-np", "\(n)", "--bind-to", "core"] + mpiArgs.split(separator: " ").map(String.init)
            let child = Process()
            child.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            child.arguments = launcher + [URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path] + args
            let out = Pipe()
            child.standardOutput = out
            do { try child.run() } catch { throw ToolkitError("cannot start mpirun (install openmpi-bin): \(error)") }
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            child.waitUntilExit()
            guard child.terminationStatus == 0, let line = text.split(whereSeparator: \.isNewline).last,
                  let o = try? JSONDecoder().decode(Output.self, from: Data(line.utf8)) else {
                throw ToolkitError("mpirun -np \(n) … bench train failed (exit \(child.terminationStatus)); its messages are above")
            }
            let row = ScalingRow(ranks: n, tokens_per_s: o.tokens_per_s, median_step_seconds: o.median_step_seconds,
                                 median_wait_seconds: o.median_wait_seconds,
                                 scaling: rows.first.map { o.tokens_per_s / $0.tokens_per_s } ?? 1)
            rows.append(row)
            if !json {
                print(String(format: "%d rank%@ × 1 thread, global batch %d×%d×%d: %.0f tok/s (median step %.1f ms%@), %.2f×",
                             n, n == 1 ? "" : "s", batchSize, accum, seqLen, row.tokens_per_s, row.median_step_seconds * 1e3,
                             row.median_wait_seconds.map { String(format: ", waiting %.1f ms", $0 * 1e3) } ?? "", row.scaling))
            }
        }
        if json { print(try jsonLine(rows)) }
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
