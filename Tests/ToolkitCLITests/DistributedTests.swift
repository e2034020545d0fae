import Checkpointing
import Foundation
import Testing
import _TestSupport

/// `mpirun -np 2 toolkit train` against one process with the same global batch.
///
/// Bound: both runs sum the same two micro-batch gradients, but one process accumulates the second
/// into the first inside the backward kernels while MPI adds two finished buffers, so each gradient
/// element differs by a few fp32 ulps and the losses by `Tolerance.Training.reorderedLoss` (its
/// derivation is beside it). A real fault (a rank's gradients missing from the sum, a wrong scale,
/// the same micro-batch on both ranks) moves the losses by 1e-3 or more from the first step on.
@Suite(.serialized) struct DistributedTests {
    static let mpiEnvironment = ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
                                 "OMPI_MCA_rmaps_base_oversubscribe": "1"]

    static func mpirun(_ args: [String], ranks: Int = 2) throws -> (code: Int32, out: String, err: String) {
        try CLI.run(args, environment: mpiEnvironment, launcher: ["mpirun", "-np", "\(ranks)"])
    }

    static func losses(_ run: String) throws -> [Double] {
        try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8).split(whereSeparator: \.isNewline).compactMap {
            try CLI.json(String($0))["loss"] as? Double
        }
    }

    static func shards(in tmp: URL) throws -> String {
        var text = ""
        var rng = UInt64(7)
        let words = ["the", "model", "learns", "a", "token", "from", "data", "and", "then", "another", "one", "slowly"]
        for _ in 0..<6000 { rng = rng &* 6364136223846793005 &+ 1442695040888963407; text += words[Int(rng >> 60) % words.count] + " " }
        let corpus = tmp.appendingPathComponent("corpus.txt").path
        try text.write(toFile: corpus, atomically: true, encoding: .utf8)
        let tok = tmp.appendingPathComponent("tok.json").path
        #expect(try CLI.run(["train-tokenizer", "--input", corpus, "--vocab-size", "300", "--out", tok]).code == 0)
        let shards = tmp.appendingPathComponent("shards").path
        #expect(try CLI.run(["shard", "--tokenizer", tok, "--input", corpus, "--out", shards, "--shard-tokens", "3000",
                             "--val-fraction", "0.1"]).code == 0)
        return shards
    }

    @Test func twoRanksEqualOneProcessWithGradAccumulation() throws {
        let tmp = CLI.temp("mpi"), shards = try Self.shards(in: tmp)
        let common = ["--recipe", "nano", "--set", "model.vocab_size=300", "--data", shards, "--batch-size", "2", "--seq-len", "32",
                      "--grad-accum", "2", "--lr", "0.003", "--save-every", "10", "--schedule", "constant", "--warmup", "0"]
        let one = tmp.appendingPathComponent("one").path, two = tmp.appendingPathComponent("two").path
        let a = try CLI.run(["train"] + common + ["--steps", "20", "--out", one])
        #expect(a.code == 0, "\(a.err)")
        let b = try Self.mpirun(["train"] + common + ["--steps", "20", "--out", two])
        #expect(b.code == 0, "\(b.err)")
        let la = try Self.losses(one), lb = try Self.losses(two)
        #expect(la.count == 20 && lb.count == 20)
        for (i, (x, y)) in zip(la, lb).enumerated() { #expect(abs(x - y) < Tolerance.Training.reorderedLoss, "step \(i + 1): \(x) vs \(y)") }
        // A run saved with 2 ranks resumes in one process (and the other way) on the same batches.
        let mixed = tmp.appendingPathComponent("mixed").path
        #expect(try Self.mpirun(["train"] + common + ["--steps", "10", "--out", mixed]).code == 0)
        let r = try CLI.run(["train", "--resume", mixed, "--data", shards, "--steps", "20"])
        #expect(r.code == 0, "\(r.err)")
        let lm = try Self.losses(mixed)
        #expect(lm.count == 20)
        for (i, (x, y)) in zip(la, lm).enumerated() { #expect(abs(x - y) < Tolerance.Training.reorderedLoss, "resumed step \(i + 1): \(x) vs \(y)") }
        // MoE: an expert no token chose on any rank keeps no gradient, and the optimizer skips it
        // exactly as in one process.
        let moe = ["--recipe", "nano-moe", "--set", "model.vocab_size=300", "--set", "model.mlp.experts=16", "--data", shards, "--batch-size", "1", "--seq-len", "8",
                   "--grad-accum", "2", "--lr", "0.003", "--schedule", "constant", "--warmup", "0", "--steps", "12"]
        let m1 = tmp.appendingPathComponent("moe1").path, m2 = tmp.appendingPathComponent("moe2").path
        #expect(try CLI.run(["train"] + moe + ["--out", m1]).code == 0)
        #expect(try Self.mpirun(["train"] + moe + ["--out", m2]).code == 0)
        for (i, (x, y)) in zip(try Self.losses(m1), try Self.losses(m2)).enumerated() {
            #expect(abs(x - y) < Tolerance.Training.reorderedLoss, "moe step \(i + 1): \(x) vs \(y)")
        }
        // grad_accum must split evenly over the ranks; every rank reports it and the job ends non-zero.
        let bad = try Self.mpirun(["train"] + common.map { $0 == "2" ? "3" : $0 } + ["--steps", "2", "--out", tmp.appendingPathComponent("bad").path])
        #expect(bad.code != 0 && bad.err.contains("must be a multiple of the number of processes (2)"), "\(bad.err)")
    }

    /// The largest difference between two runs' final weights.
    static func weightDifference(_ a: String, _ b: String, step: Int) throws -> Float {
        let name = String(format: "step-%07d/model.safetensors", step)
        let x = try SafetensorsFile(path: a + "/" + name).loadAll(), y = try SafetensorsFile(path: b + "/" + name).loadAll()
        #expect(x.keys.sorted() == y.keys.sorted())
        return x.reduce(0) { worst, entry in
            zip(entry.value.values, y[entry.key]?.values ?? []).reduce(worst) { max($0, abs($1.0 - $1.1)) }
        }
    }

    /// Overlapped buckets, sums after the backward, and ZeRO-1 against each other and against one
    /// process, for AdamW and Muon over 20 steps.
    ///
    /// Bounds: with two ranks every gradient element is a + b whichever collective sums it
    /// (allreduce in buckets, allreduce after the backward, reduce to the owner), and IEEE addition
    /// commutes, so overlap on and off give bit-identical weights (asserted == 0). ZeRO-1 sums the
    /// squared gradient norm as two Double partial sums instead of one running sum, which moves the
    /// clipping factor by at most one Float ulp a step (`Tolerance.Training.shardedOptimizerWeights`).
    /// Against one process the bound of the suite's header applies (`Tolerance.Training.reorderedLoss`).
    @Test func overlapAndShardedOptimizerMatch() throws {
        let tmp = CLI.temp("mpi-zero"), shards = try Self.shards(in: tmp)
        for optimizer in ["adamw", "muon"] {
            let common = ["--recipe", "nano", "--set", "model.vocab_size=300", "--data", shards, "--batch-size", "2", "--seq-len", "32",
                          "--grad-accum", "2", "--lr", "0.003", "--schedule", "constant", "--warmup", "0", "--optimizer", optimizer,
                          "--grad-clip", "0.5", "--bucket-mb", "0.02"]
            func run(_ name: String, _ extra: [String], ranks: Int?) throws -> String {
                let out = tmp.appendingPathComponent("\(optimizer)-\(name)").path
                let args = ["train"] + common + ["--steps", "20", "--out", out] + extra
                let r = try ranks.map { try Self.mpirun(args, ranks: $0) } ?? CLI.run(args)
                #expect(r.code == 0, "\(name): \(r.err)")
                return out
            }
            let one = try run("one", [], ranks: nil)
            let overlapped = try run("overlap", [], ranks: 2)
            let after = try run("after", ["--no-overlap"], ranks: 2)
            let sharded = try run("zero1", ["--shard-optimizer"], ranks: 2)
            #expect(try Self.weightDifference(overlapped, after, step: 20) == 0, "\(optimizer): overlap changed the sums")
            let zero = try Self.weightDifference(overlapped, sharded, step: 20)
            #expect(zero <= Tolerance.Training.shardedOptimizerWeights, "\(optimizer): ZeRO-1 weights differ by \(zero)")
            let reference = try Self.losses(one)
            #expect(reference.count == 20)
            for run in [overlapped, after, sharded] {
                let l = try Self.losses(run)
                #expect(l.count == 20)
                for (i, (x, y)) in zip(reference, l).enumerated() { #expect(abs(x - y) < Tolerance.Training.reorderedLoss, "\(run) step \(i + 1): \(x) vs \(y)") }
            }
            // A sharded optimizer state is saved whole: 10 steps on two ranks with ZeRO-1, then 10
            // more in one process, and the other way round, follow the one-process run.
            let halves: [(String, [String], Int?, [String], Int?)] = [("zero-then-one", ["--shard-optimizer"], 2, [], nil),
                                                                       ("one-then-zero", [], nil, ["--shard-optimizer"], 2)]
            for (name, firstExtra, firstRanks, secondExtra, secondRanks) in halves {
                let out = tmp.appendingPathComponent("\(optimizer)-\(name)").path
                let first = ["train"] + common + ["--steps", "10", "--out", out] + firstExtra
                #expect(try (firstRanks.map { try Self.mpirun(first, ranks: $0) } ?? CLI.run(first)).code == 0)
                let second = ["train", "--resume", out, "--data", shards, "--steps", "20"] + secondExtra
                let r = try secondRanks.map { try Self.mpirun(second, ranks: $0) } ?? CLI.run(second)
                #expect(r.code == 0, "\(name): \(r.err)")
                let l = try Self.losses(out)
                #expect(l.count == 20)
                for (i, (x, y)) in zip(reference, l).enumerated() { #expect(abs(x - y) < Tolerance.Training.reorderedLoss, "\(name) step \(i + 1): \(x) vs \(y)") }
            }
        }
    }

    /// `mpirun -np 2 toolkit compare` trains runs 1, 3 on rank 0 and 2, 4 on rank 1 and writes the
    /// serial compare's report. Each run is one process either way, but a rank runs its products on
    /// one core where the serial compare uses two, and a split reduction (a bias or norm gradient
    /// summed in two halves) rounds differently: the losses agree to `Tolerance.Training.reorderedLoss`,
    /// not bit for bit.
    @Test func compareSpreadsItsRunsOverRanks() throws {
        let tmp = CLI.temp("mpi-compare"), shards = try Self.shards(in: tmp)
        let args = ["compare", "nano", "vs", "nano-qwen3", "--data", shards, "--steps", "4", "--seeds", "2",
                    "--set", "model.vocab_size=300", "--set", "train.batch_size=2", "--set", "train.seq_len=32"]
        let serial = tmp.appendingPathComponent("serial").path
        let s = try CLI.run(args + ["--out", serial, "--json"])
        #expect(s.code == 0, "\(s.err)")
        // No --out: rank 0 names the (time-stamped) folder for both ranks.
        let m = try CLI.run(args + ["--json"], cwd: tmp, environment: Self.mpiEnvironment, launcher: ["mpirun", "-np", "2"])
        #expect(m.code == 0, "\(m.err)")
        let folders = try FileManager.default.contentsOfDirectory(atPath: tmp.appendingPathComponent("Checkpoints").path)
        #expect(folders.count == 1, "\(folders)")
        let spread = tmp.appendingPathComponent("Checkpoints/\(folders.first ?? "")").path
        #expect(FileManager.default.fileExists(atPath: spread + "/report.md"))
        let a = try CLI.json(s.out.split(whereSeparator: \.isNewline).last.map(String.init) ?? "")
        let b = try CLI.json(m.out.split(whereSeparator: \.isNewline).last.map(String.init) ?? "")
        #expect(m.out.split(whereSeparator: \.isNewline).count == 1, "only rank 0 prints: \(m.out)")
        #expect((a["variants"] as? [[String: Any]])?.compactMap { $0["name"] as? String }
                == (b["variants"] as? [[String: Any]])?.compactMap { $0["name"] as? String })
        for variant in ["nano", "nano-qwen3"] {
            for seed in 1...2 {
                let x = try Self.losses("\(serial)/\(variant)/seed-\(seed)"), y = try Self.losses("\(spread)/\(variant)/seed-\(seed)")
                #expect(x.count == 4 && y.count == 4)
                for (i, (p, q)) in zip(x, y).enumerated() { #expect(abs(p - q) < Tolerance.Training.reorderedLoss, "\(variant) seed \(seed) step \(i + 1): \(p) vs \(q)") }
            }
        }
    }

    @Test func allreduceBenchmarkRunsOnTwoRanks() throws {
        let r = try Self.mpirun(["bench", "allreduce", "--sizes", "1", "--repeats", "2", "--json"])
        #expect(r.code == 0, "\(r.err)")
        let out = try CLI.json(r.out.split(whereSeparator: \.isNewline).last.map(String.init) ?? "")
        #expect(out["ranks"] as? Int == 2)
        let row = (out["rows"] as? [[String: Any]])?.first
        #expect((row?["busGBPerSecond"] as? Double ?? 0) > 0)
        #expect((row?["reduceScatterAllgatherSeconds"] as? Double ?? 0) > 0)
        // Five ranks on two cores: segments of unequal size, and the sums are checked on every rank.
        let five = try Self.mpirun(["bench", "allreduce", "--sizes", "0.01", "--repeats", "1", "--json"], ranks: 5)
        #expect(five.code == 0, "\(five.err)")
    }

    /// One rank killed with -9 ends the whole job non-zero within a bounded time (OpenMPI's
    /// launcher tears the job down); SIGTERM to the ranks stops every rank at the same step, rank 0
    /// saves once, and the job ends non-zero (each rank exits 130).
    @Test func failuresEndTheJobAndSignalsStopItCleanly() throws {
        let tmp = CLI.temp("mpi-fail"), shards = try Self.shards(in: tmp)
        func start(_ out: String) throws -> Process {
            try CLI.start(["train", "--recipe", "nano", "--set", "model.vocab_size=300", "--data", shards, "--batch-size", "2",
                           "--seq-len", "32", "--grad-accum", "2", "--steps", "100000", "--out", out, "--json"],
                          environment: Self.mpiEnvironment, launcher: ["mpirun", "-np", "2"])
        }
        func waitForMetrics(_ out: String) {
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline, ((try? String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8)) ?? "").count < 200 {
                Thread.sleep(forTimeInterval: 0.05)
            }
        }
        func ranks(of launcher: Process) -> [Int32] {
            let ps = Process()
            ps.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            ps.arguments = ["pgrep", "-f", "-P", "\(launcher.processIdentifier)", "toolkit"]
            let o = Pipe()
            ps.standardOutput = o
            try? ps.run()
            ps.waitUntilExit()
            return String(decoding: o.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                .split(whereSeparator: \.isNewline).compactMap { Int32($0) }
        }
        // kill -9 of one rank
        let a = tmp.appendingPathComponent("killed").path
        let job = try start(a)
        waitForMetrics(a)
        let children = ranks(of: job)
        #expect(children.count == 2, "ranks: \(children)")
        if let victim = children.last { kill(victim, SIGKILL) }
        let killedAt = Date()
        let pid = job.processIdentifier
        DispatchQueue.global().asyncAfter(deadline: .now() + 60) { kill(pid, SIGKILL) }  // never hang the suite
        job.waitUntilExit()
        #expect(job.terminationStatus != 0)
        #expect(Date().timeIntervalSince(killedAt) < 30, "the job took \(Date().timeIntervalSince(killedAt)) s to end")
        // SIGTERM to the launcher (as a scheduler sends it)
        let b = tmp.appendingPathComponent("stopped").path
        let job2 = try start(b)
        waitForMetrics(b)
        // What the launcher forwards to every rank on SIGTERM. (The test runner starts children with
        // SIGTERM blocked, and mpirun, unlike the toolkit, does not unblock it, so it is sent to the ranks.)
        for rank in ranks(of: job2) { kill(rank, SIGTERM) }
        let stoppedAt = Date()
        let pid2 = job2.processIdentifier
        DispatchQueue.global().asyncAfter(deadline: .now() + 60) { kill(pid2, SIGKILL) }
        job2.waitUntilExit()
        #expect(job2.terminationStatus != 0)
        #expect(Date().timeIntervalSince(stoppedAt) < 30, "the job took \(Date().timeIntervalSince(stoppedAt)) s to stop")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: b)) ?? []).contains { $0.hasPrefix("step-") },
                "rank 0 saved a checkpoint on SIGTERM")
    }
}
