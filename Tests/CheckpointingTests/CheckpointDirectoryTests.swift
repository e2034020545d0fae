import Foundation
import Testing
import ToolkitSupport

@testable import Checkpointing
@testable import Models

@Suite struct CheckpointDirectoryTests {
    func sampleTensors() -> [String: HostTensor] {
        var out: [String: HostTensor] = [:]
        for i in 0..<7 {
            let n = 16 * (i + 1)
            out["layer.\(i).weight"] = HostTensor(
                shape: [n / 4, 4], values: (0..<n).map { Float($0 * (i + 1)) })
        }
        return out
    }

    @Test func singleFileAndShardedFormsLoadTheSameTensors() throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let tensors = sampleTensors()
        let single = try CheckpointDirectory.write(tensors, to: dir.path("single"))
        #expect(single == ["model.safetensors"])
        let files = try CheckpointDirectory.write(
            tensors, to: dir.path("sharded"), maxShardBytes: 300)
        #expect(files.last == "model.safetensors.index.json")
        #expect(files.count > 3)
        #expect(
            files.first == "model-00001-of-\(String(format: "%05d", files.count - 1)).safetensors")
        for path in [
            dir.path("single"), dir.path("sharded"), dir.path("single/model.safetensors"),
            dir.path("sharded/model.safetensors.index.json"),
        ] {
            var reports: [(Int, Int)] = []
            let loaded = try CheckpointDirectory.load(path) { reports.append(($0, $1)) }
            #expect(loaded == tensors, "\(path)")
            let bytes = tensors.values.reduce(0) { $0 + 4 * $1.count }
            #expect(reports.count == tensors.count)
            #expect(reports.last.map { [$0.0, $0.1] } == [bytes, bytes])
            #expect(zip(reports, reports.dropFirst()).allSatisfy { $0.0 < $1.0 })
        }
        let index = try CheckpointDirectory.readIndex(
            dir.path("sharded/model.safetensors.index.json"))
        #expect(Set(index.keys) == Set(tensors.keys))
        #expect(Set(index.values) == Set(files.dropLast()))
        // Re-writing as one file removes the stale index.
        try CheckpointDirectory.write(tensors, to: dir.path("sharded"))
        #expect(
            !FileManager.default.fileExists(
                atPath: dir.path("sharded/model.safetensors.index.json")))
    }

    @Test func loadsAFixtureDirectory() throws {
        let tensors = try CheckpointDirectory.load(Fixtures.path("qwen3-tiny"))
        let keys = try #require(Fixtures.meta("qwen3-tiny")["checkpoint_keys"] as? [String])
        #expect(Set(tensors.keys) == Set(keys))
    }

    @Test func shardErrorsNameTheShardOrTensor() throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let files = try CheckpointDirectory.write(
            sampleTensors(), to: dir.path("c"), maxShardBytes: 300)
        let indexPath = dir.path("c/model.safetensors.index.json")
        let original = try String(contentsOfFile: indexPath, encoding: .utf8)

        // A listed tensor missing from its shard.
        try original.replacingOccurrences(of: "\"layer.0.weight\"", with: "\"layer.0.missing\"")
            .write(toFile: indexPath, atomically: true, encoding: .utf8)
        expectError(["layer.0.missing", "missing here", files[0]]) {
            _ = try CheckpointDirectory.load(dir.path("c"))
        }

        // A shard tensor the index does not list (restore, then drop one line's tensor).
        try original.replacingOccurrences(
            of: "    \"layer.1.weight\": \"\(files[0])\",\n", with: ""
        )
        .write(toFile: indexPath, atomically: true, encoding: .utf8)
        expectError(["layer.1.weight", "not listed"]) {
            _ = try CheckpointDirectory.load(dir.path("c"))
        }

        // A missing shard file.
        try original.write(toFile: indexPath, atomically: true, encoding: .utf8)
        try FileManager.default.removeItem(atPath: dir.path("c/\(files[1])"))
        expectError([files[1], "does not exist"]) {
            _ = try CheckpointDirectory.load(dir.path("c"))
        }

        // Malformed index files.
        try #"{"weight_map": {"a": "../x.safetensors"}}"#.write(
            toFile: indexPath, atomically: true, encoding: .utf8)
        expectError(["not a plain file name"]) { _ = try CheckpointDirectory.load(dir.path("c")) }
        try #"{"weight_map": [1]}"#.write(toFile: indexPath, atomically: true, encoding: .utf8)
        expectError(["weight_map"]) { _ = try CheckpointDirectory.load(dir.path("c")) }
        try "{".write(toFile: indexPath, atomically: true, encoding: .utf8)
        expectError([indexPath, "invalid JSON"]) { _ = try CheckpointDirectory.load(dir.path("c")) }

        try FileManager.default.createDirectory(
            atPath: dir.path("empty"), withIntermediateDirectories: true)
        expectError(["contains neither"]) { _ = try CheckpointDirectory.load(dir.path("empty")) }
        expectError(["no such file"]) { _ = try CheckpointDirectory.load(dir.path("nothing")) }
    }
}

@Suite struct HFCheckpointTests {
    @Test(arguments: ["gpt2-tiny", "qwen3-moe-tiny"])
    func loadSaveLoadRoundTrip(model: String) throws {
        let (config, tensors) = try HFCheckpoint.load(Fixtures.path(model))
        #expect(Set(tensors.keys) == Set(config.canonicalShapes().keys))
        let dir = try TempDir()
        defer { dir.cleanup() }
        try HFCheckpoint.save(config: config, tensors: tensors, to: dir.path("a"))
        let (config2, tensors2) = try HFCheckpoint.load(dir.path("a"))
        #expect(config2 == config)
        #expect(tensors2 == tensors)
        let original = try Data(
            contentsOf: URL(fileURLWithPath: Fixtures.path("\(model)/model.safetensors")))
        #expect(
            try Data(contentsOf: dir.url.appendingPathComponent("a/model.safetensors")) == original)

        // BF16 + sharded: values come back rounded to BF16.
        try HFCheckpoint.save(
            config: config, tensors: tensors, to: dir.path("b"), as: .bf16, maxShardBytes: 100_000)
        let (config3, tensors3) = try HFCheckpoint.load(dir.path("b"))
        #expect(config3.dtype == "bfloat16")
        for (name, t) in tensors {
            let rounded = t.values.map {
                DTypeConversion.bf16ToFloat(DTypeConversion.floatToBF16($0))
            }
            #expect(tensors3[name]?.values == rounded, "\(name)")
        }

        var bad = tensors
        bad["model.norm.weight"] = nil
        expectError(["missing tensor 'model.norm.weight'"]) {
            try HFCheckpoint.save(config: config, tensors: bad, to: dir.path("c"))
        }
    }
}
