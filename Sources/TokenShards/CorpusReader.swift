import CKernels
import Foundation
import ToolkitSupport

/// An input file of the corpus.
public struct CorpusFile: Codable, Sendable, Equatable {
    public var path: String
    public var size: Int
    /// Modification time (seconds since 1970), part of the resume fingerprint.
    public var modified: Double

    /// Expands files and directories (recursively, sorted, hidden entries skipped) into files,
    /// leaving out everything under `excluded` (the shard output directory).
    public static func expand(_ inputs: [String], excluding excluded: String? = nil) throws
        -> [CorpusFile]
    {
        let fm = FileManager.default
        let skip = excluded.map { URL(fileURLWithPath: $0).standardizedFileURL.path + "/" }
        var files: [CorpusFile] = []
        for input in inputs {
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: input, isDirectory: &isDir) else {
                throw ToolkitError.file(input, "input does not exist")
            }
            var paths = [input]
            if isDir.boolValue {
                guard let walker = fm.enumerator(atPath: input) else {
                    throw ToolkitError.file(input, "cannot list directory")
                }
                paths = []
                while let rel = walker.nextObject() as? String {
                    if rel.split(separator: "/").contains(where: { $0.hasPrefix(".") }) { continue }
                    let full = (input as NSString).appendingPathComponent(rel)
                    var sub: ObjCBool = false
                    if fm.fileExists(atPath: full, isDirectory: &sub), !sub.boolValue {
                        paths.append(full)
                    }
                }
                paths.sort()
            }
            for path in paths {
                if let skip, URL(fileURLWithPath: path).standardizedFileURL.path.hasPrefix(skip) {
                    continue
                }
                guard fm.isReadableFile(atPath: path),
                    let attrs = try? fm.attributesOfItem(atPath: path)
                else { throw ToolkitError.file(path, "input file is not readable") }
                let size = (attrs[.size] as? NSNumber)?.intValue ?? 0
                let date = (attrs[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
                files.append(CorpusFile(path: path, size: size, modified: date))
            }
        }
        return files
    }
}

/// Which input files are JSON Lines and which field holds a document's text.
public struct JSONLInput: Codable, Sendable, Equatable {
    public enum Files: String, Codable, Sendable, CaseIterable {
        /// Files named `*.jsonl` or `*.ndjson`.
        case byExtension = "auto"
        /// Every input file.
        case all = "jsonl"
    }
    public var files: Files
    public var field: String
    /// The longest line read (a document is one line).
    public static let maxLineBytes = 64 << 20

    public init(files: Files = .byExtension, field: String = "text") {
        self.files = files
        self.field = field
    }

    public func applies(to path: String) -> Bool {
        files == .all || path.hasSuffix(".jsonl") || path.hasSuffix(".ndjson")
    }
}

/// Where a chunk starts: enough to restart reading there after an interruption.
public struct CorpusPosition: Codable, Sendable, Equatable {
    public var fileIndex: Int
    public var offset: Int
    /// Whether the chunk starting here begins a document.
    public var atDocumentStart: Bool

    enum CodingKeys: String, CodingKey {
        case fileIndex = "file_index"
        case offset
        case atDocumentStart = "at_document_start"
    }
}

/// A piece of one document, at most about `chunkBytes` long.
struct TextChunk {
    var position: CorpusPosition
    var bytes: [UInt8]
    /// Corpus bytes consumed once this chunk is read (for progress).
    var consumedAfter = 0
}

/// Streams the corpus as chunks: documents are whole files or the text between separators;
/// documents longer than `chunkBytes` are cut only inside `x\ny`, x and y printable non-space
/// ASCII (see `TokenEncoder`). Memory use is a few times `chunkBytes`, whatever the input.
final class ChunkStream {
    let files: [CorpusFile]
    let separator: [UInt8]
    /// How each file is read: JSONL files give one document per line (the string under `field`).
    let jsonl: JSONLInput?
    let chunkBytes: Int
    private let readBytes: Int
    private let totalBytes: Int
    private var fileIndex: Int
    private var handle: FileHandle?
    private var buffer: [UInt8] = []
    private var head = 0  // first unconsumed byte of buffer
    private var bufferOffset = 0  // file offset of buffer[0]
    private var eof = false
    private var atDocumentStart = true
    /// Bytes of input consumed so far (for progress), counted from the start of the corpus.
    private(set) var consumed = 0
    private let spareBuffers = Pool<[UInt8]>()

    init(files: [CorpusFile], separator: [UInt8], chunkBytes: Int, start: CorpusPosition?, jsonl: JSONLInput? = nil) throws {
        self.files = files
        self.separator = separator
        self.jsonl = jsonl
        self.chunkBytes = max(chunkBytes, 16)
        readBytes = max(self.chunkBytes, 1 << 20)
        totalBytes = files.reduce(0) { $0 + $1.size }
        let s = start ?? CorpusPosition(fileIndex: 0, offset: 0, atDocumentStart: true)
        fileIndex = s.fileIndex
        consumed = files.prefix(s.fileIndex).reduce(0) { $0 + $1.size } + s.offset
        if fileIndex < files.count { try open(at: s.offset) }
        atDocumentStart = s.atDocumentStart
    }

    private func open(at offset: Int) throws {
        let path = files[fileIndex].path
        guard let h = FileHandle(forReadingAtPath: path) else {
            throw ToolkitError.file(path, "cannot open input file")
        }
        do { try h.seek(toOffset: UInt64(offset)) } catch {
            throw ToolkitError.file(path, "cannot seek: \(error)", offset: offset)
        }
        handle = h
        buffer = []
        head = 0
        bufferOffset = offset
        eof = false
        atDocumentStart = true
    }

    /// Makes at least `count` unconsumed bytes available, unless the file ends first.
    private func fill(_ count: Int) throws {
        while !eof && buffer.count - head < count {
            if head > 0 && head >= buffer.count / 2 {
                buffer.removeFirst(head)
                bufferOffset += head
                head = 0
            }
            guard let fd = handle?.fileDescriptor else {
                eof = true
                break
            }
            // read(2) straight into the buffer's tail: no intermediate Data, no per-byte copy.
            let start = buffer.count
            let want = max(readBytes, count)
            buffer.append(contentsOf: repeatElement(0, count: want))
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + start, want) }
            buffer.removeSubrange((start + max(n, 0))...)
            if n < 0 && errno == EINTR { continue }
            if n < 0 {
                throw ToolkitError.file(
                    files[fileIndex].path, "cannot read input: \(String(cString: strerror(errno)))",
                    offset: bufferOffset + start)
            }
            if n == 0 { eof = true }
        }
    }

    /// The next chunk, or nil at the end of the corpus.
    func next() throws -> TextChunk? {
        guard var chunk = try nextChunk() else { return nil }
        chunk.consumedAfter = consumed
        return chunk
    }

    /// Chunks shrink over the last ~16 chunk lengths of the corpus (down to 64 KiB), so the
    /// encoding workers finish together instead of one idling while another encodes a full chunk.
    private var chunkLimit: Int {
        let remaining = totalBytes - consumed
        return min(chunkBytes, max(remaining / 16, min(chunkBytes, 1 << 16)))
    }

    private func nextChunk() throws -> TextChunk? {
        var limit = chunkLimit
        while fileIndex < files.count {
            if let jsonl, jsonl.applies(to: files[fileIndex].path) {
                if let document = try nextJSONLDocument(field: jsonl.field) { return document }
                continue
            }
            try fill(limit + separator.count)
            let available = buffer.count - head
            if available == 0 {
                try? handle?.close()
                handle = nil
                fileIndex += 1
                if fileIndex < files.count { try open(at: 0) }
                limit = chunkLimit
                continue
            }
            if let sep = findSeparator(searchLength: min(available, limit + separator.count - 1)) {
                let chunk = take(sep)
                consume(separator.count)
                atDocumentStart = true
                limit = chunkLimit
                if let chunk { return chunk }
                continue
            }
            if eof && available <= limit { return take(available) }
            if let cut = safeCut(below: min(limit, available)) { return take(cut) }
            limit *= 2  // no cut point yet: look further
        }
        return nil
    }

    /// Moves to the next file.
    private func nextFile() throws {
        try? handle?.close()
        handle = nil
        fileIndex += 1
        if fileIndex < files.count { try open(at: 0) }
    }

    /// The next document of a JSONL file: the string under `field` of its next non-blank line; nil
    /// (having moved to the next file) at the end of the file. A line is read whole (up to
    /// `JSONLInput.maxLineBytes`), so a document is one chunk.
    private func nextJSONLDocument(field: String) throws -> TextChunk? {
        let path = files[fileIndex].path
        while true {
            var searched = 0
            var newline: Int?
            while true {
                if let i = buffer[(head + searched)...].firstIndex(of: 0x0A) { newline = i - head; break }
                searched = buffer.count - head
                if eof { break }
                guard searched <= JSONLInput.maxLineBytes else {
                    throw ToolkitError.file(path, "a JSONL line is longer than \(JSONLInput.maxLineBytes >> 20) MiB", offset: bufferOffset + head)
                }
                try fill(searched + readBytes)
            }
            let length = newline ?? (buffer.count - head)
            if length == 0 && newline == nil {
                try nextFile()
                return nil
            }
            let start = bufferOffset + head
            var line = buffer[head..<(head + length)]
            consume(length + (newline == nil ? 0 : 1))
            if line.last == 0x0D { line = line.dropLast() }
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
            let object: Any
            do { object = try JSONSerialization.jsonObject(with: Data(line)) } catch {
                throw ToolkitError.file(path, "line is not valid JSON", offset: start)
            }
            guard let record = object as? [String: Any] else { throw ToolkitError.file(path, "line is not a JSON object", offset: start) }
            guard let text = record[field] as? String else {
                throw ToolkitError.file(path, "line has no string field '\(field)' (--jsonl-field)", offset: start)
            }
            if text.isEmpty { continue }
            atDocumentStart = false
            var bytes = spareBuffers.take() ?? []  // recycled like the text chunks' buffers
            bytes.removeAll(keepingCapacity: true)
            bytes.append(contentsOf: text.utf8)
            return TextChunk(position: CorpusPosition(fileIndex: fileIndex, offset: start, atDocumentStart: true), bytes: bytes)
        }
    }

    /// A chunk of the next `length` bytes (nil when empty), consuming them.
    private func take(_ length: Int) -> TextChunk? {
        defer { consume(length) }
        guard length > 0 else { return nil }
        let position = CorpusPosition(
            fileIndex: fileIndex, offset: bufferOffset + head, atDocumentStart: atDocumentStart)
        atDocumentStart = false
        var bytes = spareBuffers.take() ?? []
        bytes.removeAll(keepingCapacity: true)
        bytes.append(contentsOf: buffer[head..<head + length])
        return TextChunk(position: position, bytes: bytes)
    }

    /// Hands a chunk's byte buffer back for reuse by a later chunk (no allocation per chunk).
    func recycle(_ bytes: [UInt8]) { spareBuffers.put(bytes) }

    private func consume(_ length: Int) {
        head += length
        consumed += length
    }

    /// Index (relative to head) of the first separator starting within `searchLength` bytes.
    private func findSeparator(searchLength: Int) -> Int? {
        guard !separator.isEmpty, searchLength >= separator.count else { return nil }
        let first = separator[0]
        let last = head + searchLength - separator.count
        var i = head
        while i <= last {
            if buffer[i] == first && buffer[i..<i + separator.count].elementsEqual(separator) {
                return i - head
            }
            i += 1
        }
        return nil
    }

    /// The largest cut point in 2...limit-1 that lies right after a `\n` with a printable,
    /// non-space ASCII byte on both sides (see `TokenEncoder`).
    private func safeCut(below limit: Int) -> Int? {
        var j = limit - 1
        while j > 1 {
            if buffer[head + j - 1] == 0x0A && isPrintable(buffer[head + j])
                && isPrintable(buffer[head + j - 2])
            {
                return j
            }
            j -= 1
        }
        return nil
    }

    private func isPrintable(_ b: UInt8) -> Bool { b > 0x20 && b < 0x7F }
}

/// Appends the ids of a chunk's bytes to `tokens`. Valid UTF-8 (checked 32 ASCII bytes a step)
/// goes to the session as is; otherwise the invalid sequences are dropped first, and counted.
func encodeChunk(
    _ bytes: [UInt8], session: any TokenEncodingSession, into tokens: inout [UInt32]
) throws -> (skipped: Int, firstBad: Int?) {
    try bytes.withUnsafeBufferPointer { buf in
        if tk_utf8_invalid_offset(buf.baseAddress, buf.count) < 0 {
            try session.encode(utf8: buf, into: &tokens)
            return (0, nil)
        }
        let (valid, skipped, firstBad) = utf8Skipping(buf)
        try valid.withUnsafeBufferPointer { try session.encode(utf8: $0, into: &tokens) }
        return (skipped, firstBad)
    }
}

/// The valid UTF-8 sequences of `bytes`, the number of bytes dropped, and the offset of the first
/// dropped byte.
func utf8Skipping(_ bytes: UnsafeBufferPointer<UInt8>) -> (
    valid: [UInt8], skipped: Int, firstBad: Int?
) {
    var valid: [UInt8] = []
    valid.reserveCapacity(bytes.count)
    var parser = Unicode.UTF8.ForwardParser()
    var iterator = bytes.makeIterator()
    var skipped = 0
    var position = 0
    var firstBad: Int?
    loop: while true {
        switch parser.parseScalar(from: &iterator) {
        case .valid(let encoded):
            valid.append(contentsOf: encoded)
            position += encoded.count
        case .error(let length):
            if firstBad == nil { firstBad = position }
            skipped += length
            position += length
        case .emptyInput:
            break loop
        }
    }
    return (valid, skipped, firstBad)
}
