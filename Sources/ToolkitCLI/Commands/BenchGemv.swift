import ArgumentParser
import Foundation
import TensorCore
import ToolkitSupport

struct BenchGemv: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gemv",
        abstract: "One-thread matrix-vector bandwidth: the decoder's kernel (f32, bf16, int8) against BLAS sgemv, interleaved.",
        discussion: """
            Ratios compare weight bytes per second. The default matrix (8192×4096 float32, 128 MiB) is
            larger than the caches, so it measures memory bandwidth; a GPT-2 layer (e.g. --rows 2304
            --cols 768) measures cache bandwidth. TOOLKIT_SIMD=avx2|portable picks the kernel level.
            """)

    @Option(help: "Rows (output features).") var rows = 8192
    @Option(help: "Columns (input features).") var cols = 4096
    @Option(help: "Interleaved rounds (medians reported).") var rounds = 7
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        for (name, v) in [("rows", rows), ("cols", cols)] where v < 1 || v > 1 << 16 {
            throw ValidationError("--\(name) must be in 1...65536 (got \(v))")
        }
        guard rounds >= 1 else { throw ValidationError("--rounds must be at least 1") }
    }

    func run() throws {
        _ = BLAS.threads  // OpenBLAS single-threaded, as in decoding
        let r = GemvBenchmark.run(rows: rows, cols: cols, rounds: rounds)
        if json { print(try jsonLine(r)); return }
        print("gemv \(rows)×\(cols), one thread, SIMD \(r.simd), BLAS kernel \(r.blasKernel), median of \(r.rounds) rounds")
        for name in ["sgemv", "f32", "bf16", "int8"] {
            let ratio = r.ratioToSgemv[name].map { String(format: "%.2f× sgemv", $0) } ?? "(baseline)"
            let label = name.padding(toLength: 6, withPad: " ", startingAt: 0)
            print("  \(label)" + String(format: " %7.1f GB/s  ", r.gbPerSecond[name] ?? 0) + ratio)
        }
    }
}
