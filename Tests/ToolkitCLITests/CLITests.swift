import Foundation
import Testing
import _TestSupport

/// End-to-end checks of the `toolkit` binary that `swift test` builds next to the test bundle.
enum CLI {
    static var binary: URL {
        var dir = URL(fileURLWithPath: CommandLine.arguments.first ?? "").deletingLastPathComponent()
        for _ in 0..<3 {
            let candidate = dir.appendingPathComponent("toolkit")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            dir.deleteLastPathComponent()
        }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".build/debug/toolkit")
    }

    static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// Starts the tool without waiting; `launcher` runs it through another program (e.g.
    /// `["mpirun", "-np", "2"]`); output goes to the given handles (pipes, or nowhere).
    static func start(_ args: [String], cwd: URL = packageRoot, environment: [String: String] = [:], launcher: [String] = [],
                      stdin: Any? = nil, stdout: Any = FileHandle.nullDevice, stderr: Any = FileHandle.nullDevice) throws -> Process {
        let p = Process()
        if let stdin { p.standardInput = stdin }
        p.executableURL = launcher.isEmpty ? binary : URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = launcher.isEmpty ? args : launcher + [binary.path] + args
        if !environment.isEmpty {
            p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        p.currentDirectoryURL = cwd
        p.standardOutput = stdout
        p.standardError = stderr
        try p.run()
        return p
    }

    /// Runs the tool to the end; returns (exit code, stdout, stderr).
    @discardableResult
    static func run(_ args: [String], cwd: URL = packageRoot, environment: [String: String] = [:], launcher: [String] = [],
                    input: String? = nil) throws
        -> (code: Int32, out: String, err: String)
    {
        let o = Pipe(), e = Pipe(), i = Pipe()
        let p = try start(args, cwd: cwd, environment: environment, launcher: launcher, stdin: input == nil ? nil : i, stdout: o, stderr: e)
        if let input {
            i.fileHandleForWriting.write(Data(input.utf8))
            try i.fileHandleForWriting.close()
        }
        let out = o.fileHandleForReading.readDataToEndOfFile(), err = e.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
    }

    static func json(_ s: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(s.utf8)) as? [String: Any] ?? [:]
    }

    static func temp(_ tag: String) -> URL {
        let u = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(tag)-\(UUID())")
        try? FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
        return u
    }

    /// A toy tokenizer (300 ids) trained on a few repeated sentences, written to `out`.
    static func toyTokenizer(_ tmp: URL, out: String) throws {
        var text = ""
        for i in 0..<300 { text += "the cat sat on the mat \(i % 7) and the dog ran to the park.\n" }
        let corpus = tmp.appendingPathComponent("c.txt").path
        try text.write(toFile: corpus, atomically: true, encoding: .utf8)
        #expect(try run(["train-tokenizer", "--input", corpus, "--vocab-size", "300", "--out", out]).code == 0)
    }

    /// A `nano` checkpoint at `tmp/name` with the toy tokenizer inside it.
    static func toyCheckpoint(_ tmp: URL, name: String = "m") throws -> String {
        let model = tmp.appendingPathComponent(name).path
        #expect(try run(["build", "--recipe", "nano", "--set", "model.vocab_size=300", "--out", model]).code == 0)
        try toyTokenizer(tmp, out: model + "/tokenizer.json")
        return model
    }
}

@Suite(.serialized) struct CLITests {
    /// `build` checks the train: block as well; an export that cannot represent a setting refuses,
    /// naming it (a GPT-2-shaped model with a sliding window is no HF gpt2).
    @Test func buildChecksTrainAndExportRefusesWhatItCannotWrite() throws {
        let b = try CLI.run(["build", "--recipe", "nano", "--no-save", "--set", "train.lr=-1"])
        #expect(b.code != 0 && b.err.contains("nano.yaml: train.lr"), "\(b.err)")
        let tmp = CLI.temp("export")
        let ckpt = tmp.appendingPathComponent("ckpt").path
        #expect(try CLI.run(["build", "--recipe", "nano", "--set", "model.attention.window=16", "--out", ckpt]).code == 0)
        let e = try CLI.run(["export", "--checkpoint", ckpt, "--format", "hf", "--out", tmp.appendingPathComponent("hf").path])
        #expect(e.code != 0 && e.err.contains("gpt2") && e.err.contains("window"), "\(e.err)")
    }

    /// A model whose weights exceed the memory limit is refused before anything is allocated.
    @Test func memoryLimitIsCheckedBeforeBuilding() throws {
        let r = try CLI.run(["build", "--recipe", "qwen3-small", "--no-save", "--max-memory", "1M"])
        #expect(r.code != 0 && r.err.contains("qwen3-small.yaml: model.hidden_size") && r.err.contains("more than the 1.00 MiB"))
        let env = try CLI.run(["build", "--recipe", "qwen3-small", "--no-save"], environment: ["TOOLKIT_MAX_MEMORY": "2M"])
        #expect(env.code != 0 && env.err.contains("TOOLKIT_MAX_MEMORY"))
        let bad = try CLI.run(["build", "--recipe", "nano", "--no-save", "--max-memory", "lots"])
        #expect(bad.code != 0 && bad.err.contains("--max-memory"))
    }

    /// README's Catalog section is `toolkit catalog --markdown`: the registries are the one source of
    /// the component kinds, optimizer and schedule names (with their defaults) and HF families.
    @Test func readmeCatalogIsTheRegistries() throws {
        let r = try CLI.run(["catalog", "--markdown"])
        #expect(r.code == 0)
        let readme = try String(contentsOf: CLI.packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        let begin = "<!-- toolkit catalog --markdown -->\n", end = "<!-- end of toolkit catalog -->"
        let section = readme.components(separatedBy: begin).dropFirst().first?.components(separatedBy: end).first
        #expect(section == r.out, "README's Catalog section differs from `toolkit catalog --markdown`; paste its output")
        #expect(r.out.contains("| adamw | 0.01 | 0 |") && r.out.contains("| llama | LlamaForCausalLM | llama3.2-1b |"))
        let plain = try CLI.run(["catalog"])
        #expect(plain.code == 0 && plain.out.contains("llama3") && plain.out.contains("wsd"))
    }

    /// Every SIMD level the CPU has can be forced, doctor reports it, and the BLAS check passes
    /// with the kernel that follows it; an unknown or unsupported level is a usage error.
    @Test func simdLevelsAreForcedAndReported() throws {
        let levels = try CLI.run(["doctor", "--simd-levels"])
        #expect(levels.code == 0)
        let names = levels.out.split(separator: "\n").map(String.init)
        #expect(names.contains("portable"))
        for level in names {
            let r = try CLI.run(["doctor", "--json", "--repeats", "1"], environment: ["TOOLKIT_SIMD": level])
            #expect(r.code == 0, "\(level): \(r.err)")
            let report = try CLI.json(r.out)
            #expect(report["simdLevel"] as? String == level)
            #expect(report["correct"] as? Bool == true)
        }
        let bad = try CLI.run(["doctor"], environment: ["TOOLKIT_SIMD": "sse9"])
        #expect(bad.code == 2 && bad.err.contains("TOOLKIT_SIMD=sse9"))
        let missing = ["avx512", "avx2", "neon"].first { !names.contains($0) }
        if let missing {
            let r = try CLI.run(["doctor"], environment: ["TOOLKIT_SIMD": missing])
            #expect(r.code == 2 && r.err.contains("does not support"))
        }
    }

    @Test func buildReportsExactParameterCounts() throws {
        let r = try CLI.run(["build", "--recipe", "gpt2-124m", "--no-save", "--json"])
        #expect(r.code == 0, "\(r.err)")
        let stats = try CLI.json(r.out)["stats"] as? [String: Any]
        #expect(stats?["totalParameters"] as? Int == 124_439_808)
    }

    @Test func badRecipesAndFlagsExitNonZeroWithTheKey() throws {
        let a = try CLI.run(["build", "--recipe", "gpt2", "--set", "model.attention.kv_heads=4", "--no-save"])
        #expect(a.code != 0 && a.err.contains("model.attention.kv_heads"))
        let b = try CLI.run(["build", "--recipe", "no-such-recipe", "--no-save"])
        #expect(b.code != 0 && b.err.contains("no-such-recipe"))
        let c = try CLI.run(["bench", "gemm", "--m", "0"])
        #expect(c.code != 0 && c.err.contains("--m"))
        let d = try CLI.run(["train", "--recipe", "nano", "--tokens", "x.json", "--lr", "-1"])
        #expect(d.code != 0)
    }

    @Test func greedyGenerationAndEvalOnAnHFFixture() throws {
        let dir = CLI.packageRoot.appendingPathComponent("Tests/Fixtures/qwen3-tiny").path
        let gen = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/generation.json"))) as! [String: Any]
        let prompt = (gen["prompt_ids"] as! [[Int]])[0], expected = (gen["new_tokens"] as! [[Int]])[0]
        for decoder in ["fast", "tensor"] {
            let r = try CLI.run(["generate", "--model", dir, "--prompt-ids", prompt.map(String.init).joined(separator: ","),
                                 "--max-new-tokens", String(expected.count), "--greedy", "--decoder", decoder, "--json"])
            #expect(r.code == 0, "\(r.err)")
            let j = try CLI.json(r.out)
            #expect(j["ids"] as? [Int] == expected && j["decoder"] as? String == decoder)
        }
        let q = try CLI.run(["generate", "--model", dir, "--prompt-ids", "1,2,3", "--max-new-tokens", "4", "--greedy",
                             "--weights", "int8", "--json"])
        #expect(q.code == 0, "\(q.err)")
        let qj = try CLI.json(q.out)
        #expect((qj["ids"] as? [Int])?.count == 4 && qj["weights"] as? String == "int8")
        let moe = CLI.packageRoot.appendingPathComponent("Tests/Fixtures/qwen3-moe-tiny").path
        let m = try CLI.run(["generate", "--model", moe, "--prompt-ids", "1,2,3", "--max-new-tokens", "2", "--weights", "int8"])
        #expect(m.code != 0 && m.err.contains("mixture of experts"))
        let b = try CLI.run(["bench", "generate", "--model", dir, "--prompt-len", "4", "--new-tokens", "6", "--repeats", "1",
                             "--paths", "tensor,int8", "--json"])
        #expect(b.code == 0, "\(b.err)")
        let rows = try CLI.json(b.out)["rows"] as? [[String: Any]] ?? []
        #expect(rows.map { $0["weights"] as? String } == ["f32", "int8"] && (rows.last?["argmax_agreement"] as? Double ?? -1) >= 0)
        let tmp = CLI.temp("eval")
        let tokens = tmp.appendingPathComponent("t.json").path
        try "[[1,2,3,4,5,6],[7,8,9,10,11,12]]".write(toFile: tokens, atomically: true, encoding: .utf8)
        let e = try CLI.run(["eval", "--model", dir, "--tokens", tokens, "--json"])
        #expect(e.code == 0, "\(e.err)")
        let j = try CLI.json(e.out)
        #expect(j["tokens"] as? Int == 10 && (j["loss"] as? Double ?? 0) > 0)
        let ef = try CLI.run(["eval", "--model", dir, "--tokens", tokens, "--weights", "f32", "--json"])
        #expect(ef.code == 0, "\(ef.err)")
        let jf = try CLI.json(ef.out)
        #expect(abs((jf["loss"] as? Double ?? 0) - (j["loss"] as? Double ?? 1)) < Tolerance.Model.loss && jf["weights"] as? String == "f32")
        try "[[1,2,100000]]".write(toFile: tokens, atomically: true, encoding: .utf8)
        let bad = try CLI.run(["eval", "--model", dir, "--tokens", tokens])
        #expect(bad.code != 0 && bad.err.contains("100000"))
        let ctx = try CLI.run(["generate", "--model", dir, "--prompt-ids", "1,2", "--max-new-tokens", "500", "--greedy"])
        #expect(ctx.code != 0 && ctx.err.contains("context length"))
    }

    @Test func tokenizerShardTrainPipelineAndCorruptionDetection() throws {
        let tmp = CLI.temp("pipe")
        var text = ""
        for i in 0..<400 { text += "The quick brown fox \(i % 17) jumps over the lazy dog number \(i % 5).\n" }
        let corpus = tmp.appendingPathComponent("corpus.txt").path
        try text.write(toFile: corpus, atomically: true, encoding: .utf8)
        let tok = tmp.appendingPathComponent("tok.json").path
        #expect(try CLI.run(["train-tokenizer", "--input", corpus, "--vocab-size", "300", "--out", tok, "--json"]).code == 0)
        let shards = tmp.appendingPathComponent("shards").path
        let s = try CLI.run(["shard", "--tokenizer", tok, "--input", corpus, "--out", shards, "--shard-tokens", "2000",
                             "--val-fraction", "0.1", "--json"])
        #expect(s.code == 0, "\(s.err)")
        #expect(try CLI.run(["shard", "verify", shards]).code == 0)
        // Validation by documents (JSON Lines, a document per line), and the two split flags refused together.
        let jsonl = tmp.appendingPathComponent("docs.jsonl").path
        try (0..<60).map { "{\"text\": \"The quick brown fox \($0) jumps over the lazy dog number \($0 % 5).\"}" }
            .joined(separator: "\n").write(toFile: jsonl, atomically: true, encoding: .utf8)
        let byDocs = try CLI.run(["shard", "--tokenizer", tok, "--input", jsonl, "--out", tmp.appendingPathComponent("docs").path,
                                  "--val-documents", "6", "--json"])
        #expect(byDocs.code == 0, "\(byDocs.err)")
        let split = try #require((try CLI.json(byDocs.out)["manifest"] as? [String: Any])?["split"] as? [String: Any])
        #expect(split["val_documents"] as? Int == 6 && (split["val_tokens"] as? Int ?? 0) > 0, "\(split)")
        let both = try CLI.run(["shard", "--tokenizer", tok, "--input", jsonl, "--out", tmp.appendingPathComponent("both").path,
                                "--val-documents", "6", "--val-fraction", "0.1"])
        #expect(both.code != 0 && both.err.contains("give one of them"), "\(both.err)")
        // The shard benchmark: both sides run and count the same text.
        let b = try CLI.run(["bench", "shard", "--tokenizer", tok, "--input", corpus, "--rounds", "2", "--json"])
        #expect(b.code == 0, "\(b.err)")
        let bench = try CLI.json(b.out)
        #expect((bench["rounds"] as? [Any])?.count == 2)
        #expect(bench["bytes"] as? Int == text.utf8.count)
        #expect((bench["medianRatio"] as? Double ?? 0) > 0)
        // The training benchmark lists every timed step, and its median is theirs.
        let bt = try CLI.run(["bench", "train", "--recipe", "nano", "--batch-size", "2", "--seq-len", "16", "--steps", "3", "--json"])
        #expect(bt.code == 0, "\(bt.err)")
        let btj = try CLI.json(bt.out), steps = btj["step_seconds"] as? [Double] ?? []
        #expect(steps.count == 3 && steps.allSatisfy { $0 > 0 }, "\(btj)")
        #expect(steps.sorted()[1] == btj["median_step_seconds"] as? Double && steps.min() == btj["best_step_seconds"] as? Double)
        let run = tmp.appendingPathComponent("run").path
        let t = try CLI.run(["train", "--recipe", "nano", "--set", "model.vocab_size=300", "--data", shards, "--steps", "4",
                             "--batch-size", "2", "--seq-len", "32", "--eval-every", "2", "--out", run, "--json"])
        #expect(t.code == 0, "\(t.err)")
        #expect(try CLI.json(t.out)["steps"] as? Int == 4)
        let metrics = try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8)
        #expect(metrics.split(separator: "\n").count == 6)  // 4 steps + 2 evaluations
        // Flip one byte inside a shard: verify and any reader must fail, naming the file.
        let shard = try FileManager.default.contentsOfDirectory(atPath: shards).filter { $0.hasSuffix(".tks") }.sorted()[0]
        let path = shards + "/" + shard
        var data = try Data(contentsOf: URL(fileURLWithPath: path))
        data[data.count / 2] ^= 0x40
        try data.write(to: URL(fileURLWithPath: path))
        let v = try CLI.run(["shard", "verify", shards])
        #expect(v.code != 0 && v.err.contains(shard), "\(v.err)")
        let r = try CLI.run(["train", "--resume", run, "--data", shards, "--steps", "6", "--reschedule"])
        #expect(r.code != 0 && r.err.contains(shard), "\(r.err)")
    }
}
