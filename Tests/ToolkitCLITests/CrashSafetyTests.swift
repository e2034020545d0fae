import Foundation
import Testing
import ToolkitSupport

/// Interruptions and hostile output paths (issue F1–F7): every case leaves a folder that resumes,
/// or is refused before any work with an error naming the path.
@Suite(.serialized) struct CrashSafetyTests {
    static func tokens(in dir: URL) throws -> String {
        let rows = (0..<2).map { r in (0..<17).map { (r * 31 + $0 * 7) % 500 } }
        let path = dir.appendingPathComponent("tokens.json").path
        try JSONSerialization.data(withJSONObject: rows).write(to: URL(fileURLWithPath: path))
        return path
    }

    static func train(_ extra: [String], tokens: String, out: String) throws -> (code: Int32, out: String, err: String) {
        try CLI.run(["train", "--recipe", "nano", "--tokens", tokens, "--out", out, "--lr", "0.01", "--schedule", "constant", "--json"] + extra)
    }

    /// Leftovers of every interruption point: an incomplete first save (F1), a re-save cut between
    /// moving the old folder aside and moving the new one in (F2), a half-deleted pruned folder (F3).
    @Test func interruptedSavesAndPrunesResume() throws {
        let tmp = CLI.temp("crash"), tokens = try Self.tokens(in: tmp)
        let run = tmp.appendingPathComponent("run").path
        let fm = FileManager.default
        // F1: only `step-0000002.tmp` exists: a fresh run starts (it is cleaned up), no "already holds".
        try fm.createDirectory(atPath: run + "/step-0000002.tmp", withIntermediateDirectories: true)
        try "partial".write(toFile: run + "/step-0000002.tmp/recipe.yaml", atomically: true, encoding: .utf8)
        let first = try Self.train(["--steps", "2", "--save-every", "1", "--keep-checkpoints", "2"], tokens: tokens, out: run)
        #expect(first.code == 0, "\(first.err)")
        #expect(!fm.fileExists(atPath: run + "/step-0000002.tmp"))
        #expect(fm.fileExists(atPath: run + "/step-0000002/trainer_state.json"))
        // F2: the newest (and only) checkpoint sits under its aside name; resume brings it back
        // before choosing what to resume from, and continues from it.
        try fm.removeItem(atPath: run + "/step-0000001")
        try fm.moveItem(atPath: run + "/step-0000002", toPath: run + "/step-0000002.replaced")
        // F3: a pruned folder half deleted.
        try fm.createDirectory(atPath: run + "/step-0000001.deleting", withIntermediateDirectories: true)
        let resumed = try CLI.run(["train", "--resume", run, "--tokens", tokens, "--steps", "3", "--json"])
        #expect(resumed.code == 0, "\(resumed.err)")
        #expect(try CLI.json(resumed.out)["steps"] as? Int == 3)
        let left = try fm.contentsOfDirectory(atPath: run).filter { $0.hasPrefix("step-") }.sorted()
        #expect(left == ["step-0000002", "step-0000003"], "\(left)")
    }

    /// Resume bugs: a finished run says there is nothing to train; a new --steps with a decaying
    /// schedule is refused unless --reschedule; resuming from an older step replaces the metrics
    /// rows after it instead of duplicating them; a resume without --metrics continues the run's file.
    @Test func resumesAreHonest() throws {
        let tmp = CLI.temp("resume"), tokens = try Self.tokens(in: tmp)
        let run = tmp.appendingPathComponent("run").path, metrics = tmp.appendingPathComponent("custom.jsonl").path
        let a = try CLI.run(["train", "--recipe", "nano", "--tokens", tokens, "--out", run, "--steps", "4", "--save-every", "2",
                             "--keep-checkpoints", "3", "--metrics", metrics])
        #expect(a.code == 0, "\(a.err)")
        let done = try CLI.run(["train", "--resume", run, "--tokens", tokens])
        #expect(done.code == 0 && done.err.contains("nothing to train") && !done.out.contains("nan"), "\(done.err)")
        let longer = try CLI.run(["train", "--resume", run, "--tokens", tokens, "--steps", "6"])
        #expect(longer.code != 0 && longer.err.contains("--reschedule"), "\(longer.err)")
        let older = try CLI.run(["train", "--resume", run + "/step-0000002", "--tokens", tokens])
        #expect(older.code == 0, "\(older.err)")
        let steps = try String(contentsOfFile: metrics, encoding: .utf8).split(whereSeparator: \.isNewline).compactMap {
            try CLI.json(String($0))["step"] as? Int
        }
        #expect(steps == [1, 2, 3, 4], "\(steps)")
        #expect(!FileManager.default.fileExists(atPath: run + "/metrics.jsonl"))
    }

    /// kill -9 at arbitrary moments of a run that saves and prunes every step: each time, the
    /// folder resumes and the run finishes.
    @Test func killNineAnywhereResumes() throws {
        let tmp = CLI.temp("kill9"), tokens = try Self.tokens(in: tmp)
        let run = tmp.appendingPathComponent("run").path
        for (i, delay) in [0.05, 0.23, 0.41].enumerated() {
            let p = try CLI.start((i == 0 ? ["train", "--recipe", "nano", "--out", run, "--schedule", "constant"] : ["train", "--resume", run])
                + ["--tokens", tokens, "--steps", "400", "--save-every", "1", "--keep-checkpoints", "1", "--lr", "0.01"])
            // Let the run reach its first checkpoint (a loaded machine may take seconds), then kill
            // it at a moment that falls anywhere in the save-and-prune cycle of the following steps.
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline, ((try? FileManager.default.contentsOfDirectory(atPath: run)) ?? [])
                .contains(where: { $0.hasPrefix("step-") && !$0.contains(".") }) == false {
                Thread.sleep(forTimeInterval: 0.02)
            }
            Thread.sleep(forTimeInterval: delay)
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
        }
        let steps = (try FileManager.default.contentsOfDirectory(atPath: run)).filter { $0.hasPrefix("step-") && !$0.contains(".") }
        guard let last = steps.sorted().last, let step = Int(last.dropFirst(5)) else {
            Issue.record("no checkpoint after three runs")
            return
        }
        let r = try CLI.run(["train", "--resume", run, "--tokens", tokens, "--steps", "\(step + 2)", "--save-every", "1",
                             "--keep-checkpoints", "1", "--json"])
        #expect(r.code == 0, "\(r.err)")
        #expect(try CLI.json(r.out)["steps"] as? Int == step + 2)
    }

    /// F4–F6: a metrics path that is a folder or a device, and an --out that is a file, are refused
    /// at the start with the path named; nothing is deleted or replaced.
    @Test func badOutputPathsAreRefusedBeforeWork() throws {
        let tmp = CLI.temp("paths"), tokens = try Self.tokens(in: tmp)
        let folder = tmp.appendingPathComponent("keep").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try "precious".write(toFile: folder + "/file.txt", atomically: true, encoding: .utf8)
        let m = try Self.train(["--steps", "1", "--metrics", folder], tokens: tokens, out: tmp.appendingPathComponent("r1").path)
        #expect(m.code != 0 && m.err.contains(folder) && m.err.contains("not a regular file"), "\(m.err)")
        #expect(FileManager.default.fileExists(atPath: folder + "/file.txt"))
        let dev = try Self.train(["--steps", "1", "--metrics", "/dev/null"], tokens: tokens, out: tmp.appendingPathComponent("r2").path)
        #expect(dev.code != 0 && dev.err.contains("/dev/null"), "\(dev.err)")
        let file = tmp.appendingPathComponent("afile").path
        try "x".write(toFile: file, atomically: true, encoding: .utf8)
        let o = try Self.train(["--steps", "1"], tokens: tokens, out: file)
        #expect(o.code != 0 && o.err.contains(file) && o.err.contains("not a folder"), "\(o.err)")
    }

    /// F7: a second writer on the same folder is stopped with a clear error.
    @Test func oneWriterPerFolder() throws {
        let tmp = CLI.temp("lock"), tokens = try Self.tokens(in: tmp)
        let run = tmp.appendingPathComponent("run").path
        let lock = try FolderLock(folder: run, what: "test")
        let r = try Self.train(["--steps", "1"], tokens: tokens, out: run)
        #expect(r.code != 0 && r.err.contains("is in use by another") && r.err.contains("\(getpid())"), "\(r.err)")
        lock.release()
        #expect(try Self.train(["--steps", "1"], tokens: tokens, out: run).code == 0)
    }

    /// SIGTERM (timeout, systemd, Slurm) stops a run like Ctrl-C: a checkpoint, then exit 130. The
    /// test runner starts children with SIGTERM blocked, which the toolkit undoes.
    @Test func sigtermSavesAndStops() throws {
        let tmp = CLI.temp("term"), tokens = try Self.tokens(in: tmp)
        let run = tmp.appendingPathComponent("run").path
        let out = Pipe()
        let p = try CLI.start(["train", "--recipe", "nano", "--tokens", tokens, "--out", run, "--steps", "100000", "--json"], stdout: out)
        let metrics = run + "/metrics.jsonl"
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, ((try? String(contentsOfFile: metrics, encoding: .utf8)) ?? "").isEmpty { Thread.sleep(forTimeInterval: 0.1) }
        kill(p.processIdentifier, SIGTERM)
        let pid = p.processIdentifier
        DispatchQueue.global().asyncAfter(deadline: .now() + 60) { kill(pid, SIGKILL) }  // never hang the suite
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 130, "an interrupted run exits 130, as after Ctrl-C")
        let summary = try CLI.json(text.split(separator: "\n").last.map(String.init) ?? "")
        #expect(summary["stop"] as? String == "interrupted", "\(text)")
        #expect((summary["checkpoint"] as? String).map { FileManager.default.fileExists(atPath: $0 + "/trainer_state.json") } == true)
    }
}
