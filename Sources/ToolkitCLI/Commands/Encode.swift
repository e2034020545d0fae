import ArgumentParser
import Foundation
import Tokenization
import ToolkitSupport

/// Options shared by the tokenizer commands.
struct TokenizerOptions: ParsableArguments {
    @Option(help: "tokenizer.json, .tiktoken, vocab.json (+ merges.txt beside it) or a directory.")
    var tokenizer: String
    @Option(help: "Regex and specials for .tiktoken / vocab.json files: gpt2, gpt4 or qwen.")
    var pretokenizer: Pretokenizer?

    func load() throws -> BPETokenizer {
        try BPETokenizer.load(path: tokenizer, pretokenizer: pretokenizer)
    }
}

/// Reads a text file; invalid UTF-8 becomes U+FFFD.
func readText(_ path: String) throws -> String {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw ToolkitError.file(path, "cannot read file")
    }
    return String(decoding: data, as: UTF8.self)
}

struct Encode: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the token ids of a text.")

    @OptionGroup var tokenizerOptions: TokenizerOptions
    @Option(help: "Text to encode.") var text: String?
    @Option(help: "File to encode (UTF-8).") var file: String?
    @Flag(help: "Encode special-token text as ordinary text.") var noSpecial = false
    @Flag(help: "Print {\"ids\": [...]}.") var json = false

    func validate() throws {
        guard (text == nil) != (file == nil) else {
            throw ValidationError("give exactly one of --text or --file")
        }
    }

    func run() throws {
        let tok = try tokenizerOptions.load()
        let input = try text ?? readText(file ?? "")
        let ids = tok.encode(input, allowedSpecial: noSpecial ? .none : .all)
        if json {
            struct Out: Codable { var ids: [Int] }
            print(try jsonLine(Out(ids: ids)))
        } else {
            print(ids.map(String.init).joined(separator: ","))
        }
    }
}
