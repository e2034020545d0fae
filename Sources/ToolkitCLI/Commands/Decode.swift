import ArgumentParser
import Foundation
import Tokenization
import ToolkitSupport

struct Decode: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the text of token ids.")

    @OptionGroup var tokenizerOptions: TokenizerOptions
    @Option(help: "Comma-separated token ids, e.g. 15496,11,995.") var ids: String
    @Flag(help: "Leave out special tokens.") var skipSpecial = false
    @Flag(help: "Print {\"text\": ...}.") var json = false

    func run() throws {
        let tok = try tokenizerOptions.load()
        var list: [Int] = []
        for (k, part) in ids.split(separator: ",", omittingEmptySubsequences: false).enumerated() {
            let trimmed = part.trimmingCharacters(in: .whitespaces)
            guard let v = Int(trimmed) else {
                throw ValidationError("--ids: item \(k + 1) (\"\(trimmed)\") is not an integer")
            }
            list.append(v)
        }
        let text = try tok.decode(list, skipSpecial: skipSpecial)
        if json {
            struct Out: Codable { var text: String }
            print(try jsonLine(Out(text: text)))
        } else {
            print(text)
        }
    }
}
