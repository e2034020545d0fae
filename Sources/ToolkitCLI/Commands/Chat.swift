import ArgumentParser
import Foundation
import Models
import Tokenization
import ToolkitSupport

struct Chat: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Talk to a model: multi-turn, streamed, with its family's chat template.",
        discussion: """
            Type a message and press Enter. Commands: /reset (forget the conversation), /save FILE (the \
            conversation as JSON), /set temperature|top_p|top_k|min_p|max_new_tokens VALUE, /system TEXT, /quit. \
            When the conversation no longer fits the context, the oldest turn is dropped (and said so).
            """)

    @OptionGroup var source: ModelSourceOptions
    @Option(help: "Tokenizer file (default: the model folder's tokenizer.json).") var tokenizer: String?
    @Flag(help: "Use --tokenizer even when it differs from the model's own tokenizer.json.") var allowTokenizerMismatch = false
    @Option(help: "chatml, llama3, gemma or alpaca (default: the one finetune recorded, else the family's).") var template: String?
    @Option(help: "System prompt.") var system: String?
    @Option(help: "Tokens per answer at most.") var maxNewTokens = 256
    @Option(help: "Sampling temperature (0: greedy).") var temperature: Float = 0.7
    @Option(help: "Nucleus sampling.") var topP: Float?
    @Option(help: "Top-k sampling.") var topK: Int?
    @Option(help: "Min-p sampling.") var minP: Float?
    @Option(help: "HF repetition penalty (1: off).") var repetitionPenalty: Float = 1
    @Option(help: "Sampling seed.") var seed: UInt64 = 0

    func validate() throws {
        try ConversationSetup.validate(template: template)
        guard maxNewTokens >= 1, temperature >= 0 else { throw ValidationError("--max-new-tokens must be >= 1 and --temperature >= 0") }
    }

    func run() throws {
        let setup = try ConversationSetup.load(source, tokenizer: tokenizer, allowMismatch: allowTokenizerMismatch, template: template,
                                               command: "chat")
        let (model, text, chat) = (setup.model, setup.text, setup.template)
        // The end of a turn: the template's marker as a special token when the tokenizer has one,
        // the model's EOS ids, the tokenizer's end of text; as text, the markers themselves.
        let stops = setup.turnStopIDs
        var settings = SamplingOptions(greedy: temperature == 0, temperature: temperature, topK: topK, topP: topP, minP: minP,
                                       repetitionPenalty: repetitionPenalty, seed: seed)
        var maxNew = maxNewTokens
        let engine = try DecoderPath.fast.engine(for: model, weights: .f32, useCache: true, quiet: true)
        let interactive = isatty(0) != 0
        var messages = system.map { [ChatMessage(role: "system", content: $0)] } ?? []
        printError("chat: \(model.recipe.name), template \(chat.rawValue), context \(model.dims.contextLength) tokens; /reset, /save FILE, /set KEY VALUE, /system TEXT, /quit")
        var turn = 0
        while true {
            if interactive { FileHandle.standardError.write(Data("\n> ".utf8)) }
            guard let line = readLine() else { break }
            let input = line.trimmingCharacters(in: .whitespaces)
            if input.isEmpty { continue }
            if input.hasPrefix("/") {
                let parts = input.split(separator: " ", maxSplits: 2).map(String.init)
                switch parts[0] {
                case "/quit", "/exit": return
                case "/reset":
                    messages = messages.filter { $0.role == "system" }
                    print("(conversation reset)")
                case "/system":
                    messages = messages.filter { $0.role != "system" }
                    if parts.count > 1 { messages.insert(ChatMessage(role: "system", content: parts.dropFirst().joined(separator: " ")), at: 0) }
                    print("(system prompt \(parts.count > 1 ? "set" : "cleared"))")
                case "/save" where parts.count > 1:
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.prettyPrinted]
                    try AtomicFile.write(encoder.encode(messages), to: parts[1])
                    print("(saved \(messages.count) messages to \(parts[1]))")
                case "/set" where parts.count == 3:
                    guard let v = Double(parts[2]), v.isFinite, v >= 0 else { print("(/set: '\(parts[2])' is not a number >= 0)"); continue }
                    switch parts[1] {
                    case "temperature": settings.temperature = Float(v); settings.greedy = v == 0
                    case "top_p": settings.topP = v > 0 && v <= 1 ? Float(v) : nil
                    case "top_k": settings.topK = v >= 1 ? Int(v) : nil
                    case "min_p": settings.minP = v <= 1 ? Float(v) : nil
                    case "max_new_tokens": maxNew = max(1, Int(v))
                    default: print("(/set: temperature, top_p, top_k, min_p or max_new_tokens)"); continue
                    }
                    print("(\(parts[1]) = \(parts[2]))")
                default:
                    print("(commands: /reset, /save FILE, /set KEY VALUE, /system TEXT, /quit)")
                }
                continue
            }
            messages.append(ChatMessage(role: "user", content: input))
            // Fit the context: drop the oldest exchange (the system prompt stays) until prompt + answer fit.
            var ids = try text.encode(chat.render(messages))
            while ids.count + maxNew > model.dims.contextLength,
                  let oldest = messages.firstIndex(where: { $0.role != "system" }), oldest < messages.count - 1 {
                let end = messages[(oldest + 1)...].firstIndex { $0.role == "user" } ?? messages.count - 1
                messages.removeSubrange(oldest..<end)
                print("(history truncated: dropped the oldest turn to fit the context of \(model.dims.contextLength) tokens)")
                ids = try text.encode(chat.render(messages))
            }
            let budget = min(maxNew, model.dims.contextLength - ids.count)
            guard budget >= 1 else {
                print("(that message is too long for the context of \(model.dims.contextLength) tokens)")
                messages.removeLast()
                continue
            }
            settings.seed = seed &+ UInt64(turn)
            turn += 1
            // Streamed as decoded, less what could still begin an end-of-turn marker (the generator
            // asks `stop` about every token that is not a stop id).
            var streamer = text.streamer(), answer = AnswerText(stops: chat.endOfTurn)
            _ = try Generator(model: model).generate(
                prompts: [ids], maxNewTokens: budget, sampling: settings, eos: stops, useCache: true, engine: engine,
                stop: { _, new in
                    let (piece, stopped) = answer.add(streamer.push(new.last!))
                    FileHandle.standardOutput.write(Data(piece.utf8))
                    return stopped
                })
            let tail = answer.add(streamer.flush()).text + answer.rest()
            FileHandle.standardOutput.write(Data(tail.utf8))
            print("")
            messages.append(ChatMessage(role: "assistant", content: answer.text))
        }
    }
}
