import CMPI
import Foundation

/// How the processes of one training job talk: the data-parallel seam. `SingleProcess` is the
/// default; `MPICommunicator` runs over MPI when the toolkit was started by `mpirun`.
public protocol Communicator: AnyObject, Sendable {
    var rank: Int { get }
    var size: Int { get }
    /// In-place sum over all ranks.
    func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int)
    func allreduceSum(_ values: inout [Double])
    /// `bytes` from `root` to every rank.
    func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int)
    /// Splits `buffer` into `size` consecutive segments of `counts[r]` floats (their sum below 2³¹):
    /// afterwards segment r on rank r holds the sum over ranks of segment r (other segments are
    /// unspecified).
    func reduceScatterSum(_ buffer: UnsafeMutablePointer<Float>, counts: [Int])
    /// The same segments: afterwards every rank holds rank r's segment r, for every r.
    func allgather(_ buffer: UnsafeMutablePointer<Float>, counts: [Int])
    /// Non-blocking, in place: started in the same order on every rank, finished by `waitAll()`;
    /// `progress()` lets the library advance them while the caller computes.
    func startAllreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int)
    /// The sum lands on `root` only.
    func startReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int)
    func startBroadcast(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int)
    func progress()
    func waitAll()
    func barrier()
    /// Ends every rank of the job (a failure on one rank must not leave the others waiting).
    func abort(code: Int32) -> Never
}

extension Communicator {
    public var isRoot: Bool { rank == 0 }

    /// `root`'s string on every rank (e.g. a folder name only rank 0 may choose).
    public func broadcast(_ string: String, root: Int = 0) -> String {
        guard size > 1 else { return string }
        var bytes = rank == root ? Array(string.utf8) : []
        var count = [bytes.count]
        count.withUnsafeMutableBytes { broadcast($0.baseAddress!, bytes: $0.count, root: root) }
        if rank != root { bytes = [UInt8](repeating: 0, count: count[0]) }
        bytes.withUnsafeMutableBytes { if let base = $0.baseAddress { broadcast(base, bytes: $0.count, root: root) } }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// One process: every collective is the identity.
public final class SingleProcess: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) {}
    public func allreduceSum(_ values: inout [Double]) {}
    public func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int) {}
    public func reduceScatterSum(_ buffer: UnsafeMutablePointer<Float>, counts: [Int]) {}
    public func allgather(_ buffer: UnsafeMutablePointer<Float>, counts: [Int]) {}
    public func startAllreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) {}
    public func startReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int) {}
    public func startBroadcast(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int) {}
    public func progress() {}
    public func waitAll() {}
    public func barrier() {}
    public func abort(code: Int32) -> Never { exit(code) }
}

/// MPI's `MPI_COMM_WORLD` through the C shim (`CMPI`).
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int

    /// Initialises MPI; nil when this process was not started by an MPI launcher.
    public init?() {
        guard tk_mpi_launched() != 0, tk_mpi_init() == 0 else { return nil }
        rank = Int(tk_mpi_rank())
        size = Int(tk_mpi_size())
    }

    public func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) { tk_mpi_allreduce_sum_f32(buffer, count) }
    public func allreduceSum(_ values: inout [Double]) {
        values.withUnsafeMutableBufferPointer { tk_mpi_allreduce_sum_f64($0.baseAddress, $0.count) }
    }
    public func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int) { tk_mpi_broadcast(buffer, bytes, Int32(root)) }
    public func reduceScatterSum(_ buffer: UnsafeMutablePointer<Float>, counts: [Int]) {
        precondition(counts.count == size && counts.reduce(0, +) < Int(Int32.max), "reduce-scatter segments")
        tk_mpi_reduce_scatter_sum_f32(buffer, counts)
    }
    public func allgather(_ buffer: UnsafeMutablePointer<Float>, counts: [Int]) {
        precondition(counts.count == size && counts.reduce(0, +) < Int(Int32.max), "allgather segments")
        tk_mpi_allgather_f32(buffer, counts)
    }
    public func startAllreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) { tk_mpi_start_allreduce_sum_f32(buffer, count) }
    public func startReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int) {
        tk_mpi_start_reduce_sum_f32(buffer, count, Int32(root))
    }
    public func startBroadcast(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int) {
        tk_mpi_start_broadcast_f32(buffer, count, Int32(root))
    }
    public func progress() { tk_mpi_progress() }
    public func waitAll() { tk_mpi_wait_all() }
    public func barrier() { tk_mpi_barrier() }
    public func abort(code: Int32) -> Never {
        tk_mpi_abort(code)
        exit(code)
    }
    public func finalize() { tk_mpi_finalize() }

    /// The MPI library's version line.
    public static var libraryVersion: String {
        var buf = [CChar](repeating: 0, count: 512)
        tk_mpi_library_version(&buf, Int32(buf.count))
        return cString(buf)
    }

    /// This rank's host name.
    public var hostName: String {
        var buf = [CChar](repeating: 0, count: 256)
        tk_mpi_processor_name(&buf, Int32(buf.count))
        return cString(buf)
    }
}

/// The text of a NUL-terminated C buffer.
private func cString(_ buf: [CChar]) -> String {
    String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// The job this process belongs to: MPI when started by `mpirun`, else one process.
public enum Job {
    nonisolated(unsafe) private static var cached: (any Communicator)?

    public static var world: any Communicator {
        if let cached { return cached }
        let c: any Communicator = MPICommunicator() ?? SingleProcess()
        cached = c
        return c
    }
}
