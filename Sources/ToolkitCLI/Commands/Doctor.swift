import ArgumentParser
import Foundation
import TensorCore
import ToolkitSupport
import Training

struct Doctor: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Report the CPU, the BLAS kernel in use, its speed and a correctness check.")

    @Flag(help: "Print one JSON object instead of a table.") var json = false
    @Option(help: "Timed repeats per GEMM shape.") var repeats = 5
    @Flag(help: "Only print the SIMD levels this CPU supports, one per line (for scripts: TOOLKIT_SIMD=LEVEL).")
    var simdLevels = false

    struct Report: Codable {
        var cpuModel: String
        var cpuVendor: String
        var cpuArchitecture: String
        var cpuFeatures: [String]
        var cores: Int
        /// The SIMD level the C kernels run (TOOLKIT_SIMD lowers it) and the levels the CPU has.
        var simdLevel: String
        var simdSupported: [String]
        var simdEnv: String?
        var blasLibrary: String
        var blasConfig: String
        var kernel: String
        var kernelSource: String
        var candidateKernels: [String]
        var kernelsTried: [String]
        var coretypeEnv: String?
        /// Cores one product is split over by the toolkit (each block is a single-threaded BLAS call).
        var blasThreads: Int
        /// OpenBLAS's own thread count (1: the toolkit does the splitting).
        var openblasThreads: Int
        var gemm1024: GemmBenchmark.Result
        var gemmTraining: GemmBenchmark.Result
        var correct: Bool
        var maxRelativeError: Double
        /// The MPI library linked in, this job's ranks (1 without mpirun) and this rank's host.
        var mpiLibrary: String
        var mpiRanks: Int
        var mpiRank: Int
        var host: String
    }

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
    }

    func run() throws {
        if simdLevels {
            for level in SIMDLevel.supported { print(level.rawValue) }
            return
        }
        let features = CPUFeatures.detect()
        let cores = SystemPolicy.availableCores
        BLASRuntime.setThreads(cores)
        let check = BLASRuntime.verify()
        let g1 = GemmBenchmark.run(m: 1024, n: 1024, k: 1024, repeats: repeats)
        let g2 = GemmBenchmark.run(m: 2048, n: 1536, k: 384, repeats: repeats)
        let report = Report(
            cpuModel: features.model, cpuVendor: features.vendor, cpuArchitecture: features.architecture,
            cpuFeatures: features.names, cores: cores, simdLevel: SIMDLevel.current.rawValue,
            simdSupported: SIMDLevel.supported.map(\.rawValue),
            simdEnv: ProcessInfo.processInfo.environment["TOOLKIT_SIMD"],
            blasLibrary: BLASLibrary.name, blasConfig: BLASRuntime.configString,
            kernel: BLASRuntime.kernelName, kernelSource: BLASRuntime.source.rawValue,
            candidateKernels: BLASRuntime.candidateKernels, kernelsTried: BLASLibrary.tried,
            coretypeEnv: ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"],
            blasThreads: BLASRuntime.threads,
            openblasThreads: BLASRuntime.openblasThreads, gemm1024: g1, gemmTraining: g2,
            correct: check.ok, maxRelativeError: check.maxRelativeError,
            mpiLibrary: MPICommunicator.libraryVersion, mpiRanks: Job.world.size, mpiRank: Job.world.rank,
            host: (Job.world as? MPICommunicator)?.hostName ?? ProcessInfo.processInfo.hostName)
        (Job.world as? MPICommunicator)?.finalize()
        if json {
            print(try jsonLine(report))
        } else {
            print("CPU            \(report.cpuModel) (\(report.cpuVendor), \(report.cpuArchitecture)), \(cores) cores")
            print("features       \(report.cpuFeatures.joined(separator: " "))")
            print(
                "SIMD level     \(report.simdLevel) (\(report.simdEnv == nil ? "best for this CPU" : "TOOLKIT_SIMD")"
                    + "; supported: \(report.simdSupported.joined(separator: ", ")))")
            print("BLAS           \(report.blasLibrary): \(report.blasConfig)")
            print(
                "kernel         \(report.kernel) (chosen by \(report.kernelSource); candidates: "
                    + "\(report.candidateKernels.joined(separator: ", "))"
                    + (report.kernelsTried.isEmpty ? "" : "; tried: \(report.kernelsTried.joined(separator: ", "))") + ")")
            print("BLAS threads   \(report.blasThreads) (the toolkit splits each product; OpenBLAS threads: \(report.openblasThreads))")
            print("MPI            \(report.mpiLibrary); rank \(report.mpiRank) of \(report.mpiRanks) on \(report.host)"
                  + (report.mpiRanks == 1 ? " (run under mpirun -np N for data-parallel training)" : ""))
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
