import ArgumentParser

struct Toolkit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "toolkit",
        abstract: "Build, train, load and compare decoder-only language models on the CPU.",
        subcommands: [
            Doctor.self,
            Catalog.self,
            Build.self,
            Export.self,
            Generate.self,
            Chat.self,
            Serve.self,
            Eval.self,
            Train.self,
            Compare.self,
            Plot.self,
            Finetune.self,
            MergeLoRA.self,
            Classify.self,
            Bench.self,
            TrainTokenizer.self,
            Encode.self,
            Decode.self,
            Shard.self,
        ])
}

/// `toolkit bench ...`: every benchmark lives here (release builds only).
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks (run them on release builds).",
        subcommands: [
            BenchGemm.self,
            BenchGemv.self,
            BenchAllreduce.self,
            BenchAttention.self,
            BenchGenerate.self,
            BenchServe.self,
            BenchTrain.self,
            BenchTokenizer.self,
            BenchShard.self,
        ])
}
