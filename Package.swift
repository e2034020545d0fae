// swift-tools-version: 6.1
import PackageDescription

// Opt-in: compile the Swift code for AVX2 machines (x86-64-v3; LLVM's CPU name for that level is
// "haswell") with TOOLKIT_NATIVE=1 swift build -c release. The binary then needs an AVX2 CPU. The C
// kernels need no flag: they carry every SIMD level and dispatch at run time.
#if arch(x86_64)
let native: [SwiftSetting] =
    Context.environment["TOOLKIT_NATIVE"] == "1"
    ? [.unsafeFlags(["-target-cpu", "haswell"], .when(configuration: .release))]
    : []
#else
let native: [SwiftSetting] = []
#endif

let package = Package(
    name: "toolkit",
    // Linux (x86-64, aarch64) is built and tested; macOS 14 and later builds against Accelerate.
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "toolkit", targets: ["ToolkitCLI"]),
        .library(name: "Platform", targets: ["Platform"]),
        .library(name: "TensorCore", targets: ["TensorCore"]),
        .library(name: "Layers", targets: ["Layers"]),
        .library(name: "Optimizers", targets: ["Optimizers"]),
        .library(name: "Tokenization", targets: ["Tokenization"]),
        .library(name: "TokenShards", targets: ["TokenShards"]),
        .library(name: "Checkpointing", targets: ["Checkpointing"]),
        .library(name: "Models", targets: ["Models"]),
        .library(name: "Training", targets: ["Training"]),
        .library(name: "FineTuning", targets: ["FineTuning"]),
        .library(name: "Reporting", targets: ["Reporting"]),
        .library(name: "Serving", targets: ["Serving"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        // The HTTP server of `toolkit serve` (SwiftNIO underneath); its optional traits (swift-configuration
        // support, full Foundation) are not needed.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.0", traits: []),
        // Heap for choosing validation documents (already in the graph through SwiftNIO).
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
    ],
    targets: [
        // MARK: - System libraries
        .systemLibrary(
            name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),

        // MARK: - The platform seam (CPU features, SIMD level, BLAS binding, thread and memory policy)
        .target(
            name: "CPlatform",
            dependencies: [.target(name: "COpenBLAS", condition: .when(platforms: [.linux]))],
            exclude: ["README.md"],
            linkerSettings: [.linkedFramework("Accelerate", .when(platforms: [.macOS]))]),
        .target(name: "Platform", dependencies: ["CPlatform"], exclude: ["README.md"]),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        // MPI for multi-process training (OpenMPI on Debian: libopenmpi-dev, openmpi-bin). The C
        // shim `CMPI` is the only code that names MPI; without a launcher the toolkit never calls it.
        .systemLibrary(name: "CMPISys", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),
        .target(name: "CMPI", dependencies: ["CMPISys"], linkerSettings: [.linkedLibrary("mpi")]),

        // MARK: - Libraries
        .target(name: "ToolkitSupport", dependencies: ["CKernels"], exclude: ["README.md"]),
        .target(
            name: "CKernels",
            dependencies: ["CPlatform"],
            exclude: ["README.md"],
            cSettings: [.unsafeFlags(["-O3", "-fno-math-errno"])]),
        .target(
            name: "TensorCore",
            dependencies: [
                "Platform", "CPlatform", "CKernels", "ToolkitSupport",
            ],
            exclude: ["README.md"],
            swiftSettings: native),
        .target(name: "Layers", dependencies: ["TensorCore", "CKernels", "ToolkitSupport"], exclude: ["README.md"], swiftSettings: native),
        .target(
            name: "Optimizers", dependencies: ["TensorCore", "Layers", "CKernels"], exclude: ["README.md"]),
        .target(name: "Tokenization", dependencies: ["ToolkitSupport"], exclude: ["README.md"]),
        .target(
            name: "TokenShards",
            dependencies: ["CZstd", "CKernels", "ToolkitSupport", .product(name: "HeapModule", package: "swift-collections")],
            exclude: ["README.md"]),
        .target(name: "Checkpointing", dependencies: ["ToolkitSupport"], exclude: ["README.md"]),
        .target(
            name: "Models",
            dependencies: [
                "Layers", "TensorCore", "CKernels", "Checkpointing", "ToolkitSupport", .product(name: "Yams", package: "Yams"),
            ],
            exclude: ["README.md", "Families/README.md"]),
        .target(name: "Reporting", dependencies: ["ToolkitSupport"], exclude: ["README.md"]),
        .target(
            name: "Training",
            dependencies: [
                "Models", "Layers", "TensorCore", "Optimizers", "TokenShards", "Checkpointing", "Reporting", "ToolkitSupport",
                "CMPI",
            ],
            exclude: ["README.md"]),
        .target(
            name: "FineTuning",
            dependencies: [
                "Models", "Training", "Optimizers", "Layers", "TensorCore", "Tokenization", "Checkpointing", "ToolkitSupport",
            ],
            exclude: ["README.md"]),
        .target(
            name: "Serving",
            dependencies: [
                "Models", "Layers", "TensorCore", "Tokenization", "ToolkitSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
            ],
            exclude: ["README.md"]),
        .executableTarget(
            name: "ToolkitCLI",
            dependencies: [
                "TensorCore", "Layers", "Optimizers", "Tokenization", "TokenShards",
                "Models", "Training", "FineTuning", "Reporting", "Serving", "ToolkitSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            exclude: ["README.md"]),

        // MARK: - Test support and tests
        .target(
            name: "_TestSupport",
            dependencies: [
                "TensorCore",
            ],
            exclude: ["README.md"]),
        .testTarget(name: "ToolkitSupportTests", dependencies: ["ToolkitSupport", "_TestSupport"]),
        .testTarget(name: "PlatformTests", dependencies: ["Platform", "CPlatform", "CKernels", "_TestSupport"]),
        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore", "_TestSupport"]),
        .testTarget(name: "LayersTests", dependencies: ["Layers", "CKernels", "_TestSupport"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "CKernels", "_TestSupport"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Models", "_TestSupport"]),
        .testTarget(name: "FineTuningTests", dependencies: ["FineTuning", "_TestSupport"], resources: [.copy("Fixtures")]),
        .testTarget(
            name: "TokenizationTests", dependencies: ["Tokenization"], exclude: ["FixtureGenerators"],
            resources: [.copy("Fixtures")]),
        .testTarget(name: "TokenShardsTests", dependencies: ["TokenShards", "Tokenization", "CKernels"]),
        .testTarget(name: "CheckpointingTests", dependencies: ["Checkpointing", "Models"]),
        .testTarget(
            name: "FuzzTests",
            dependencies: ["Checkpointing", "FineTuning", "Models", "Tokenization", "TokenShards", "ToolkitSupport", "Training"],
            exclude: ["Regressions"]),
        .testTarget(name: "ToolkitCLITests", dependencies: ["ToolkitCLI", "ToolkitSupport", "Checkpointing", "Serving", "_TestSupport"], resources: [.copy("Fixtures")]),
        .testTarget(name: "ReportingTests", dependencies: ["Reporting", "_TestSupport"], resources: [.copy("Fixtures")]),
        .testTarget(name: "ServingTests", dependencies: ["Serving", "Models", "Tokenization", "_TestSupport"]),
        .testTarget(
            name: "OptimizersTests", dependencies: ["Optimizers", "_TestSupport"],
            resources: [.copy("Fixtures")]),
    ],
    swiftLanguageModes: [.v6]
)
