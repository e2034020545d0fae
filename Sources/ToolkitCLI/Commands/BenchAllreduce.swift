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
            reports it: 2·(N−1)/N · bytes / time. Without mpirun there is one rank and nothing to time.
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
        for mib in mibs {
            let count = Int(mib * 262_144)
            let buffer = UnsafeMutablePointer<Float>.allocate(capacity: count)
            defer { buffer.deallocate() }
            buffer.initialize(repeating: 1, count: count)
            comm.allreduceSum(buffer, count: count)  // warm-up (connections, pinned pages)
            var times: [Double] = []
            for _ in 0..<repeats {
                comm.barrier()
                let t0 = monotonicSeconds()
                comm.allreduceSum(buffer, count: count)
                times.append(monotonicSeconds() - t0)
            }
            var slowest = [times.sorted()[times.count / 2]]
            comm.allreduceSum(&slowest)  // the mean of the ranks' medians
            let t = slowest[0] / Double(comm.size)
            let n = Double(comm.size)
            let bus = n > 1 ? 2 * (n - 1) / n * Double(count * 4) / t / 1e9 : 0
            rows.append(Row(mib: mib, medianSeconds: t, busGBPerSecond: bus))
        }
        guard comm.isRoot else { return }
        if json { print(try jsonLine(Output(ranks: comm.size, rows: rows))); return }
        print("allreduce over \(comm.size) rank\(comm.size == 1 ? "" : "s") (float32 sum, median of \(repeats))")
        for r in rows {
            print(String(format: "  %7.1f MiB  %8.2f ms  bus %6.2f GB/s", r.mib, r.medianSeconds * 1e3, r.busGBPerSecond))
        }
        if comm.size == 1 { print("one rank: run under mpirun -np N to measure") }
    }
}
