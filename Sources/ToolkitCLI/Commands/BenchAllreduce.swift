import ArgumentParser
import Foundation
import ToolkitSupport
import Training

/// MPI allreduce of gradient-sized buffers: `mpirun -np N toolkit bench allreduce`.
struct BenchAllreduce: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "allreduce",
        abstract: "Bus bandwidth of the gradient allreduce over the ranks of an mpirun job.",
        discussion: """
            Run under mpirun (mpirun -np 2 toolkit bench allreduce). For each buffer size, the median
            time of --repeats in-place float32 sums over all ranks, and the bus bandwidth as NCCL
            reports it: 2·(N−1)/N · bytes / time; also a reduce-scatter followed by an allgather (ZeRO-1's
            pair). The warm-up checks every collective's sums. Without mpirun there is one rank and nothing to time.
            """)

    @Option(help: "Buffer sizes in MiB (gpt2's gradients are 53 MiB, gpt2-124m's 475 MiB).") var sizes = "1,8,53"
    @Option(help: "Timed repeats per size (median reported), after one warm-up.") var repeats = 7
    @Flag(help: "Print JSON.") var json = false

    struct Output: Codable {
        var ranks: Int
        var rows: [Row]
    }

    struct Row: Codable {
        var mib: Double
        var medianSeconds: Double
        var busGBPerSecond: Double
        /// ZeRO-1's pair: a reduce-scatter of the gradients and an allgather of the parameters.
        var reduceScatterAllgatherSeconds: Double
    }

    func run() throws {
        let comm = Job.world
        defer { (comm as? MPICommunicator)?.finalize() }
        let mibs = try sizes.split(separator: ",").map { s -> Double in
            guard let v = Double(s.trimmingCharacters(in: .whitespaces)), v > 0, v <= 4096 else {
                throw ValidationError("--sizes: '\(s)' is not a size in MiB (0, 4096]")
            }
            return v
        }
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
        var rows: [Row] = []
        let n = comm.size
        // A wrong sum on one rank must end every rank, not leave them in the next collective.
        func fail(_ message: String) throws {
            guard n > 1 else { throw ToolkitError(message) }
            printError("rank \(comm.rank) of \(n): \(message)")
            comm.abort(code: 1)
        }
        for mib in mibs {
            let count = Int(mib * 262_144)
            let buffer = UnsafeMutablePointer<Float>.allocate(capacity: count)
            defer { buffer.deallocate() }
            // Warm-up (connections, pinned pages) that also checks the sums: element i of rank r
            // holds r + 1 + i mod 7.
            let segments = (0..<n).map { r in count / n + (r < count % n ? 1 : 0) }
            let start = segments.prefix(comm.rank).reduce(0, +)
            func fill() { for i in 0..<count { buffer[i] = Float(comm.rank + 1 + i % 7) } }
            func expected(_ i: Int) -> Float { Float(n * (n + 1) / 2 + n * (i % 7)) }
            fill()
            comm.allreduceSum(buffer, count: count)
            if let i = (0..<count).first(where: { buffer[$0] != expected($0) }) {
                try fail("allreduce: element \(i) is \(buffer[i]), expected \(expected(i))")
            }
            fill()
            comm.reduceScatterSum(buffer, counts: segments)
            if let i = (start..<start + segments[comm.rank]).first(where: { buffer[$0] != expected($0) }) {
                try fail("reduce-scatter: element \(i) is \(buffer[i]), expected \(expected(i))")
            }
            comm.allgather(buffer, counts: segments)
            if let i = (0..<count).first(where: { buffer[$0] != expected($0) }) {
                try fail("allgather: element \(i) is \(buffer[i]), expected \(expected(i))")
            }
            func median(_ body: () -> Void) -> Double {
                var times: [Double] = []
                for _ in 0..<repeats {
                    comm.barrier()
                    let t0 = monotonicSeconds()
                    body()
                    times.append(monotonicSeconds() - t0)
                }
                var median = [times.sorted()[times.count / 2]]
                comm.allreduceSum(&median)  // the mean of the ranks' medians
                return median[0] / Double(n)
            }
            let t = median { comm.allreduceSum(buffer, count: count) }
            let pair = median {
                comm.reduceScatterSum(buffer, counts: segments)
                comm.allgather(buffer, counts: segments)
            }
            let bus = n > 1 ? 2 * Double(n - 1) / Double(n) * Double(count * 4) / t / 1e9 : 0
            rows.append(Row(mib: mib, medianSeconds: t, busGBPerSecond: bus, reduceScatterAllgatherSeconds: pair))
        }
        guard comm.isRoot else { return }
        if json { print(try jsonLine(Output(ranks: comm.size, rows: rows))); return }
        print("allreduce over \(comm.size) rank\(comm.size == 1 ? "" : "s") (float32 sum, median of \(repeats); results checked)")
        for r in rows {
            print(String(format: "  %7.1f MiB  %8.2f ms  bus %6.2f GB/s   reduce-scatter + allgather %8.2f ms", r.mib,
                         r.medianSeconds * 1e3, r.busGBPerSecond, r.reduceScatterAllgatherSeconds * 1e3))
        }
        if comm.size == 1 { print("one rank: run under mpirun -np N to measure") }
    }
}
