import ArgumentParser
import Foundation
import TensorCore
import ToolkitSupport

struct Doctor: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Report the CPU, the BLAS kernel in use, its speed and a correctness check.")

    @Flag(help: "Print one JSON object instead of a table.") var json = false
    @Option(help: "Timed repeats per GEMM shape.") var repeats = 5

    struct Report: Codable {
        var cpuModel: String
        var cpuVendor: String
        var cpuFeatures: [String]
        var cores: Int
        var blasLibrary: String
        var blasConfig: String
        var kernel: String
        var kernelSource: String
        var candidateKernels: [String]
        var coretypeEnv: String?
        var blasThreads: Int
        /// OPENBLAS_THREAD_TIMEOUT (log2 cycles an idle BLAS worker spins before sleeping), if set.
        var blasThreadTimeout: String?
        var gemm1024: GemmBenchmark.Result
        var gemmTraining: GemmBenchmark.Result
        var correct: Bool
        var maxRelativeError: Double
    }

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
    }

    func run() throws {
        let features = CPUFeatures.detect()
        let cores = ProcessInfo.processInfo.activeProcessorCount
        BLASRuntime.setThreads(cores)
        let check = BLASRuntime.verify()
        let g1 = GemmBenchmark.run(m: 1024, n: 1024, k: 1024, repeats: repeats)
        let g2 = GemmBenchmark.run(m: 2048, n: 1536, k: 384, repeats: repeats)
        let report = Report(
            cpuModel: features.model, cpuVendor: features.vendor, cpuFeatures: features.names,
            cores: cores, blasLibrary: "OpenBLAS", blasConfig: BLASRuntime.configString,
            kernel: BLASRuntime.kernelName, kernelSource: BLASRuntime.source.rawValue,
            candidateKernels: BLASRuntime.candidateKernels(for: features),
            coretypeEnv: ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"],
            blasThreads: BLASRuntime.threads,
            blasThreadTimeout: ProcessInfo.processInfo.environment["OPENBLAS_THREAD_TIMEOUT"], gemm1024: g1, gemmTraining: g2,
            correct: check.ok, maxRelativeError: check.maxRelativeError)
        if json {
            print(try jsonLine(report))
        } else {
            print("CPU            \(report.cpuModel) (\(report.cpuVendor)), \(cores) cores")
            print("features       \(report.cpuFeatures.joined(separator: " "))")
            print("BLAS           \(report.blasLibrary): \(report.blasConfig)")
            print(
                "kernel         \(report.kernel) (chosen by \(report.kernelSource); candidates: "
                    + "\(report.candidateKernels.joined(separator: ", ")))")
            print("BLAS threads   \(report.blasThreads) (idle spin: \(report.blasThreadTimeout.map { "2^\($0) cycles" } ?? "OpenBLAS default"))")
            print(String(format: "sgemm 1024³            %7.1f GFLOP/s", g1.gflops))
            print(String(format: "sgemm 2048×1536×384    %7.1f GFLOP/s", g2.gflops))
            print(
                String(
                    format: "correctness    %@ (max relative error %.2e vs float64)",
                    check.ok ? "ok" : "WRONG RESULTS", check.maxRelativeError))
        }
        if !check.ok { throw ExitCode(2) }
    }
}
