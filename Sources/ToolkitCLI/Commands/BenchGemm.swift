import ArgumentParser
import Foundation
import TensorCore
import ToolkitSupport

struct BenchGemm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gemm", abstract: "sgemm GFLOP/s (median of repeated runs).")

    @Option(help: "Rows of A and C.") var m = 2048
    @Option(help: "Columns of B and C.") var n = 1536
    @Option(help: "Inner dimension.") var k = 384
    @Option(help: "Timed repeats.") var repeats = 9
    @Option(help: "BLAS threads (default: all cores).") var threads: Int?
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        for (name, v) in [("m", m), ("n", n), ("k", k)] where v < 1 || v > 65536 {
            throw ValidationError("--\(name) must be in 1...65536 (got \(v))")
        }
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    func run() throws {
        BLASRuntime.setThreads(threads ?? ProcessInfo.processInfo.activeProcessorCount)
        let r = GemmBenchmark.run(m: m, n: n, k: k, repeats: repeats)
        if json {
            struct Out: Codable {
                var result: GemmBenchmark.Result
                var kernel: String
                var threads: Int
            }
            print(try jsonLine(Out(result: r, kernel: BLASRuntime.kernelName, threads: BLASRuntime.threads)))
        } else {
            print(
                String(
                    format: "sgemm %d×%d×%d: %.1f GFLOP/s (median of %d, %.3f ms) kernel %@, %d threads",
                    m, n, k, r.gflops, r.repeats, r.medianSeconds * 1e3, BLASRuntime.kernelName,
                    BLASRuntime.threads))
        }
    }
}
