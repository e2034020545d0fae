import Foundation
import ToolkitSupport

/// Hugging Face checkpoint layouts: a single `model.safetensors`, or shards listed by
/// `model.safetensors.index.json` (`{"metadata": {"total_size": …}, "weight_map": {tensor →
/// shard file}}`).
public enum CheckpointDirectory {
    public static let singleFileName = "model.safetensors"
    public static let indexFileName = "model.safetensors.index.json"

    /// The shard file of every tensor, read from an index file. Shard names must be plain file
    /// names in the index's directory.
    public static func readIndex(_ path: String) throws -> [String: String] {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw ToolkitError.file(path, "cannot read: \(error.localizedDescription)")
        }
        guard let root = try JSONValue.parse(data, path: path).objectValue else {
            throw ToolkitError.file(path, "expected a JSON object")
        }
        guard let map = root["weight_map"]?.objectValue else {
            throw ToolkitError.file(path, "missing or non-object key 'weight_map'")
        }
        var out: [String: String] = [:]
        for (tensor, shard) in map {
            guard let file = shard.stringValue else {
                throw ToolkitError.file(
                    path, "weight_map['\(tensor)'] is \(shard.typeName), expected a file name")
            }
            guard !file.isEmpty, !file.contains("/"), file != ".", file != ".." else {
                throw ToolkitError.file(
                    path, "weight_map['\(tensor)'] = '\(file)' is not a plain file name")
            }
            out[tensor] = file
        }
        return out
    }

    /// Reports loading progress in bytes of tensor data: `(done, total)`.
    public typealias Progress = (_ bytesDone: Int, _ bytesTotal: Int) -> Void

    /// Loads every tensor of a checkpoint as `Float` tensors by name (see `open` for the
    /// accepted layouts and checks), calling `progress` after each tensor.
    public static func load(_ path: String, progress: Progress? = nil) throws
        -> [String: HostTensor]
    {
        let files = try open(path)
        let total = files.reduce(0) { $0 + $1.dataByteCount }
        var done = 0
        var out: [String: HostTensor] = [:]
        for file in files {
            for name in file.names {
                let t = try file.tensor(name)
                done += t.count * (file.tensors[name]?.dtype.size ?? 0)
                out[name] = t
                progress?(done, total)
            }
        }
        return out
    }

    /// Opens (memory-maps and validates) the safetensors files of a checkpoint without reading
    /// tensor data; names, dtypes and shapes are then available from each file's header.
    ///
    /// `path` may be a `.safetensors` file, an index file, or a directory holding
    /// `model.safetensors` or `model.safetensors.index.json`. For a sharded checkpoint, the index
    /// and the shards must agree exactly: a tensor listed but absent from its shard, a missing
    /// shard file, or a shard tensor the index does not list is an error naming it.
    public static func open(_ path: String) throws -> [SafetensorsFile] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw ToolkitError.file(path, "no such file or directory")
        }
        if !isDir.boolValue {
            return path.hasSuffix(".json")
                ? try openSharded(indexPath: path) : [try SafetensorsFile(path: path)]
        }
        let dir = URL(fileURLWithPath: path)
        let single = dir.appendingPathComponent(singleFileName).path
        if FileManager.default.fileExists(atPath: single) {
            return [try SafetensorsFile(path: single)]
        }
        let index = dir.appendingPathComponent(indexFileName).path
        if FileManager.default.fileExists(atPath: index) {
            return try openSharded(indexPath: index)
        }
        throw ToolkitError.file(path, "contains neither \(singleFileName) nor \(indexFileName)")
    }

    private static func openSharded(indexPath: String) throws -> [SafetensorsFile] {
        let weightMap = try readIndex(indexPath)
        let dir = URL(fileURLWithPath: indexPath).deletingLastPathComponent()
        var byShard: [String: Set<String>] = [:]
        for (tensor, shard) in weightMap { byShard[shard, default: []].insert(tensor) }
        var files: [SafetensorsFile] = []
        for shard in byShard.keys.sorted() {
            let listed = byShard[shard] ?? []
            let shardPath = dir.appendingPathComponent(shard).path
            guard FileManager.default.fileExists(atPath: shardPath) else {
                throw ToolkitError.file(
                    indexPath,
                    "shard '\(shard)' (holding '\(listed.sorted().first ?? "")' "
                        + "and others) does not exist at \(shardPath)")
            }
            let file = try SafetensorsFile(path: shardPath)
            for name in listed.sorted() where file.tensors[name] == nil {
                throw ToolkitError.file(
                    shardPath, "tensor '\(name)' is listed in \(indexFileName) but missing here")
            }
            for name in file.names where !listed.contains(name) {
                throw ToolkitError.file(
                    shardPath, "tensor '\(name)' is not listed for this shard in \(indexFileName)")
            }
            files.append(file)
        }
        return files
    }

    /// Writes `tensors` into directory `dir`: one `model.safetensors` when the data fits in
    /// `maxShardBytes`, else shards `model-0000i-of-0000n.safetensors` (filled in name order)
    /// plus `model.safetensors.index.json`. Stale files of the other layout are removed.
    /// Returns the file names written.
    @discardableResult
    public static func write(
        _ tensors: [String: HostTensor], to dir: String, as dtype: SafetensorsDType = .f32,
        maxShardBytes: Int = 5 << 30, metadata: [String: String] = ["format": "pt"]
    ) throws -> [String] {
        let names = tensors.keys.sorted()
        var shards: [[String]] = [[]]
        var size = 0
        var total = 0
        for name in names {
            let bytes = (tensors[name]?.count ?? 0) * dtype.size
            if size > 0 && size + bytes > maxShardBytes {
                shards.append([])
                size = 0
            }
            shards[shards.count - 1].append(name)
            size += bytes
            total += bytes
        }
        let base = URL(fileURLWithPath: dir)
        let fm = FileManager.default
        func writeShard(_ names: [String], _ file: String) throws {
            var w = SafetensorsWriter(metadata: metadata)
            for n in names { if let t = tensors[n] { try w.add(n, t, as: dtype) } }
            try w.write(to: base.appendingPathComponent(file).path)
        }
        if shards.count == 1 {
            try writeShard(names, singleFileName)
            try? fm.removeItem(at: base.appendingPathComponent(indexFileName))
            return [singleFileName]
        }
        let n = shards.count
        func pad(_ i: Int) -> String {
            let s = String(i)
            return String(repeating: "0", count: max(0, 5 - s.count)) + s
        }
        var files: [String] = []
        var lines: [String] = []
        for (i, shard) in shards.enumerated() {
            let file = "model-\(pad(i + 1))-of-\(pad(n)).safetensors"
            try writeShard(shard, file)
            files.append(file)
            for name in shard {
                lines.append("    \(JSONText.quoted(name)): \(JSONText.quoted(file))")
            }
        }
        let index =
            "{\n  \"metadata\": {\n    \"total_size\": \(total)\n  },\n  \"weight_map\": {\n"
            + lines.joined(separator: ",\n") + "\n  }\n}\n"
        try AtomicFile.write(index, to: base.appendingPathComponent(indexFileName).path)
        try? fm.removeItem(at: base.appendingPathComponent(singleFileName))
        return files + [indexFileName]
    }
}
