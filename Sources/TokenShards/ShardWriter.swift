import Foundation
import ToolkitSupport

/// Settings of the shard writer.
public struct ShardWriterOptions: Sendable {
    /// Tokens per shard; every shard but the last holds exactly this many.
    public var shardTokens = 1 << 20
    /// Tokens per zstd frame inside a shard.
    public var frameTokens = ShardCodec.defaultFrameTokens
    /// zstd level (1…22). Level 2 shards the Gutenberg corpus ~9 % faster than level 3 on two
    /// cores (less compression CPU beside the encoders) for 3 % larger shards (0.644 vs 0.626 of
    /// raw uint16); level 1 is no faster there and gives 0.696.
    public var level = 2
    public var layout = TokenLayout.plain
    /// Shards in flight at once (being compressed or written); `append` waits for a free slot.
    public var threads = ProcessInfo.processInfo.activeProcessorCount

    public init() {}
}

/// Writes a token stream as fixed-size shards plus `manifest.json`.
///
/// Tokens arrive in order through `append`; each full shard is compressed on a background thread
/// and written atomically (temporary file, then rename). `finish` writes the last, shorter shard
/// and the manifest. The manifest is written last, so it never lists a half-written shard.
public final class ShardWriter {
    public let directory: String
    public let tokenizer: TokenizerInfo
    public let options: ShardWriterOptions
    public let dtype: TokenDType

    private var buffer: [UInt32] = []
    private var nextIndex: Int
    private(set) public var tokensWritten: Int
    private let state: CompletionState
    private let group = DispatchGroup()
    private let slots: DispatchSemaphore
    /// Shard encoders (zstd context and buffers) and token buffers reused across shards.
    private let encoders = Pool<ShardEncoder>()
    private let tokenBuffers = Pool<[UInt32]>()

    /// - Parameter existing: shards already on disk from an interrupted run (resume); the next
    ///   token appended becomes the first token of shard `existing.count`.
    public init(
        directory: String, tokenizer: TokenizerInfo, options: ShardWriterOptions,
        existing: [ShardEntry] = []
    ) throws {
        guard options.shardTokens > 0, options.frameTokens > 0 else {
            throw ToolkitError("shard and frame sizes must be positive")
        }
        self.directory = directory
        self.tokenizer = tokenizer
        self.options = options
        dtype = TokenDType.fitting(vocabSize: tokenizer.vocabSize)
        nextIndex = existing.count
        tokensWritten = existing.reduce(0) { $0 + $1.tokens }
        state = CompletionState(existing)
        slots = DispatchSemaphore(value: max(options.threads, 1))
        buffer.reserveCapacity(options.shardTokens)
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true)
    }

    /// The file name of shard `index`.
    public static func fileName(_ index: Int) -> String {
        let digits = String(index)
        return "shard-" + String(repeating: "0", count: max(0, 6 - digits.count)) + digits + ".tks"
    }

    /// Documents added with `appendDocument`.
    public private(set) var documentsAppended = 0

    /// Appends one encoded document, preceded by the end-of-text id unless it is the first.
    public func appendDocument(_ tokens: [UInt32]) throws {
        if documentsAppended > 0 { try append([UInt32(tokenizer.eotID)]) }
        try append(tokens)
        documentsAppended += 1
    }

    /// Appends tokens; ids must be below the vocabulary size.
    public func append(_ tokens: some Collection<Int>) throws {
        if let bad = tokens.first(where: { $0 < 0 || $0 >= tokenizer.vocabSize }) {
            throw ToolkitError(
                "token id \(bad) is outside the vocabulary (size \(tokenizer.vocabSize))")
        }
        try append(tokens.map { UInt32($0) }[...])
    }

    /// Appends tokens; ids must be below the vocabulary size.
    public func append(_ tokens: ArraySlice<UInt32>) throws {
        try state.rethrow()
        if let bad = tokens.first(where: { Int($0) >= tokenizer.vocabSize }) {
            throw ToolkitError(
                "token id \(bad) is outside the vocabulary (size \(tokenizer.vocabSize))")
        }
        var rest = tokens
        while !rest.isEmpty {
            let n = min(rest.count, options.shardTokens - buffer.count)
            buffer.append(contentsOf: rest.prefix(n))
            rest = rest.dropFirst(n)
            if buffer.count == options.shardTokens { submit() }
        }
    }

    /// Appends tokens; ids must be below the vocabulary size.
    public func append(_ tokens: [UInt32]) throws { try append(tokens[...]) }

    /// The shards that are on disk with every earlier shard also on disk.
    public var durableShards: [ShardEntry] { state.durablePrefix() }

    private func submit() {
        var tokens = tokenBuffers.take() ?? []
        tokens.removeAll(keepingCapacity: true)
        tokens.reserveCapacity(options.shardTokens)
        swap(&tokens, &buffer)
        let index = nextIndex
        let firstToken = tokensWritten
        nextIndex += 1
        tokensWritten += tokens.count
        slots.wait()
        let job = ShardJob(
            directory: directory, index: index, firstToken: firstToken, tokens: tokens,
            dtype: dtype, options: options, tokenizerHash: tokenizer.hash)
        let state = self.state
        let slots = self.slots
        let encoders = self.encoders
        let tokenBuffers = self.tokenBuffers
        let group = self.group
        group.enter()
        // Compression (CPU) runs where `runJob` puts it; the write and its fsync (waiting on the
        // disk, not a core) always go to a dispatch thread.
        let work: @Sendable () -> Void = {
            let compressed = UncheckedBox(Result { try job.compress(encoders: encoders) })
            tokenBuffers.put(job.takeTokens())
            DispatchQueue.global().async {
                state.record(
                    index,
                    compressed.value.flatMap { encoder in
                        defer { encoders.put(encoder) }
                        return Result { try job.write(encoder.file) }
                    })
                slots.signal()
                group.leave()
            }
        }
        if runJob?(work) != true { DispatchQueue.global().async(execute: work) }
    }

    /// Runs a shard's compression somewhere other than the calling thread; returns false when it
    /// cannot (the job then goes to a global dispatch queue). `ShardBuilder` passes its encoding
    /// workers, so compression shares their cores instead of adding a thread.
    var runJob: ((@escaping @Sendable () -> Void) -> Bool)?

    /// Writes the last shard, waits for all shards, and writes the manifest.
    /// - Parameters:
    ///   - documents: documents in the stream; nil uses the count of `appendDocument` calls.
    ///   - invalidUTF8Bytes: recorded in the manifest.
    ///   - valTokens: the validation tail's length when it was chosen by documents (then
    ///     `valDocuments` of them); nil: `valFraction` of the tokens.
    public func finish(valFraction: Double, documents: Int? = nil, invalidUTF8Bytes: Int = 0, valTokens: Int? = nil,
                       valDocuments: Int? = nil) throws -> ShardManifest
    {
        guard tokensWritten + buffer.count > 0 else {
            throw ToolkitError("no tokens to write: the input is empty")
        }
        if !buffer.isEmpty { submit() }
        group.wait()
        try state.rethrow()
        let shards = state.durablePrefix()
        let total = shards.reduce(0) { $0 + $1.tokens }
        let valTokens = valTokens ?? Int((Double(total) * valFraction).rounded())
        let manifest = ShardManifest(
            tokenizer: tokenizer, dtype: dtype, layout: options.layout, zstdLevel: options.level,
            shardTokens: options.shardTokens, frameTokens: options.frameTokens,
            totalTokens: total, documents: documents ?? documentsAppended,
            invalidUTF8BytesSkipped: invalidUTF8Bytes,
            shards: shards,
            split: SplitInfo(
                valFraction: valDocuments == nil ? valFraction : Double(valTokens) / Double(total), trainTokens: total - valTokens,
                valTokens: valTokens, valStart: total - valTokens, valDocuments: valDocuments))
        try manifest.validate(path: ShardManifest.fileName)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try AtomicFile.write(
            try encoder.encode(manifest),
            to: (directory as NSString).appendingPathComponent(ShardManifest.fileName))
        return manifest
    }

    /// Waits for every shard in flight (used before abandoning a writer).
    public func waitForPending() { group.wait() }
}

/// Compresses and writes one shard (`compress`, then `write`).
private final class ShardJob: @unchecked Sendable {
    let directory: String
    let index: Int
    let firstToken: Int
    private var tokens: [UInt32]
    let tokenCount: Int
    let dtype: TokenDType
    let options: ShardWriterOptions
    let tokenizerHash: String

    init(
        directory: String, index: Int, firstToken: Int, tokens: [UInt32], dtype: TokenDType,
        options: ShardWriterOptions, tokenizerHash: String
    ) {
        self.directory = directory
        self.index = index
        self.firstToken = firstToken
        self.tokens = tokens
        tokenCount = tokens.count
        self.dtype = dtype
        self.options = options
        self.tokenizerHash = tokenizerHash
    }

    /// Encodes the shard file; the encoder (holding the bytes) goes back to `encoders` after
    /// `write`.
    func compress(encoders: Pool<ShardEncoder>) throws -> ShardEncoder {
        let encoder = try encoders.take() ?? ShardEncoder(level: options.level)
        do {
            try encoder.encode(
                tokens[...], dtype: dtype, layout: options.layout,
                frameTokens: options.frameTokens, tokenizerHash: tokenizerHash)
        } catch {
            encoders.put(encoder)
            throw error
        }
        return encoder
    }

    /// Writes the encoded file atomically and describes it for the manifest.
    func write(_ bytes: [UInt8]) throws -> ShardEntry {
        let name = ShardWriter.fileName(index)
        try AtomicFile.write(to: (directory as NSString).appendingPathComponent(name)) {
            try $0.write(contentsOf: bytes)
        }
        return ShardEntry(
            file: name, tokens: tokenCount, compressedBytes: bytes.count,
            crc32: hex32(ShardHeader.decodeChecksum(bytes)), firstToken: firstToken)
    }

    /// Hands over the token buffer (the job keeps no reference, so it can be reused in place).
    func takeTokens() -> [UInt32] {
        var out: [UInt32] = []
        swap(&out, &tokens)
        return out
    }
}

/// A few reusable objects shared between threads.
final class Pool<T>: @unchecked Sendable {
    private var items: [T] = []
    private let lock = NSLock()
    /// Items kept at most (more are dropped): what is in flight at once is bounded, so this is
    /// never reached in steady use, but nothing a caller does can make the pool grow without end.
    private let limit = 256

    func take() -> T? {
        lock.lock()
        defer { lock.unlock() }
        return items.popLast()
    }

    func put(_ item: T) {
        lock.lock()
        if items.count < limit { items.append(item) }
        lock.unlock()
    }
}

extension ShardHeader {
    /// The token checksum field of an encoded shard.
    static func decodeChecksum(_ bytes: [UInt8]) -> UInt32 { bytes.readLE(at: 24) }
}

/// Shards finished by background threads, and the first error any of them hit.
private final class CompletionState: @unchecked Sendable {
    private let lock = NSLock()
    private var done: [Int: ShardEntry] = [:]
    private var error: (any Error)?

    init(_ existing: [ShardEntry]) {
        for (i, e) in existing.enumerated() { done[i] = e }
    }

    func record(_ index: Int, _ result: Result<ShardEntry, any Error>) {
        lock.lock()
        defer { lock.unlock() }
        switch result {
        case .success(let entry): done[index] = entry
        case .failure(let e): if error == nil { error = e }
        }
    }

    func rethrow() throws {
        lock.lock()
        defer { lock.unlock() }
        if let error { throw error }
    }

    func durablePrefix() -> [ShardEntry] {
        lock.lock()
        defer { lock.unlock() }
        var out: [ShardEntry] = []
        while let e = done[out.count] { out.append(e) }
        return out
    }
}
