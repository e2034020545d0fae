import ArgumentParser
import Checkpointing
import Foundation
import Models
import Tokenization

/// What `chat` and `serve` need to talk to a model: the model, its tokenizer, its chat template
/// (the one `finetune` recorded, else the family's, unless given) and its generation defaults.
struct ConversationSetup {
    let model: DecoderModel
    let text: TextCodec
    let template: ChatTemplate
    let defaults: GenerationDefaults
    /// Ids that end any answer: the model's EOS ids and the tokenizer's end of text.
    let stopIDs: Set<Int32>

    /// Also the template's end-of-turn markers, where the tokenizer has them as special tokens.
    var turnStopIDs: Set<Int32> { stopIDs.union(text.specialIDs(template.endOfTurn)) }

    static func validate(template: String?) throws {
        if let template, ChatTemplate(rawValue: template) == nil {
            throw ValidationError("--template must be one of \(ChatTemplate.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    static func load(_ source: ModelSourceOptions, tokenizer: String?, allowMismatch: Bool, template: String?, command: String) throws
        -> ConversationSetup
    {
        let model = try source.load()
        guard let path = try resolveTokenizer(explicit: tokenizer, modelFolder: source.path, allowMismatch: allowMismatch),
              let text = try TextCodec.load(path)
        else {
            throw ValidationError("\(command) needs a tokenizer: --tokenizer FILE, or a tokenizer.json in the model folder")
        }
        let recorded = (try? SafetensorsFile(path: source.path + "/model.safetensors"))?.metadata["chat_template"]
        let modelType = try? ModelFamilies.config(of: model).modelType.rawValue
        let chat = ChatTemplate(rawValue: template ?? "") ?? .default(modelType: modelType, recorded: recorded)
        let defaults = try GenerationDefaults.load(folder: source.path)
        return ConversationSetup(model: model, text: text, template: chat, defaults: defaults,
                                 stopIDs: Set(defaults.eosTokenIds + (text.endOfText.map { [$0] } ?? [])))
    }
}
