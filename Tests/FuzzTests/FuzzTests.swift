import Foundation
import Testing
import Checkpointing
import FineTuning
import Models
import Tokenization
import TokenShards
import ToolkitSupport
import Training

/// Mutation fuzzing of every parser that reads a user's file: safetensors, config.json,
/// tokenizer.json, .tiktoken, shards and their manifest, recipes and JSONL data.
///
/// Each target starts from valid seeds, applies 1–4 random mutations (bit flips, interesting
/// bytes, deleted and duplicated ranges, truncation, digit runs replaced by boundary numbers) and
/// parses the result: it must load or throw, never crash, hang or allocate without bound. The
/// iterations per target are bounded for CI (`TOOLKIT_FUZZ_ITERATIONS`, default 150) and seeded
/// (`TOOLKIT_FUZZ_SEED`), so a run is reproducible. Before each input is parsed it is written to
/// `$TMPDIR/toolkit-fuzz/<target>.current`: after a crash, copy that file into
/// `Tests/FuzzTests/Regressions/<target>/`, where every file is parsed first on every run.
@Suite struct FuzzTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let iterations = Int(ProcessInfo.processInfo.environment["TOOLKIT_FUZZ_ITERATIONS"] ?? "") ?? 150
    static let seed = UInt64(ProcessInfo.processInfo.environment["TOOLKIT_FUZZ_SEED"] ?? "") ?? 20261207
    static let scratch: URL = {
        let u = FileManager.default.temporaryDirectory.appendingPathComponent("toolkit-fuzz")
        try? FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
        return u
    }()

    struct Mutator {
        var rng: SplitMix64
        static let numbers = ["0", "-1", "1", "65536", "2147483648", "4294967296", "9223372036854775807",
                              "18446744073709551616", "1e308", "-1e308", "NaN", ".nan", ".inf", "1e-400", "99999999999999999999"]
        static let bytes: [UInt8] = [0, 0xff, 0x7f, 0x80, UInt8(ascii: "{"), UInt8(ascii: "}"), UInt8(ascii: "["),
                                     UInt8(ascii: "\""), UInt8(ascii: ":"), UInt8(ascii: ","), UInt8(ascii: "\n"),
                                     UInt8(ascii: "&"), UInt8(ascii: "*"), UInt8(ascii: "9"), UInt8(ascii: "-")]

        mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(rng.next() % UInt64(n)) }

        mutating func mutate(_ input: [UInt8]) -> [UInt8] {
            var b = input
            for _ in 0...below(4) {
                if b.isEmpty { b = [Self.bytes[below(Self.bytes.count)]]; continue }
                let i = below(b.count)
                switch below(7) {
                case 0: b[i] ^= UInt8(1) << UInt8(below(8))
                case 1: b[i] = Self.bytes[below(Self.bytes.count)]
                case 2: b.removeSubrange(i..<min(b.count, i + 1 + below(64)))
                case 3: b.insert(contentsOf: b[i..<min(b.count, i + 1 + below(64))], at: below(b.count))
                case 4: b.removeSubrange(i...)
                case 5:  // a digit run becomes a boundary number
                    guard let start = b[i...].firstIndex(where: { (48...57).contains($0) }) else { continue }
                    let end = b[start...].firstIndex(where: { !(48...57).contains($0) && $0 != UInt8(ascii: ".") }) ?? b.count
                    b.replaceSubrange(start..<end, with: Array(Self.numbers[below(Self.numbers.count)].utf8))
                default:  // a little-endian integer field gets an extreme value
                    let v: UInt64 = [0, 1, UInt64(Int32.max), UInt64(UInt32.max), UInt64(Int64.max), UInt64.max][below(6)]
                    for k in 0..<min(8, b.count - i) { b[i + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(k))) }
                }
            }
            return b
        }
    }

    /// Runs the regressions of `name`, then `iterations` mutations of the seeds, through `parse`.
    static func fuzz(_ name: String, seeds: [[UInt8]], parse: ([UInt8]) throws -> Void) throws {
        let current = scratch.appendingPathComponent("\(name).current")
        let regressions = root.appendingPathComponent("Tests/FuzzTests/Regressions/\(name)")
        var inputs = ((try? FileManager.default.contentsOfDirectory(atPath: regressions.path)) ?? []).sorted().compactMap {
            try? [UInt8](Data(contentsOf: regressions.appendingPathComponent($0)))
        }
        var m = Mutator(rng: SplitMix64(seed: seed ^ UInt64(name.utf8.reduce(0) { $0 &* 31 &+ Int($1) })))
        for i in 0..<iterations { inputs.append(m.mutate(seeds[i % seeds.count])) }
        // The check is that every input returns or throws: a trap or a crash ends the test process.
        for input in inputs {
            try Data(input).write(to: current)
            _ = try? parse(input)
        }
    }

    /// Writes `bytes` to a scratch file with `suffix` for parsers that read paths.
    static func file(_ bytes: [UInt8], _ name: String) throws -> String {
        let p = scratch.appendingPathComponent(name).path
        try Data(bytes).write(to: URL(fileURLWithPath: p))
        return p
    }

    static func read(_ relative: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: root.appendingPathComponent(relative))) }

    @Test func safetensors() throws {
        var w = SafetensorsWriter(metadata: ["format": "pt"])
        try w.add("a.weight", HostTensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6]))
        try w.add("b", HostTensor(shape: [4], values: [0, -1, 0.5, 2]))
        let path = Self.scratch.appendingPathComponent("seed.safetensors").path
        try w.write(to: path)
        try Self.fuzz("safetensors", seeds: [[UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))]) { b in
            _ = try SafetensorsFile(data: Data(b), path: "fuzz.safetensors").loadAll()
        }
    }

    @Test func configJSON() throws {
        let seeds = try ["gpt2-tiny", "qwen3-tiny", "qwen3-yarn-tiny", "qwen3-moe-tiny", "llama3-tiny"].map {
            try Self.read("Tests/Fixtures/\($0)/config.json")
        }
        try Self.fuzz("config", seeds: seeds) { b in
            let c = try HFModelConfig.parse(Data(b), path: "fuzz/config.json")
            let r = try Recipe.fromHF(c, path: "fuzz/config.json")
            _ = try ModelBuilder.build(r, initializeWeights: false, memoryLimit: 64 << 20)
        }
    }

    @Test func recipes() throws {
        let seeds = try ["nano", "gpt2", "qwen3-small", "nano-moe"].map { try Self.read("Recipes/\($0).yaml") }
        try Self.fuzz("recipe", seeds: seeds) { b in
            let r = try Recipe.load(try Self.file(b, "fuzz-recipe.yaml"))
            _ = try TrainSettings(recipe: r)
            _ = try ModelBuilder.build(r, initializeWeights: false, memoryLimit: 64 << 20)
        }
    }

    @Test func tokenizers() throws {
        let json = try Self.read("Tests/TokenizationTests/Fixtures/tokenizer.json")
        try Self.fuzz("tokenizer-json", seeds: [json]) { b in
            _ = try BPETokenizer.loadHuggingFace(path: try Self.file(b, "fuzz-tokenizer.json"))
        }
        let lines = try Self.read("Tests/TokenizationTests/Fixtures/gpt2.tiktoken").split(separator: UInt8(ascii: "\n")).prefix(400)
        let tiktoken = Array(lines.joined(separator: [UInt8(ascii: "\n")])) + [UInt8(ascii: "\n")]
        try Self.fuzz("tiktoken", seeds: [tiktoken]) { b in
            _ = try BPETokenizer.loadTiktoken(path: try Self.file(b, "fuzz.tiktoken"))
        }
    }

    @Test func shards() throws {
        let shard = try ShardCodec.encode(tokens: (0..<300).map { UInt32($0 * 13 % 1000) }, dtype: .uint16, layout: .shuffled,
                                          level: 1, frameTokens: 64, tokenizerHash: "h")
        try Self.fuzz("shard", seeds: [shard]) { b in _ = try ShardCodec.decode(b, path: "fuzz.tks") }
        let dir = Self.scratch.appendingPathComponent("shards-\(UUID())").path
        let writer = try ShardWriter(directory: dir, tokenizer: TokenizerInfo(hash: "h", vocabSize: 1000, eotID: 999),
                                     options: ShardWriterOptions())
        for d in 0..<5 { try writer.appendDocument((0..<200).map { UInt32(($0 + d) % 999) }) }
        _ = try writer.finish(valFraction: 0.2)
        let manifest = [UInt8](try Data(contentsOf: URL(fileURLWithPath: dir + "/" + ShardManifest.fileName)))
        try Self.fuzz("manifest", seeds: [manifest]) { b in
            try Data(b).write(to: URL(fileURLWithPath: dir + "/" + ShardManifest.fileName))
            _ = try ShardManifest.load(directory: dir)
        }
    }

    @Test func jsonlData() throws {
        let sft = try Self.read("Tests/FineTuningTests/Fixtures/instructions.jsonl").prefix(2000)
        let chat = try Self.read("Tests/FineTuningTests/Fixtures/chat.jsonl").prefix(2000)
        let prefs = try Self.read("Tests/FineTuningTests/Fixtures/preferences.jsonl").prefix(2000)
        let encode = { (s: String) in s.utf8.map { Int32($0) } }
        try Self.fuzz("jsonl", seeds: [Array(sft), Array(chat), Array(prefs)]) { b in
            let path = try Self.file(b, "fuzz.jsonl")
            _ = try? SFTData.load(path, encode: encode, eos: 0)
            _ = try PreferencePair.load(path, encode: encode, eos: nil)
        }
    }
}
