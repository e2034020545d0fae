import Foundation
import Testing
import ToolkitSupport

@testable import Tokenization

/// Fixture access: small files (and GPT-2's ranks) are bundled; Qwen's 2.5 MB ranks are read
/// from `Tokenizers/`; corpora and the 11 MB Qwen tokenizer.json are read from `../shared`
/// only when present (otherwise those checks are skipped).
enum Fixture {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    static func path(_ name: String) -> String {
        Bundle.module.url(forResource: "Fixtures/" + name, withExtension: nil)!.path
    }

    nonisolated(unsafe) static let meta: [String: Any] = {
        let data = try! Data(contentsOf: URL(fileURLWithPath: path("meta.json")))
        return try! JSONSerialization.jsonObject(with: data) as! [String: Any]
    }()

    static var cases: [[String: Any]] { meta["cases"] as! [[String: Any]] }

    static func corpus(_ name: String) -> String? { shared("data/\(name)") }

    /// A file under ../shared (beside the clone), if present.
    static func shared(_ relative: String) -> String? {
        let p = packageRoot.deletingLastPathComponent().appendingPathComponent("shared/\(relative)")
            .path
        return FileManager.default.fileExists(atPath: p) ? p : nil
    }

    static let trained = try! BPETokenizer.load(path: path("tokenizer.json"))
    static let gpt2 = try! BPETokenizer.load(path: path("gpt2.tiktoken"))
    static let qwen = try! BPETokenizer.loadTiktoken(
        path: packageRoot.appendingPathComponent("Tokenizers/qwen.tiktoken").path,
        pretokenizer: .qwen)
    static let qwenNFC = try! BPETokenizer.loadTiktoken(
        path: packageRoot.appendingPathComponent("Tokenizers/qwen.tiktoken").path,
        pretokenizer: .qwen,
        normalizesNFC: true)

    static func ints(_ v: Any?) -> [Int] { (v as? [Any] ?? []).map { ($0 as! NSNumber).intValue } }
}

/// Deterministic pseudo-random strings made of scalars that stress the pre-tokenizer rules.
struct Fuzz {
    var state: UInt64
    static let atoms: [String] = [
        "a", "Z", "é", "e\u{301}", "'", "s", "S", "t", "T", "re", "RE", "ve", "ll", "LL", "m", "d",
        "D", " ", "  ",
        "\t", "\n", "\r", "\r\n", "\n\n", "1", "23", "4567", "٣", "½", "Ⅻ", "!", "?", ".", "...",
        "中", "文",
        "ß", "\u{A0}", "\u{200B}", "\u{3000}", "😀", "👨‍👩‍👧", "🇺🇸", "\u{85}", "\u{2028}", "\u{0B}",
        "\u{0C}",
        "_", "-", "$", "ǅ", "ʰ", "ア", "한", "Ω", "ж", "<|endoftext|>", "<|", "x", "'s", "'S", "'ll",
        "''",
        " '", "ſ", "\u{1F}", "\u{7F}", "\u{FFFD}", "𝔸", "🙂", "#", "(", ")", "{", "}",
    ]

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func string(maxAtoms: Int) -> String {
        let n = Int(next() % UInt64(maxAtoms + 1))
        var s = ""
        for _ in 0..<n { s += Self.atoms[Int(next() % UInt64(Self.atoms.count))] }
        return s
    }
}

@Suite struct PretokenizerTests {
    /// Reference split with Swift Regex over Unicode scalars (slow but independent).
    static func referenceSplit(_ text: String, _ pre: Pretokenizer) throws -> [String] {
        let regex = try Regex(pre.pattern).matchingSemantics(.unicodeScalar)
        return text.matches(of: regex).map { String(text.unicodeScalars[$0.range]) }
    }

    @Test(arguments: Pretokenizer.allCases)
    func scannerMatchesRegexOnFuzzedStrings(_ pre: Pretokenizer) throws {
        var fuzz = Fuzz(state: 42)
        var checked = 0
        for _ in 0..<600 {
            let s = fuzz.string(maxAtoms: 14)
            let ours = pre.split(s)
            #expect(ours.joined() == s)
            let ref = try Self.referenceSplit(s, pre)
            #expect(
                ours == ref, "\(pre) on \(s.unicodeScalars.map { String($0.value, radix: 16) })")
            checked += 1
        }
        #expect(checked == 600)
    }

    /// Fuzzed strings never seen by the tokenizer fixture: HF tokenizers' (Oniguruma) splits
    /// and tiktoken's GPT-2 / Qwen ids (FixtureGenerators/pretokenizer_parity.py).
    @Test func matchesHuggingFaceAndTiktokenOnUnseenStrings() throws {
        let data = try Data(
            contentsOf: URL(fileURLWithPath: Fixture.path("pretokenizer-parity.json")))
        let root = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        let patterns = root["patterns"] as! [String: String]
        for pre in Pretokenizer.allCases { #expect(patterns[pre.rawValue] == pre.pattern) }
        let cases = root["cases"] as! [[String: Any]]
        #expect(cases.count == 400)
        for c in cases {
            let text = c["text"] as! String
            let splits = c["splits"] as! [String: [String]]
            for pre in Pretokenizer.allCases {
                #expect(
                    pre.split(text) == splits[pre.rawValue]!, "\(pre) on \(text.debugDescription)")
            }
            #expect(
                Fixture.gpt2.encode(text) == Fixture.ints(c["gpt2_ids"]), "\(text.debugDescription)"
            )
            #expect(
                Fixture.qwen.encode(text) == Fixture.ints(c["qwen_ids"]), "\(text.debugDescription)"
            )
        }
    }

    /// 16 KB of random scalars from many scripts and planes (combining marks, Hangul jamo,
    /// supplementary letters, emoji, odd whitespace): tiktoken ids for GPT-2, Qwen, Qwen after NFC.
    @Test func matchesTiktokenOnRandomUnicode() throws {
        // JSONDecoder, not JSONSerialization: the latter drops a U+FEFF that follows an escape
        // on Linux, and this text has some.
        struct Root: Decodable {
            struct Random: Decodable {
                var text: String
                var gpt2IDs: [Int]
                var qwenIDs: [Int]
                var qwenIDsAfterNFC: [Int]
                enum CodingKeys: String, CodingKey {
                    case text
                    case gpt2IDs = "gpt2_ids"
                    case qwenIDs = "qwen_ids"
                    case qwenIDsAfterNFC = "qwen_ids_after_nfc"
                }
            }
            var randomUnicode: Random
            enum CodingKeys: String, CodingKey { case randomUnicode = "random_unicode" }
        }
        let data = try Data(
            contentsOf: URL(fileURLWithPath: Fixture.path("pretokenizer-parity.json")))
        let r = try JSONDecoder().decode(Root.self, from: data).randomUnicode
        #expect(r.text.utf8.count == 15945)
        #expect(Fixture.gpt2.encode(r.text, allowedSpecial: .none) == r.gpt2IDs)
        #expect(Fixture.qwen.encode(r.text, allowedSpecial: .none) == r.qwenIDs)
        #expect(Fixture.qwenNFC.encode(r.text, allowedSpecial: .none) == r.qwenIDsAfterNFC)
    }

    @Test func knownSplits() {
        #expect(
            Pretokenizer.gpt2.split("I'm   here\n\n  ok 123!!") == [
                "I", "'m", "  ", " here", "\n\n ", " ok", " 123", "!!",
            ])
        #expect(
            Pretokenizer.gpt4.split("Hello 12345 'LL  \n\n x") == [
                "Hello", " ", "123", "45", " '", "LL", "  \n\n", " x",
            ])
        #expect(Pretokenizer.qwen.split("ab12 c") == ["ab", "1", "2", " c"])
        #expect(Pretokenizer.gpt4.split("a  \n ") == ["a", "  \n "])  // \s++$ takes the whole tail
        #expect(Pretokenizer.qwen.split("a  \n ") == ["a", "  \n", " "])
        #expect(Pretokenizer.qwen.split("x'ſ") == ["x", "'ſ"])
    }
}

@Suite struct ParityTests {
    @Test func trainedTokenizerMatchesFixture() throws {
        for c in Fixture.cases {
            let text = c["text"] as! String
            let expected = Fixture.ints((c["trained_bpe"] as! [String: Any])["ids"])
            #expect(Fixture.trained.encode(text) == expected, "\(text)")
            #expect(try Fixture.trained.decode(expected) == text)
        }
    }

    @Test func gpt2MatchesTiktoken() throws {
        #expect(Fixture.gpt2.vocabSize == 50257)
        #expect(Fixture.gpt2.endOfTextID == 50256)
        for c in Fixture.cases {
            let text = c["text"] as! String
            let g = c["gpt2_tiktoken"] as! [String: Any]
            let ids = Fixture.ints(g["ids"])
            #expect(Fixture.gpt2.encode(text, allowedSpecial: .all) == ids, "\(text)")
            #expect(
                Fixture.gpt2.encode(text, allowedSpecial: .none) == Fixture.ints(g["ids_ordinary"]),
                "\(text)")
            let hex = (g["token_bytes_hex"] as! [String])
            #expect(
                ids.map { Fixture.gpt2.tokenBytes($0)!.map { String(format: "%02x", $0) }.joined() }
                    == hex)
            #expect(try Fixture.gpt2.decode(ids) == text)
        }
    }

    @Test func qwenMatchesTiktokenAndHF() throws {
        #expect(Fixture.qwen.vocabSize == 151_669)
        #expect(Fixture.qwen.endOfTextID == 151_643)
        for c in Fixture.cases {
            let text = c["text"] as! String
            let q = c["qwen_tiktoken"] as! [String: Any]
            #expect(Fixture.qwen.encode(text) == Fixture.ints(q["ids"]), "\(text)")
            #expect(Fixture.qwenNFC.encode(text) == Fixture.ints(q["ids_after_nfc"]), "\(text)")
            #expect(
                Fixture.qwenNFC.encode(text)
                    == Fixture.ints(c["qwen_hf_derived_tokenizer_json_ids"]))
        }
    }

    /// The 11 MB derived Qwen tokenizer.json and GPT-2's vocab.json + merges.txt are not
    /// committed; checked when ../shared is present.
    @Test func realHuggingFaceFilesWhenPresent() throws {
        if let p = Fixture.shared("tokenizers/qwen/tokenizer.json") {
            let hf = try BPETokenizer.load(path: p)
            #expect(hf.normalizesNFC && hf.pretokenizer == .qwen && hf.vocabSize == 151_669)
            #expect(hf.merges == Fixture.qwen.merges)
            for c in Fixture.cases {
                #expect(
                    hf.encode(c["text"] as! String)
                        == Fixture.ints(c["qwen_hf_derived_tokenizer_json_ids"]))
            }
        }
        if let p = Fixture.shared("tokenizers/gpt2/vocab.json") {
            let hf = try BPETokenizer.load(path: p)
            #expect(hf.contentHash == Fixture.gpt2.contentHash)
        }
    }

    @Test func gpt2CountOnTinyShakespeare() throws {
        guard let path = Fixture.corpus("tinyshakespeare.txt") else { return }
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let ids = Fixture.gpt2.encode(text)
        let counts = Fixture.meta["corpus_counts"] as! [String: Any]
        #expect(ids.count == 338_025)
        #expect(Array(ids.prefix(64)) == Fixture.ints(counts["gpt2_first_64_ids"]))
        #expect(Fixture.trained.encode(text).count == 462_884)
        #expect(Fixture.qwen.encode(text).count == 301_829)
    }
}

/// NFC by the standard library (Foundation's is wrong on Linux for supplementary characters).
func nfc(_ s: String) -> String { String(decoding: s._nfcCodeUnits, as: UTF8.self) }

@Suite struct EncodeDecodeTests {
    @Test func roundTripOnFuzzedStrings() throws {
        var fuzz = Fuzz(state: 7)
        for _ in 0..<300 {
            let s = fuzz.string(maxAtoms: 30)
            for tok in [Fixture.gpt2, Fixture.trained, Fixture.qwenNFC] {
                let ids = tok.encode(s, allowedSpecial: .none)
                let back = try tok.decode(ids)
                if tok.normalizesNFC {
                    #expect(back == nfc(s))
                } else {
                    #expect(back == s)
                }
                #expect(
                    try tok.decode(tok.encode(s, allowedSpecial: .all))
                        == (tok.normalizesNFC ? back : s))
            }
        }
    }

    @Test func lineWiseNFCEqualsFoundationNFC() {
        let atoms = [
            "a", "e", "\u{301}", "\u{327}", "\u{1100}", "\u{1161}", "\u{11A8}", "\u{AC00}",
            "\u{212B}",
            "\u{2000}", "\u{0B47}", "\u{0B3E}", "\u{0344}", "\n", " ", "“", "é", "\u{1D15E}", "😀",
            "Å",
            "\u{0F73}", "\u{3099}", "か",
        ]
        var fuzz = Fuzz(state: 99)
        for _ in 0..<500 {
            let n = Int(fuzz.next() % 12)
            let s = (0..<n).map { _ in atoms[Int(fuzz.next() % UInt64(atoms.count))] }.joined()
            var copy = s
            let ours = copy.withUTF8 { b in
                b.baseAddress.map { NFC.normalize($0, b.count) } ?? []
            }
            #expect(
                ours == Array(nfc(s).utf8), "\(s.debugDescription)"
            )
        }
    }

    @Test func invalidUTF8BecomesReplacementCharacters() throws {
        let bytes: [UInt8] = [
            0x61, 0xFF, 0x62, 0xE4, 0xB8, 0x20, 0xF0, 0x9F, 0x98, 0x80, 0xC0, 0xAF,
        ]
        let ids = Fixture.gpt2.encode(bytes: bytes)
        #expect(try Fixture.gpt2.decode(ids) == String(decoding: bytes, as: UTF8.self))
        #expect(try Fixture.gpt2.decode(ids).unicodeScalars.filter { $0 == "\u{FFFD}" }.count == 4)
    }

    /// Expected values from Python's `unicodedata.normalize("NFC", …)`.
    @Test func nfcOfSupplementaryStarterWithMarks() throws {
        let s = "\u{10074}\u{32D}\u{322}\u{341}'"
        #expect(nfc(s).unicodeScalars.map(\.value) == [0x10074, 0x322, 0x32D, 0x301, 0x27])
        #expect(try Fixture.qwenNFC.decode(Fixture.qwenNFC.encode(s)) == nfc(s))
        #expect(nfc("e\u{301}\u{212B}") == "é\u{C5}")
    }

    @Test func specialTokens() throws {
        let t = "a<|endoftext|>b"
        #expect(Fixture.gpt2.encode(t, allowedSpecial: .all) == [64, 50256, 65])
        #expect(
            Fixture.gpt2.encode(t, allowedSpecial: .some(["<|endoftext|>"])) == [64, 50256, 65])
        #expect(!Fixture.gpt2.encode(t, allowedSpecial: .none).contains(50256))
        #expect(try Fixture.gpt2.decode([64, 50256, 65]) == t)
        #expect(try Fixture.gpt2.decode([64, 50256, 65], skipSpecial: true) == "ab")
        #expect(Fixture.qwen.encode("<think>hi</think><|im_end|>").first == 151_667)
        // '<' that starts no special token, specials back to back, and text after the last one
        // (the scan jumps between '<' bytes with memchr).
        let mixed = "x < y <|endoftext|><|endoftext|> z <|endof <"
        let ordinary = { (s: String) in Fixture.gpt2.encode(s, allowedSpecial: .none) }
        #expect(Fixture.gpt2.encode(mixed, allowedSpecial: .all)
                == ordinary("x < y ") + [50256, 50256] + ordinary(" z <|endof <"))
    }

    @Test func longPiecesUseTheHeapPathConsistently() {
        var fuzz = Fuzz(state: 3)
        let letters = Array("abcdefghij ")
        for n in [300, 1000, 5000] {
            let s = String((0..<n).map { _ in letters[Int(fuzz.next() % 10)] })
            var quadratic: [UInt32] = []
            var heap: [UInt32] = []
            var scratch = BPEScratch()
            let bytes = Array(s.utf8)
            Fixture.gpt2.byteIDs.withUnsafeBufferPointer { bid in
                Fixture.gpt2.pairs.withLookup { lookup in
                    bytes.withUnsafeBufferPointer { b in
                        scratch.bpeHeap(b.baseAddress!, n, bid.baseAddress!, lookup, into: &heap)
                        var q = BPEScratch()
                        q.bpeQuadratic(
                            b.baseAddress!, n, bid.baseAddress!, lookup, into: &quadratic)
                    }
                }
            }
            #expect(heap == quadratic)
            #expect((try? Fixture.gpt2.decode(heap)) == s)
        }
    }

    @Test func batchEqualsSingle() {
        var fuzz = Fuzz(state: 11)
        let texts = (0..<64).map { _ in fuzz.string(maxAtoms: 40) }
        let batch = Fixture.gpt2.encodeBatch(texts, threads: 4)
        #expect(batch == texts.map { Fixture.gpt2.encode($0) })
    }

    @Test func streamingDecoderNeverSplitsCharacters() throws {
        let text = "héllo 中文 👨‍👩‍👧 🇺🇸 done"
        for tok in [Fixture.gpt2, Fixture.trained] {
            let ids = tok.encode(text)
            var dec = StreamingDecoder(tokenizer: tok)
            var out = ""
            for id in ids {
                let piece = try dec.push(id)
                #expect(!piece.unicodeScalars.contains("\u{FFFD}"))
                out += piece
            }
            out += dec.finish()
            #expect(out == text)
        }
        var dec = StreamingDecoder(tokenizer: Fixture.gpt2)
        #expect(try dec.push(47249) == "")  // F0 9F 98: three bytes of the four of 😀
        #expect(try dec.push(222) == "😀")
        #expect(throws: ToolkitError.self) { _ = try Fixture.gpt2.decode([50_300]) }
    }
}

@Suite struct FileTests {
    @Test func writesTheFixtureTokenizerJSONByteForByte() throws {
        let written = Fixture.trained.huggingFaceJSON()
        let original = try String(contentsOfFile: Fixture.path("tokenizer.json"), encoding: .utf8)
        #expect(written == original)
    }

    @Test func vocabMergesAndTiktokenFormsAgree() throws {
        let pair = try BPETokenizer.loadVocabMerges(
            vocabPath: Fixture.path("trained-vocab.json"),
            mergesPath: Fixture.path("trained-merges.txt"))
        #expect(pair.contentHash == Fixture.trained.contentHash)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tok-\(getpid())")
        defer { try? FileManager.default.removeItem(at: dir) }
        let ranks = dir.appendingPathComponent("t.tiktoken").path
        try Fixture.trained.write(to: ranks, format: .tiktoken)
        let fromRanks = try BPETokenizer.load(path: ranks)
        #expect(fromRanks.endOfTextID == 0)
        let json = dir.appendingPathComponent("t.json").path
        try Fixture.trained.write(to: json, format: .huggingFace)
        let fromJSON = try BPETokenizer.load(path: json)
        #expect(fromJSON.contentHash == Fixture.trained.contentHash)
        for c in Fixture.cases {
            let text = c["text"] as! String
            #expect(fromRanks.encode(text) == Fixture.trained.encode(text))
            #expect(pair.encode(text) == Fixture.trained.encode(text))
        }
    }

    /// The tiktoken export keeps every special and added token (`.specials.json` beside the ranks).
    @Test func tiktokenExportKeepsEverySpecialToken() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tok-specials-\(getpid())")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let corpus = String(repeating: "<|im_start|>user hello world<|im_end|> the cat sat on the mat. ", count: 200)
        var options = BPETrainerOptions(vocabSize: 300)
        options.specialTokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        let trained = try BPETrainer.train(texts: [corpus], options: options)
        let ranks = dir.appendingPathComponent("t.tiktoken").path
        let written = try trained.write(to: ranks, format: .tiktoken)
        #expect(written == [ranks, ranks + ".specials.json"])
        let back = try BPETokenizer.load(path: ranks)
        #expect(back.specialTokens == trained.specialTokens)
        #expect(back.encode(corpus) == trained.encode(corpus))
        #expect(back.encode("<|im_start|>x").first == trained.specialTokens.first { $0.content == "<|im_start|>" }!.id)
        // A malformed sidecar is an error naming it.
        try "{\"pretokenizer\": \"nope\"}".write(toFile: ranks + ".specials.json", atomically: true, encoding: .utf8)
        #expect(throws: ToolkitError.self) { _ = try BPETokenizer.load(path: ranks) }
    }

    @Test func jsonReaderMatchesTheSpec() throws {
        let text =
            #"{"a": [1, -2.5e1, true, false, null, "x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00\ud800"], "\ufeffk": {}}"#
        let v = try JSONReader.parse(Data(text.utf8), path: "t") as! [String: Any]
        let a = v["a"] as! [Any]
        #expect((a[0] as! NSNumber).intValue == 1 && (a[1] as! NSNumber).doubleValue == -25)
        #expect(a[2] as! Bool == true && a[3] as! Bool == false && a[4] is NSNull)
        #expect(a[5] as! String == "x\"\\/\u{8}\u{C}\n\r\té😀\u{FFFD}")
        #expect(v["\u{FEFF}k"] != nil)
        for bad in ["[1,]", "{\"a\" 1}", "[01x]", "\"abc", "[1] 2", "[\"\\q\"]", "-", "nul"] {
            #expect(throws: ToolkitError.self) {
                _ = try JSONReader.parse(Data(bad.utf8), path: "t")
            }
        }
    }

    @Test func malformedFilesNameTheProblem() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
            "tokbad-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func expectError(_ name: String, _ content: String, _ fragment: String) {
            let p = dir.appendingPathComponent(name).path
            _ = FileManager.default.createFile(atPath: p, contents: Data(content.utf8))
            do {
                _ = try BPETokenizer.load(path: p)
                Issue.record("\(name) loaded")
            } catch {
                #expect("\(error)".contains(fragment), "\(error)")
            }
        }
        expectError("a.tiktoken", "IQ== 0\nnot-base64!! x\n", "line 2")
        expectError("b.json", #"{"model": {"type": "Unigram"}}"#, "model.type")
        expectError(
            "c.json",
            #"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "ByteLevel"}}"#,
            "byte 0x")
        expectError("d.json", "{", "not valid JSON")
        expectError("d2.json", #"{"model": {"vocab": {"a": 0,, }}}"#, "at byte offset 28")
        expectError("d3.json", "{\"a\": \"x\u{1}\"}", "control character")
        expectError(
            "f.json", #"{"model": {"type": "BPE", "ignore_merges": true}}"#, "model.ignore_merges")
        let mergesDir = dir.appendingPathComponent("vm")
        try FileManager.default.createDirectory(at: mergesDir, withIntermediateDirectories: true)
        try Data(#"{"a": 0, "b": 1}"#.utf8).write(
            to: mergesDir.appendingPathComponent("vocab.json"))
        try Data("#version: 0.2\na b\na c d\n".utf8).write(
            to: mergesDir.appendingPathComponent("merges.txt"))
        #expect {
            _ = try BPETokenizer.load(path: mergesDir.path)
        } throws: { "\($0)".contains("merges.txt: line 3") }
        expectError("e.tiktoken", "IQ== 0\n", "has no rank")
    }
}

@Suite struct TrainerTests {
    @Test func trainingIsDeterministicAndRoundTrips() throws {
        var fuzz = Fuzz(state: 5)
        let texts = (0..<50).map { _ in fuzz.string(maxAtoms: 60) }
        var o = BPETrainerOptions(vocabSize: 400)
        o.threads = 1
        let a = try BPETrainer.train(texts: texts, options: o)
        o.threads = 4
        let b = try BPETrainer.train(texts: texts, options: o)
        #expect(a.huggingFaceJSON() == b.huggingFaceJSON())
        #expect(a.vocabSize <= 400)
        for t in texts { #expect(try a.decode(a.encode(t)) == t) }
    }

    /// HF BpeTrainer merges on a committed synthetic text (FixtureGenerators/trainer_parity.py),
    /// for every pre-tokenizer, with two special tokens and min_frequency 2.
    @Test(arguments: Pretokenizer.allCases)
    func matchesHuggingFaceOnSyntheticText(_ pre: Pretokenizer) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixture.path("trainer-parity.json")))
        let root = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        let expected = (root["results"] as! [String: Any])[pre.rawValue] as! [String: Any]
        var o = BPETrainerOptions(vocabSize: 700)
        o.pretokenizer = pre
        o.minFrequency = 2
        o.specialTokens = ["<|endoftext|>", "<pad>"]
        let tok = try BPETrainer.train(texts: [root["text"] as! String], options: o)
        let merges = tok.merges.map {
            tok.vocabString(Int($0.left))! + " " + tok.vocabString(Int($0.right))!
        }
        #expect(merges == expected["merges"] as! [String])
        #expect(tok.vocabSize == (expected["vocab_size"] as! NSNumber).intValue)
    }

    @Test func reproducesTheFixtureMergesOnTinyShakespeare() throws {
        guard let path = Fixture.corpus("tinyshakespeare.txt") else { return }
        var o = BPETrainerOptions(vocabSize: 1000)
        o.minFrequency = 0
        o.specialTokens = ["<|endoftext|>"]
        let (tok, _) = try BPETrainer.train(files: [path], options: o)
        #expect(tok.merges == Fixture.trained.merges)
        #expect(tok.huggingFaceJSON() == Fixture.trained.huggingFaceJSON())
    }
}
