import Foundation
import ToolkitSupport

/// Tokenizer file formats read and written.
public enum TokenizerFileFormat: String, Sendable, CaseIterable {
    /// HF `tokenizer.json` (byte-level BPE).
    case huggingFace = "hf"
    /// tiktoken rank file: `base64(bytes) rank` per line; rank = id = merge priority. The special
    /// and added tokens, which tiktoken keeps in code, go into `<file>.specials.json` beside it.
    case tiktoken
    /// GPT-2's `vocab.json` + `merges.txt`.
    case vocabMerges = "gpt2"
}

extension BPETokenizer {
    /// Ids at or above this are rejected when reading files (16.7 M; real vocabularies are ≤ 300 k).
    static let maxTokenID = 1 << 24

    // MARK: - Loading

    /// Loads a tokenizer, detecting the format: a directory (holding `tokenizer.json`, or
    /// `vocab.json` + `merges.txt`, or one `.tiktoken` file), an HF `tokenizer.json`, a
    /// `vocab.json` (with `merges.txt` beside it) or a `.tiktoken` rank file.
    ///
    /// `pretokenizer` chooses the regex and special tokens for formats that do not store them
    /// (`.tiktoken`, `vocab.json`); when nil it is guessed from the vocabulary size (151,643
    /// ranks: Qwen; 100,256: cl100k; otherwise GPT-2). HF files carry their own.
    public static func load(path: String, pretokenizer: Pretokenizer? = nil) throws -> BPETokenizer
    {
        let tok = try detectAndLoad(path: path, pretokenizer: pretokenizer)
        if let pretokenizer, tok.pretokenizer != pretokenizer {
            throw ToolkitError.file(
                path,
                "the file's pre-tokenizer is \(tok.pretokenizer.rawValue), not \(pretokenizer.rawValue)"
            )
        }
        return tok
    }

    /// The tokenizer a model folder carries, in the order HF and tiktoken users expect:
    /// `tokenizer.json`, else `vocab.json` (with `merges.txt` beside it), else its single
    /// `.tiktoken` file; nil when it has none.
    public static func tokenizerFile(inFolder folder: String) -> String? {
        let dir = URL(fileURLWithPath: folder), fm = FileManager.default
        for name in ["tokenizer.json", "vocab.json"] where fm.fileExists(atPath: dir.appendingPathComponent(name).path) {
            return dir.appendingPathComponent(name).path
        }
        let ranks = ((try? fm.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasSuffix(".tiktoken") }
        return ranks.count == 1 ? dir.appendingPathComponent(ranks[0]).path : nil
    }

    private static func detectAndLoad(path: String, pretokenizer: Pretokenizer?) throws
        -> BPETokenizer
    {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw ToolkitError.file(path, "no such file or directory")
        }
        if isDir.boolValue {
            guard let file = tokenizerFile(inFolder: path) else {
                throw ToolkitError.file(
                    path, "directory holds no tokenizer.json, vocab.json + merges.txt, or single .tiktoken file")
            }
            return try detectAndLoad(path: file, pretokenizer: pretokenizer)
        }
        let name = URL(fileURLWithPath: path).lastPathComponent
        if name.hasSuffix(".tiktoken") {
            return try loadTiktoken(path: path, pretokenizer: pretokenizer)
        }
        if name == "merges.txt" {
            let vocab = URL(fileURLWithPath: path).deletingLastPathComponent()
                .appendingPathComponent("vocab.json").path
            return try loadVocabMerges(
                vocabPath: vocab, mergesPath: path, pretokenizer: pretokenizer)
        }
        let data = try readFile(path)
        let first = data.first { !($0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09) }
        if first == UInt8(ascii: "{") {
            let root = try parseJSONObject(data, path: path)
            if root["model"] is [String: Any] { return try huggingFace(root: root, path: path) }
            let merges = URL(fileURLWithPath: path).deletingLastPathComponent()
                .appendingPathComponent("merges.txt").path
            return try vocabMerges(
                vocab: root, vocabPath: path, mergesPath: merges, pretokenizer: pretokenizer)
        }
        return try tiktoken(data: data, path: path, pretokenizer: pretokenizer)
    }

    static func readFile(_ path: String) throws -> Data {
        do {
            return try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ToolkitError.file(path, "cannot read: \(error.localizedDescription)")
        }
    }

    static func parseJSONObject(_ data: Data, path: String) throws -> [String: Any] {
        let any = try JSONReader.parse(data, path: path)
        guard let root = any as? [String: Any] else {
            throw ToolkitError.file(path, "top level is not a JSON object")
        }
        return root
    }

    /// Reads an HF `tokenizer.json` (byte-level BPE: GPT-2 style, or Qwen2/3 style with an NFC
    /// normaliser, a `Split` regex and added tokens).
    public static func loadHuggingFace(path: String) throws -> BPETokenizer {
        try huggingFace(root: parseJSONObject(readFile(path), path: path), path: path)
    }

    private static func huggingFace(root: [String: Any], path: String) throws -> BPETokenizer {
        func fail(_ key: String, _ what: String) -> ToolkitError {
            ToolkitError.file(path, "key \(key): \(what)")
        }
        guard let model = root["model"] as? [String: Any] else {
            throw fail("model", "missing or not an object")
        }
        if let type = model["type"], (type as? String) != "BPE" {
            throw fail("model.type", "unsupported model type \(type) (only byte-level BPE)")
        }
        if let b = model["ignore_merges"] as? Bool, b {
            throw fail("model.ignore_merges", "true is not supported")
        }
        if let d = model["dropout"] as? NSNumber, d.doubleValue > 0 {
            throw fail("model.dropout", "BPE dropout is not supported")
        }
        if let b = model["byte_fallback"] as? Bool, b {
            throw fail("model.byte_fallback", "true is not supported")
        }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let s = model[key] as? String, !s.isEmpty {
                throw fail("model.\(key)", "\"\(s)\" is not supported")
            }
        }
        guard let vocab = model["vocab"] as? [String: Any] else {
            throw fail("model.vocab", "missing or not an object")
        }
        guard let mergeList = model["merges"] as? [Any] else {
            throw fail("model.merges", "missing or not an array")
        }

        var specials: [SpecialToken] = []
        if let added = root["added_tokens"] {
            guard let list = added as? [Any] else { throw fail("added_tokens", "not an array") }
            for (k, item) in list.enumerated() {
                guard let t = item as? [String: Any], let content = t["content"] as? String,
                    let id = (t["id"] as? NSNumber)?.intValue, id >= 0, id < maxTokenID
                else {
                    throw fail(
                        "added_tokens[\(k)]",
                        "needs \"id\" (non-negative integer) and \"content\" (string)")
                }
                specials.append(
                    SpecialToken(content: content, id: id, special: (t["special"] as? Bool) ?? true)
                )
            }
        }
        let specialContents = Set(specials.map(\.content))

        var nfc = false
        if let norm = root["normalizer"], !(norm is NSNull) {
            guard let n = norm as? [String: Any], let type = n["type"] as? String else {
                throw fail("normalizer", "not an object with a \"type\"")
            }
            if type == "NFC" {
                nfc = true
            } else if type == "Sequence", let list = n["normalizers"] as? [[String: Any]],
                list.allSatisfy({ ($0["type"] as? String) == "NFC" })
            {
                nfc = !list.isEmpty
            } else {
                throw fail("normalizer.type", "unsupported normalizer \(type) (only NFC or none)")
            }
        }

        let pre = try huggingFacePretokenizer(root["pre_tokenizer"], fail: fail)

        var idOf: [String: Int] = [:]
        idOf.reserveCapacity(vocab.count)
        var maxID = -1
        for (token, value) in vocab {
            guard let id = (value as? NSNumber)?.intValue, id >= 0, id < maxTokenID else {
                throw fail("model.vocab[\"\(token)\"]", "id is not a non-negative integer")
            }
            idOf[token] = id
            maxID = max(maxID, id)
        }
        var tokens = [[UInt8]?](repeating: nil, count: maxID + 1)
        for (token, id) in idOf {
            guard let bytes = ByteLevel.decode(token) else {
                if specialContents.contains(token) { continue }
                throw fail("model.vocab[\"\(token)\"]", "not a byte-level token string")
            }
            if tokens[id] != nil {
                throw fail("model.vocab[\"\(token)\"]", "id \(id) is used twice")
            }
            tokens[id] = bytes
        }
        var pairs: [(UInt32, UInt32)] = []
        pairs.reserveCapacity(mergeList.count)
        for (k, item) in mergeList.enumerated() {
            let parts: [String]
            if let s = item as? String {
                parts = s.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
            } else if let a = item as? [Any], a.count == 2, let l = a[0] as? String,
                let r = a[1] as? String
            {
                parts = [l, r]
            } else {
                throw fail("model.merges[\(k)]", "expected \"a b\" or [\"a\", \"b\"]")
            }
            guard parts.count == 2 else {
                throw fail("model.merges[\(k)]", "expected two tokens, got \(parts.count)")
            }
            guard let a = idOf[parts[0]], let b = idOf[parts[1]] else {
                throw fail(
                    "model.merges[\(k)]",
                    "token \(idOf[parts[0]] == nil ? parts[0] : parts[1]) is not in model.vocab")
            }
            pairs.append((UInt32(a), UInt32(b)))
        }
        return try BPETokenizer(
            tokens: tokens, mergePairs: pairs, specialTokens: specials, pretokenizer: pre,
            normalizesNFC: nfc,
            source: path)
    }

    private static func huggingFacePretokenizer(
        _ value: Any?, fail: (String, String) -> ToolkitError
    ) throws -> Pretokenizer {
        guard let pre = value as? [String: Any], let type = pre["type"] as? String else {
            throw fail(
                "pre_tokenizer",
                "missing or not an object with a \"type\" (byte-level BPE needs ByteLevel)")
        }
        func checkByteLevel(_ b: [String: Any], key: String, regex: Bool) throws {
            if (b["add_prefix_space"] as? Bool) == true {
                throw fail("\(key).add_prefix_space", "true is not supported")
            }
            let useRegex = (b["use_regex"] as? Bool) ?? true
            if useRegex != regex {
                throw fail("\(key).use_regex", "expected \(regex) here")
            }
        }
        if type == "ByteLevel" {
            try checkByteLevel(pre, key: "pre_tokenizer", regex: true)
            return .gpt2
        }
        guard type == "Sequence", let list = pre["pretokenizers"] as? [[String: Any]] else {
            throw fail("pre_tokenizer.type", "unsupported pre-tokenizer \(type)")
        }
        guard list.count == 2, (list[0]["type"] as? String) == "Split",
            (list[1]["type"] as? String) == "ByteLevel"
        else {
            throw fail(
                "pre_tokenizer.pretokenizers", "expected [Split(regex), ByteLevel(use_regex=false)]"
            )
        }
        try checkByteLevel(list[1], key: "pre_tokenizer.pretokenizers[1]", regex: false)
        guard let pattern = (list[0]["pattern"] as? [String: Any])?["Regex"] as? String else {
            throw fail("pre_tokenizer.pretokenizers[0].pattern", "expected {\"Regex\": ...}")
        }
        if let b = list[0]["behavior"] as? String, b != "Isolated" {
            throw fail(
                "pre_tokenizer.pretokenizers[0].behavior", "only Isolated is supported, got \(b)")
        }
        if (list[0]["invert"] as? Bool) == true {
            throw fail("pre_tokenizer.pretokenizers[0].invert", "true is not supported")
        }
        guard let p = Pretokenizer.matching(pattern: pattern) else {
            throw fail(
                "pre_tokenizer.pretokenizers[0].pattern.Regex",
                "unsupported regex (known: GPT-2, GPT-4 cl100k, Qwen)")
        }
        return p
    }

    /// Reads a tiktoken rank file. Special tokens come from `pretokenizer` (see `load`).
    /// `normalizesNFC` gives the HF Qwen behaviour (tiktoken itself does not normalise).
    public static func loadTiktoken(
        path: String, pretokenizer: Pretokenizer? = nil, normalizesNFC: Bool = false
    ) throws -> BPETokenizer {
        try tiktoken(
            data: readFile(path), path: path, pretokenizer: pretokenizer,
            normalizesNFC: normalizesNFC)
    }

    private static func tiktoken(
        data: Data, path: String, pretokenizer: Pretokenizer?, normalizesNFC: Bool = false
    ) throws -> BPETokenizer {
        var ranked: [(bytes: [UInt8], rank: Int)] = []
        var line = 0
        var start = data.startIndex
        while start < data.endIndex {
            line += 1
            let end = data[start...].firstIndex(of: 0x0A) ?? data.endIndex
            var lineData = data[start..<end]
            start = end < data.endIndex ? end + 1 : end
            if lineData.last == 0x0D { lineData = lineData.dropLast() }
            if lineData.isEmpty { continue }
            guard let space = lineData.firstIndex(of: 0x20),
                let token = Data(base64Encoded: Data(lineData[..<space])),
                let rank = Int(String(decoding: lineData[(space + 1)...], as: UTF8.self)),
                rank >= 0, rank < maxTokenID
            else {
                throw ToolkitError.file(path, "line \(line): expected \"<base64 token> <rank>\"")
            }
            guard !token.isEmpty else { throw ToolkitError.file(path, "line \(line): empty token") }
            ranked.append((Array(token), rank))
        }
        guard !ranked.isEmpty else { throw ToolkitError.file(path, "no ranks in file") }
        let maxRank = ranked.map(\.rank).max() ?? 0
        var tokens = [[UInt8]?](repeating: nil, count: maxRank + 1)
        for r in ranked {
            if tokens[r.rank] != nil {
                throw ToolkitError.file(path, "rank \(r.rank) appears twice")
            }
            tokens[r.rank] = r.bytes
        }
        let pre =
            pretokenizer
            ?? (ranked.count == 151_643 ? .qwen : ranked.count == 100_256 ? .gpt4 : .gpt2)
        var specials = defaultSpecials(pre, tokens: tokens)
        var nfc = normalizesNFC
        if let side = try tiktokenSidecar(path) {
            guard pretokenizer == nil || pretokenizer == side.pretokenizer else {
                throw ToolkitError.file(path + specialsSuffix, "its pre-tokenizer is \(side.pretokenizer.rawValue), not \(pre.rawValue)")
            }
            specials = side.specials
            nfc = nfc || side.nfc
            return try BPETokenizer(tokens: tokens, mergePairs: try mergesFromRanks(tokens, path: path), specialTokens: specials,
                                    pretokenizer: side.pretokenizer, normalizesNFC: nfc, source: path)
        }
        let pairs = try mergesFromRanks(tokens, path: path)
        return try BPETokenizer(
            tokens: tokens, mergePairs: pairs, specialTokens: specials, pretokenizer: pre,
            normalizesNFC: nfc, source: path)
    }

    /// The sidecar of a rank file written here: `{"pretokenizer", "nfc", "special_tokens": {content: id},
    /// "added_tokens": {content: id}}` (added tokens are matched like specials but not `special` in HF's sense).
    static let specialsSuffix = ".specials.json"

    static func tiktokenSidecar(_ path: String) throws -> (pretokenizer: Pretokenizer, nfc: Bool, specials: [SpecialToken])? {
        let side = path + specialsSuffix
        guard FileManager.default.fileExists(atPath: side) else { return nil }
        let root = try parseJSONObject(try readFile(side), path: side)
        guard let name = root["pretokenizer"] as? String, let pre = Pretokenizer(rawValue: name) else {
            throw ToolkitError.file(side, "key 'pretokenizer' must be one of \(Pretokenizer.allCases.map(\.rawValue))")
        }
        var specials: [SpecialToken] = []
        for (key, special) in [("special_tokens", true), ("added_tokens", false)] {
            guard let map = root[key] as? [String: Any] else { throw ToolkitError.file(side, "key '\(key)' must be an object") }
            for (content, id) in map {
                guard let n = id as? NSNumber, n.intValue >= 0 else { throw ToolkitError.file(side, "\(key).\(content) must be a token id") }
                specials.append(SpecialToken(content: content, id: n.intValue, special: special))
            }
        }
        return (pre, root["nfc"] as? Bool ?? false, specials.sorted { $0.id < $1.id })
    }

    /// The special tokens a rank file gets: cl100k's and Qwen's real ids for those vocabularies;
    /// otherwise `<|endoftext|>` at the first id without a rank (50256 for GPT-2).
    static func defaultSpecials(_ pre: Pretokenizer, tokens: [[UInt8]?]) -> [SpecialToken] {
        let regular = tokens.count { $0 != nil }
        if pre == .gpt4 && regular == 100_256 && tokens.count == 100_256 {
            return [
                SpecialToken(content: "<|endoftext|>", id: 100_257),
                SpecialToken(content: "<|fim_prefix|>", id: 100_258),
                SpecialToken(content: "<|fim_middle|>", id: 100_259),
                SpecialToken(content: "<|fim_suffix|>", id: 100_260),
                SpecialToken(content: "<|endofprompt|>", id: 100_276),
            ]
        }
        if pre == .qwen && regular == 151_643 && tokens.count == 151_643 {
            return qwenAddedTokens
        }
        let gap = tokens.firstIndex { $0 == nil } ?? tokens.count
        return [SpecialToken(content: "<|endoftext|>", id: gap)]
    }

    /// Qwen2/Qwen3 added tokens (ids 151643–151668).
    public static let qwenAddedTokens: [SpecialToken] = {
        let special = [
            "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>",
            "<|object_ref_end|>",
            "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
            "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
        ]
        let added = [
            "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
            "<|fim_pad|>",
            "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>", "<think>",
            "</think>",
        ]
        return special.enumerated().map { SpecialToken(content: $1, id: 151_643 + $0) }
            + added.enumerated().map { SpecialToken(content: $1, id: 151_657 + $0, special: false) }
    }()

    /// Recovers the merge list from tiktoken ranks: each multi-byte token, in rank order, is the
    /// merge of the two parts that tiktoken's BPE with the lower ranks leaves of its bytes (the
    /// rule of the HF/transformers tiktoken converter). Tokens BPE cannot reach get no merge.
    static func mergesFromRanks(_ tokens: [[UInt8]?], path: String) throws -> [(UInt32, UInt32)] {
        var table = ByteStringTable(capacity: tokens.count)
        var idOfKey: [Int] = []
        for (id, t) in tokens.enumerated() {
            guard let t else { continue }
            if table.insert(t).inserted { idOfKey.append(id) }
        }
        for b in 0..<256 where table.find([UInt8(b)]) < 0 {
            throw ToolkitError.file(
                path, "byte 0x\(String(b, radix: 16)) has no rank (byte-level BPE needs all 256)")
        }
        var pairs: [(UInt32, UInt32)] = []
        var bounds: [Int] = []  // part k = t[bounds[k]..<bounds[k+1]]
        for (id, t) in tokens.enumerated() {
            guard let t, t.count >= 2 else { continue }
            t.withUnsafeBufferPointer { tb in
                let p = tb.baseAddress!
                func rank(_ a: Int, _ b: Int) -> Int {
                    let k = table.find(p + a, b - a, hash: hashBytes(p + a, b - a))
                    return k < 0 ? Int.max : idOfKey[k]
                }
                bounds = Array(0...t.count)
                while bounds.count > 3 {
                    var best = Int.max
                    var bi = -1
                    for k in 0..<(bounds.count - 2) {
                        let r = rank(bounds[k], bounds[k + 2])
                        if r < best {
                            best = r
                            bi = k
                        }
                    }
                    if bi < 0 || best >= id { break }
                    bounds.remove(at: bi + 1)
                }
                guard bounds.count == 3 else { return }
                let l = rank(0, bounds[1])
                let r = rank(bounds[1], t.count)
                guard l < id, r < id else { return }
                pairs.append((UInt32(l), UInt32(r)))
            }
        }
        return pairs
    }

    /// Reads GPT-2's `vocab.json` + `merges.txt`. Vocabulary entries `<|...|>` that no merge
    /// produces are special tokens.
    public static func loadVocabMerges(
        vocabPath: String, mergesPath: String, pretokenizer: Pretokenizer? = nil
    ) throws -> BPETokenizer {
        try vocabMerges(
            vocab: parseJSONObject(readFile(vocabPath), path: vocabPath), vocabPath: vocabPath,
            mergesPath: mergesPath, pretokenizer: pretokenizer)
    }

    private static func vocabMerges(
        vocab: [String: Any], vocabPath: String, mergesPath: String, pretokenizer: Pretokenizer?
    ) throws -> BPETokenizer {
        guard FileManager.default.fileExists(atPath: mergesPath) else {
            throw ToolkitError.file(mergesPath, "missing (vocab.json needs merges.txt beside it)")
        }
        let text = String(decoding: try readFile(mergesPath), as: UTF8.self)
        var idOf: [String: Int] = [:]
        var maxID = -1
        for (token, value) in vocab {
            guard let id = (value as? NSNumber)?.intValue, id >= 0, id < maxTokenID else {
                throw ToolkitError.file(
                    vocabPath, "key \"\(token)\": id is not a non-negative integer")
            }
            idOf[token] = id
            maxID = max(maxID, id)
        }
        var pairs: [(UInt32, UInt32)] = []
        var produced = Set<String>()
        for (k, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            var line = raw
            if line.hasSuffix("\r") { line = line.dropLast() }
            if line.isEmpty || (k == 0 && line.hasPrefix("#version")) { continue }
            let parts = line.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2 else {
                throw ToolkitError.file(
                    mergesPath, "line \(k + 1): expected two tokens separated by one space")
            }
            guard let a = idOf[String(parts[0])], let b = idOf[String(parts[1])] else {
                throw ToolkitError.file(mergesPath, "line \(k + 1): token not in \(vocabPath)")
            }
            pairs.append((UInt32(a), UInt32(b)))
            produced.insert(String(parts[0]) + String(parts[1]))
        }
        var tokens = [[UInt8]?](repeating: nil, count: maxID + 1)
        var specials: [SpecialToken] = []
        for (token, id) in idOf {
            if token.count > 4 && token.hasPrefix("<|") && token.hasSuffix("|>")
                && !produced.contains(token)
            {
                specials.append(SpecialToken(content: token, id: id))
                continue
            }
            guard let bytes = ByteLevel.decode(token) else {
                throw ToolkitError.file(
                    vocabPath, "key \"\(token)\": not a byte-level token string")
            }
            tokens[id] = bytes
        }
        return try BPETokenizer(
            tokens: tokens, mergePairs: pairs, specialTokens: specials,
            pretokenizer: pretokenizer ?? .gpt2,
            source: vocabPath)
    }

    // MARK: - Writing

    /// The byte-level string of token `id` (vocab key form), or the content of a special token.
    func vocabString(_ id: Int) -> String? {
        if let s = specialTokens.first(where: { $0.id == id }) { return s.content }
        guard let b = tokenBytes(id) else { return nil }
        return ByteLevel.encode(b)
    }

    /// HF `tokenizer.json`, formatted exactly as HF tokenizers saves it.
    public func huggingFaceJSON() -> String {
        let added: [JSONValue] = specialTokens.map {
            .object([
                ("id", .int($0.id)), ("content", .string($0.content)),
                ("single_word", .bool(false)),
                ("lstrip", .bool(false)), ("rstrip", .bool(false)), ("normalized", .bool(false)),
                ("special", .bool($0.special)),
            ])
        }
        func byteLevel(prefix: Bool, trim: Bool, regex: Bool) -> JSONValue {
            .object([
                ("type", .string("ByteLevel")), ("add_prefix_space", .bool(prefix)),
                ("trim_offsets", .bool(trim)),
                ("use_regex", .bool(regex)),
            ])
        }
        let pre: JSONValue
        let post: JSONValue
        let decoder: JSONValue
        if pretokenizer == .gpt2 {
            pre = byteLevel(prefix: false, trim: true, regex: true)
            post = byteLevel(prefix: true, trim: false, regex: true)
            decoder = byteLevel(prefix: true, trim: true, regex: true)
        } else {
            pre = .object([
                ("type", .string("Sequence")),
                (
                    "pretokenizers",
                    .array([
                        .object([
                            ("type", .string("Split")),
                            ("pattern", .object([("Regex", .string(pretokenizer.pattern))])),
                            ("behavior", .string("Isolated")), ("invert", .bool(false)),
                        ]),
                        byteLevel(prefix: false, trim: false, regex: false),
                    ])
                ),
            ])
            post = byteLevel(prefix: false, trim: false, regex: false)
            decoder = byteLevel(prefix: false, trim: false, regex: false)
        }
        var vocab: [(String, JSONValue)] = []
        vocab.reserveCapacity(vocabSize)
        for id in 0..<vocabSize {
            if let s = vocabString(id) { vocab.append((s, .int(id))) }
        }
        let mergeValues: [JSONValue] = merges.map {
            .array([
                .string(vocabString(Int($0.left)) ?? ""), .string(vocabString(Int($0.right)) ?? ""),
            ])
        }
        let root: JSONValue = .object([
            ("version", .string("1.0")), ("truncation", .null), ("padding", .null),
            ("added_tokens", .array(added)),
            ("normalizer", normalizesNFC ? .object([("type", .string("NFC"))]) : .null),
            ("pre_tokenizer", pre), ("post_processor", post), ("decoder", decoder),
            (
                "model",
                .object([
                    ("type", .string("BPE")), ("dropout", .null), ("unk_token", .null),
                    ("continuing_subword_prefix", .null), ("end_of_word_suffix", .null),
                    ("fuse_unk", .bool(false)),
                    ("byte_fallback", .bool(false)), ("ignore_merges", .bool(false)),
                    ("vocab", .object(vocab)),
                    ("merges", .array(mergeValues)),
                ])
            ),
        ])
        return root.pretty()
    }

    /// tiktoken rank file (`base64(bytes) id` per regular token, by id). Needs merge priority to
    /// follow id order (true for trained tokenizers and files read from tiktoken).
    public func tiktokenRanks() throws -> String {
        var last: UInt32 = 0
        for m in merges {
            guard m.result > last, m.result > m.left, m.result > m.right else {
                throw ToolkitError(
                    "cannot write tiktoken ranks: merge priority does not follow token ids")
            }
            last = m.result
        }
        var out = ""
        for id in 0..<vocabSize where !isSpecial(id) {
            guard let b = tokenBytes(id) else { continue }
            out += Data(b).base64EncodedString() + " " + String(id) + "\n"
        }
        return out
    }

    /// GPT-2 style `vocab.json` (one line, ordered by id) and `merges.txt`.
    public func vocabMergesFiles() -> (vocab: String, merges: String) {
        var vocab = "{"
        var first = true
        for id in 0..<vocabSize {
            guard let s = vocabString(id) else { continue }
            if !first { vocab += "," }
            first = false
            JSONValue.quote(s, into: &vocab)
            vocab += ":" + String(id)
        }
        vocab += "}"
        var merges = "#version: 0.2\n"
        for m in self.merges {
            merges +=
                (vocabString(Int(m.left)) ?? "") + " " + (vocabString(Int(m.right)) ?? "") + "\n"
        }
        return (vocab, merges)
    }

    /// Writes the tokenizer atomically in `format` (`vocabMerges` writes `vocab.json` and
    /// `merges.txt` into the directory `path`). Returns the paths written.
    @discardableResult
    public func write(to path: String, format: TokenizerFileFormat) throws -> [String] {
        switch format {
        case .huggingFace:
            try AtomicFile.write(huggingFaceJSON(), to: path)
            return [path]
        case .tiktoken:
            try AtomicFile.write(tiktokenRanks(), to: path)
            var root = "{\"pretokenizer\": "
            JSONValue.quote(pretokenizer.rawValue, into: &root)
            root += ", \"nfc\": \(normalizesNFC)"
            for (key, special) in [("special_tokens", true), ("added_tokens", false)] {
                root += ", \"\(key)\": {"
                for (i, t) in specialTokens.filter({ $0.special == special }).enumerated() {
                    if i > 0 { root += ", " }
                    JSONValue.quote(t.content, into: &root)
                    root += ": \(t.id)"
                }
                root += "}"
            }
            try AtomicFile.write(root + "}\n", to: path + Self.specialsSuffix)
            return [path, path + Self.specialsSuffix]
        case .vocabMerges:
            let dir = URL(fileURLWithPath: path)
            let files = vocabMergesFiles()
            let v = dir.appendingPathComponent("vocab.json").path
            let m = dir.appendingPathComponent("merges.txt").path
            try AtomicFile.write(files.vocab, to: v)
            try AtomicFile.write(files.merges, to: m)
            return [v, m]
        }
    }
}
