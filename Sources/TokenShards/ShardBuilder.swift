import Foundation
import HeapModule
import ToolkitSupport

/// Settings of a sharding run (`toolkit shard`).
public struct ShardBuildOptions: Sendable {
    /// Input files and directories.
    public var inputs: [String]
    public var outputDirectory: String
    public var writer = ShardWriterOptions()
    /// Fraction of the tokens (the last ones) held out for validation.
    public var valFraction = 0.0
    /// Validation by documents instead: this many whole documents (a number ≥ 1), or this fraction
    /// of the documents (below 1), chosen by `valSeed` from the whole corpus (`ValidationDocuments`)
    /// and written after the training documents, so the split is still the stream's tail.
    public var valDocuments: Double?
    public var valSeed: UInt64 = 0
    /// Document separator inside files; nil makes every file one document.
    public var separator: String?
    /// JSON Lines input (one document per line); nil reads every file as text.
    public var jsonl: JSONLInput? = JSONLInput()
    /// Target size of the text pieces encoded in parallel. 128 KiB keeps a piece and its tokens
    /// in a core's L2 cache and gives a finer end of the run; on the 2-core test machine wall time
    /// equals that of 1 MiB pieces within noise (8 A/B rounds on the Gutenberg corpus).
    public var chunkBytes = 1 << 17
    /// Encoding threads.
    public var threads = ProcessInfo.processInfo.activeProcessorCount
    /// Draw a progress bar on standard error.
    public var progress = false
    /// Tests: stop (as if killed) once the journal records this many shards.
    var stopAfterJournaledShards: Int?

    public init(inputs: [String], outputDirectory: String) {
        self.inputs = inputs
        self.outputDirectory = outputDirectory
    }
}

/// What a sharding run did.
public struct ShardBuildReport: Codable, Sendable {
    public var manifest: ShardManifest
    public var inputFiles: Int
    public var inputBytes: Int
    /// Bytes read and encoded by this run (less than `inputBytes` when it resumed).
    public var bytesProcessed: Int
    /// Shards taken over from an interrupted run.
    public var resumedShards: Int
    public var seconds: Double
    public var megabytesPerSecond: Double
    public var tokensPerSecond: Double
    /// "FILE at byte offset N" of the first invalid UTF-8 sequence skipped, if any.
    public var firstInvalidUTF8: String?

    enum CodingKeys: String, CodingKey {
        case manifest, seconds
        case inputFiles = "input_files"
        case inputBytes = "input_bytes"
        case bytesProcessed = "bytes_processed"
        case resumedShards = "resumed_shards"
        case megabytesPerSecond = "megabytes_per_second"
        case tokensPerSecond = "tokens_per_second"
        case firstInvalidUTF8 = "first_invalid_utf8"
    }
}

/// Reads, encodes and shards a corpus; resumes an interrupted run into the same directory.
///
/// Invalid UTF-8: invalid byte sequences are skipped; the manifest counts them
/// (`invalid_utf8_bytes_skipped`) and the report names the first one.
public enum ShardBuilder {
    public static let journalName = "journal.json"
    /// The held validation documents' tokens while a run with `valDocuments` goes on.
    static let heldName = "validation-documents.tokens"

    public static func build(_ options: ShardBuildOptions, encoder: any TokenEncoder) throws
        -> ShardBuildReport
    {
        let started = monotonicSeconds()
        let info = encoder.info
        let shardTokens = options.writer.shardTokens
        guard options.valFraction >= 0, options.valFraction < 1 else {
            throw ToolkitError("--val-fraction must be in [0, 1) (got \(options.valFraction))")
        }
        guard !options.inputs.isEmpty else { throw ToolkitError("no input files given") }
        let files = try CorpusFile.expand(options.inputs, excluding: options.outputDirectory)
        let totalBytes = files.reduce(0) { $0 + $1.size }
        guard totalBytes > 0 else {
            throw ToolkitError(
                "empty input: \(options.inputs.joined(separator: ", ")) hold no text "
                    + "(\(files.count) files, 0 bytes)")
        }
        let separator = Array((options.separator ?? "").utf8)
        var fingerprint = Fingerprint(
            tokenizer: info, files: files, separator: options.separator,
            // Only when some input is read as JSON Lines: a text-only run resumes a journal written before JSONL existed.
            jsonl: options.jsonl.flatMap { j in files.contains { j.applies(to: $0.path) } ? j : nil },
            shardTokens: shardTokens, frameTokens: options.writer.frameTokens,
            level: options.writer.level, layout: options.writer.layout)
        let dir = options.outputDirectory
        let held = try options.valDocuments.map {
            try ValidationDocuments(request: $0, seed: options.valSeed, documents: {
                try countDocuments(ChunkStream(files: files, separator: separator, chunkBytes: options.chunkBytes, start: nil,
                                               jsonl: options.jsonl))
            })
        }
        fingerprint.validation = held.map { .init(documents: $0.chosen.count, seed: options.valSeed) }
        let journal = ShardJournal.resumable(directory: dir, fingerprint: fingerprint)
        try cleanDirectory(dir, keeping: Set(journal?.shards.map(\.file) ?? []))
        // The chosen documents' tokens wait in a file until the training documents are written.
        let heldFile = try held.map { _ in try HeldTokens(path: (dir as NSString).appendingPathComponent(heldName),
                                                          keeping: journal?.resume.heldTokens ?? 0) }

        let writer = try ShardWriter(
            directory: dir, tokenizer: info, options: options.writer,
            existing: journal?.shards ?? [])
        defer { writer.waitForPending() }  // no shard is still being written when we return
        let stream = try ChunkStream(
            files: files, separator: separator, chunkBytes: options.chunkBytes,
            start: journal?.resume.position, jsonl: options.jsonl)
        let startBytes = stream.consumed
        var consumed = startBytes
        var documents = journal?.resume.documents ?? 0
        var invalidBytes = journal?.resume.invalidUTF8Bytes ?? 0
        var skip = journal?.resume.skipTokens ?? 0
        var position = writer.tokensWritten - skip  // stream position of the next chunk
        var firstBad: String?
        var resumePoints: [Int: ResumePoint] = [:]
        var journaled = journal?.shards.count ?? 0
        let bar = ProgressBar(
            total: Double(totalBytes) / 1e6, label: "shard", unit: "MB",
            enabled: options.progress)

        let sessions = (0..<max(options.threads, 1)).map { _ in encoder.makeSession() }
        let spareTokens = Pool<[UInt32]>()
        let pipeline = OrderedPipeline<TextChunk, EncodedChunk>(
            workers: sessions.count, window: sessions.count * 4,
            produce: { try stream.next() },
            transform: { worker, chunk in
                var tokens = spareTokens.take() ?? []
                tokens.removeAll(keepingCapacity: true)
                let (skipped, bad) = try encodeChunk(
                    chunk.bytes, session: sessions[worker], into: &tokens)
                return EncodedChunk(
                    chunk: chunk, tokens: tokens, invalidBytes: skipped, firstInvalid: bad)
            })
        defer { pipeline.finish() }
        writer.runJob = { pipeline.runOnWorker($0) }
        var holding = false  // the current document is a chosen validation document
        while var e = try pipeline.next() {
            let at = e.chunk.position
            if e.invalidBytes > 0, firstBad == nil, let bad = e.firstInvalid {
                firstBad = "\(files[at.fileIndex].path) at byte offset \(at.offset + bad)"
            }
            let eot = at.atDocumentStart && documents > 0
            if at.atDocumentStart { holding = held?.chosen.contains(documents) ?? false }
            if holding, let heldFile {
                // Into the held tokens (resume points lie in training chunks only, so `skip` is 0 here).
                if eot { try heldFile.append([UInt32(info.eotID)]) }
                try heldFile.append(e.tokens[...])
                invalidBytes += e.invalidBytes
                if at.atDocumentStart { documents += 1 }
                consumed = e.chunk.consumedAfter
                let (bytes, tokens) = e.takeBuffers()
                stream.recycle(bytes)
                spareTokens.put(tokens)
                continue
            }
            let length = e.tokens.count + (eot ? 1 : 0)
            var boundary = (position + shardTokens - 1) / shardTokens * shardTokens
            while boundary < position + length {
                resumePoints[boundary / shardTokens] = ResumePoint(
                    position: at, skipTokens: boundary - position,
                    documents: documents, invalidUTF8Bytes: invalidBytes, heldTokens: heldFile?.count)
                boundary += shardTokens
            }
            invalidBytes += e.invalidBytes
            if at.atDocumentStart { documents += 1 }
            if eot && skip == 0 { try writer.append([UInt32(info.eotID)]) }
            try writer.append(e.tokens[max(skip - (eot ? 1 : 0), 0)...])
            skip = 0
            position += length
            let durable = writer.durableShards
            if durable.count > journaled, let point = resumePoints[durable.count] {
                try heldFile?.synchronize()  // the journal may name only held tokens on disk
                try ShardJournal(fingerprint: fingerprint, shards: durable, resume: point)
                    .write(directory: dir)
                journaled = durable.count
                resumePoints = resumePoints.filter { $0.key > journaled }
                if let stop = options.stopAfterJournaledShards, journaled >= stop {
                    throw ToolkitError("interrupted after \(journaled) shards (test hook)")
                }
            }
            consumed = e.chunk.consumedAfter
            let (bytes, tokens) = e.takeBuffers()
            stream.recycle(bytes)
            spareTokens.put(tokens)
            bar.update(
                Double(consumed) / 1e6, extra: "\(ProgressBar.format(Double(position))) tok")
        }
        bar.finish()
        var valTokens: Int? = nil
        if let heldFile {
            valTokens = heldFile.count
            try heldFile.forEachBlock { try writer.append($0) }
        }
        let manifest = try writer.finish(
            valFraction: options.valFraction, documents: documents,
            invalidUTF8Bytes: invalidBytes, valTokens: valTokens, valDocuments: held?.chosen.count)
        try heldFile?.remove()
        try? FileManager.default.removeItem(
            atPath: (dir as NSString).appendingPathComponent(journalName))
        let seconds = monotonicSeconds() - started
        let processed = consumed - startBytes
        return ShardBuildReport(
            manifest: manifest, inputFiles: files.count, inputBytes: totalBytes,
            bytesProcessed: processed, resumedShards: journal?.shards.count ?? 0,
            seconds: seconds, megabytesPerSecond: Double(processed) / 1e6 / seconds,
            tokensPerSecond: Double(manifest.totalTokens - (journal?.tokens ?? 0)) / seconds,
            firstInvalidUTF8: firstBad)
    }

    /// Documents in the corpus (a pass that reads it without encoding it).
    static func countDocuments(_ stream: ChunkStream) throws -> Int {
        var n = 0
        while let chunk = try stream.next() {
            if chunk.position.atDocumentStart { n += 1 }
            stream.recycle(chunk.bytes)
        }
        return n
    }

    /// Removes what an earlier run left (manifest, temporary files, shards not being resumed).
    static func cleanDirectory(_ dir: String, keeping: Set<String>) throws {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: dir) else { return }
        for name in names {
            let ours =
                name == ShardManifest.fileName || (name.hasPrefix(".") && name.hasSuffix(".tmp"))
                || (isShardFileName(name) && !keeping.contains(name))
            if ours {
                try fm.removeItem(atPath: (dir as NSString).appendingPathComponent(name))
            }
        }
    }

    /// Whether `name` looks like a shard file (`shard-NNNNNN.tks`).
    public static func isShardFileName(_ name: String) -> Bool {
        name.hasPrefix("shard-") && name.hasSuffix(".tks")
    }
}

/// A chunk and its tokens.
struct EncodedChunk {
    var chunk: TextChunk
    var tokens: [UInt32]
    var invalidBytes: Int
    var firstInvalid: Int?

    /// Moves the text and token buffers out (leaving empty ones), so they are uniquely
    /// referenced and can be refilled in place by later chunks.
    mutating func takeBuffers() -> ([UInt8], [UInt32]) {
        var bytes: [UInt8] = []
        var tokens: [UInt32] = []
        swap(&bytes, &chunk.bytes)
        swap(&tokens, &self.tokens)
        return (bytes, tokens)
    }
}

/// Everything that must match for a run to continue an interrupted one.
struct Fingerprint: Codable, Equatable {
    var tokenizer: TokenizerInfo
    var files: [CorpusFile]
    var separator: String?
    var jsonl: JSONLInput?
    var shardTokens: Int
    var frameTokens: Int
    var level: Int
    var layout: TokenLayout
    /// With validation documents: how many and the seed that chose them (nil without).
    var validation: HeldOut? = nil

    struct HeldOut: Codable, Equatable {
        var documents: Int
        var seed: UInt64
    }
}

/// Where to continue: the chunk holding the first token of the next shard.
struct ResumePoint: Codable, Equatable {
    var position: CorpusPosition
    /// Tokens of that chunk (leading end-of-text included) already in earlier shards.
    var skipTokens: Int
    /// Documents started before that chunk.
    var documents: Int
    var invalidUTF8Bytes: Int
    /// Tokens of the held validation documents so far (nil without them).
    var heldTokens: Int? = nil
}

/// `journal.json`: progress of an unfinished run, rewritten atomically after shards land.
struct ShardJournal: Codable {
    var fingerprint: Fingerprint
    var shards: [ShardEntry]
    var resume: ResumePoint

    var tokens: Int { shards.reduce(0) { $0 + $1.tokens } }

    func write(directory: String) throws {
        let data = try JSONEncoder().encode(self)
        try AtomicFile.write(
            data, to: (directory as NSString).appendingPathComponent(ShardBuilder.journalName))
    }

    /// The journal in `directory` if it belongs to the same run and its shards are intact.
    static func resumable(directory: String, fingerprint: Fingerprint) -> ShardJournal? {
        let path = (directory as NSString).appendingPathComponent(ShardBuilder.journalName)
        guard let data = FileManager.default.contents(atPath: path),
            let journal = try? JSONDecoder().decode(ShardJournal.self, from: data),
            journal.fingerprint == fingerprint
        else { return nil }
        for entry in journal.shards {
            let file = (directory as NSString).appendingPathComponent(entry.file)
            guard let (header, _) = try? ShardCodec.read(path: file),
                hex32(header.checksum) == entry.crc32, Int(header.tokenCount) == entry.tokens
            else { return nil }
        }
        return journal
    }
}

/// The documents held out for validation: `chosen`, a set of document indices (0-based, in corpus
/// order). Exactly N of the D documents are chosen (N = the request, or round(request · D) for a
/// fraction below 1): those with the N smallest SplitMix64 hashes of (seed, index), so the choice
/// is spread over the whole corpus, depends on nothing but the corpus and the seed, and takes
/// memory for N indices only.
struct ValidationDocuments {
    let chosen: Set<Int>

    init(request: Double, seed: UInt64, documents: () throws -> Int) throws {
        guard request > 0, request.isFinite, request < 1 || request == request.rounded() else {
            throw ToolkitError("--val-documents must be a whole number of documents or a fraction in (0, 1), got \(request)")
        }
        let total = try documents()
        let n = request < 1 ? Int((request * Double(total)).rounded()) : Int(request)
        guard n >= 1, n < total else {
            throw ToolkitError("--val-documents \(request): the corpus has \(total) documents, so \(n) held out would leave "
                               + (n < 1 ? "no validation document" : "no training document"))
        }
        chosen = Self.smallestHashes(n, of: total, seed: seed)
    }

    static func hash(_ index: Int, seed: UInt64) -> UInt64 {
        var g = SplitMix64(seed: seed ^ (UInt64(index) &* 0xD1B5_4A32_D192_ED03))
        return g.next()
    }

    /// The `n` indices below `total` with the smallest hashes (a heap bounded to `n` entries).
    static func smallestHashes(_ n: Int, of total: Int, seed: UInt64) -> Set<Int> {
        struct Entry: Comparable {
            var hash: UInt64, index: Int
            static func < (a: Entry, b: Entry) -> Bool { a.hash < b.hash }
        }
        var heap = Heap<Entry>()
        for i in 0..<total {
            let e = Entry(hash: hash(i, seed: seed), index: i)
            if heap.count < n {
                heap.insert(e)
            } else if e < heap.max! {
                _ = heap.replaceMax(with: e)
            }
        }
        return Set(heap.unordered.map(\.index))
    }
}

/// The held validation documents' tokens, appended to a file in the output folder (little-endian
/// UInt32) until the training documents are written; a resumed run cuts it back to the count its
/// journal names.
final class HeldTokens {
    let path: String
    private let handle: FileHandle
    private(set) var count: Int

    init(path: String, keeping: Int) throws {
        self.path = path
        let fm = FileManager.default
        try AtomicFile.ensureDirectory((path as NSString).deletingLastPathComponent)
        // A file that cannot be created fails the open just below, which names it.
        if !fm.fileExists(atPath: path) { _ = fm.createFile(atPath: path, contents: nil) }
        guard let h = FileHandle(forUpdatingAtPath: path) else { throw ToolkitError.file(path, "cannot open for writing") }
        handle = h
        do {
            // A resumed run needs the tokens its journal names (a shorter file would be padded with zeros).
            guard try h.seekToEnd() >= UInt64(keeping * 4) else {
                throw ToolkitError.file(path, "holds fewer than the \(keeping) tokens the journal names; remove journal.json to start over")
            }
            try h.truncate(atOffset: UInt64(keeping * 4))
            try h.seekToEnd()
        } catch let e as ToolkitError {
            throw e
        } catch {
            throw ToolkitError.file(path, "cannot cut back to \(keeping) tokens: \(error)")
        }
        count = keeping
    }

    func append(_ tokens: ArraySlice<UInt32>) throws {
        guard !tokens.isEmpty else { return }
        try tokens.withUnsafeBytes { try handle.write(contentsOf: $0) }
        count += tokens.count
    }

    func synchronize() throws { try handle.synchronize() }

    /// The tokens from the start, in blocks of at most a million.
    func forEachBlock(_ body: ([UInt32]) throws -> Void) throws {
        try handle.seek(toOffset: 0)
        var left = count
        while left > 0 {
            let n = min(left, 1 << 20)
            guard let data = try handle.read(upToCount: n * 4), data.count == n * 4 else {
                throw ToolkitError.file(path, "ended before its \(count) tokens")
            }
            try body(data.withUnsafeBytes { Array($0.bindMemory(to: UInt32.self)) })
            left -= n
        }
    }

    func remove() throws {
        try handle.close()
        try FileManager.default.removeItem(atPath: path)
    }
}
