import Foundation
import Testing
@testable import FineTuning

private func fixture(_ name: String) throws -> String {
    let url = try #require(Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: nil))
    return url.path
}

/// The shipped example files parse into the shapes the CLI trains on.
@Suite struct DataFileTests {
    @Test func instructionAndChatFiles() throws {
        let alpaca = try SFTData.load(try fixture("instructions.jsonl"), encode: byteEncode, eos: 255)
        #expect(alpaca.count == 48)
        for s in alpaca {
            #expect(s.ids.count == s.trainable.count && s.ids.last == 255)
            // A prompt block, then the response: one switch from masked to trainable.
            let firstTrainable = try #require(s.trainable.firstIndex(of: true))
            #expect(!s.trainable[..<firstTrainable].contains(true) && !s.trainable[firstTrainable...].contains(false))
        }
        let chat = try SFTData.load(try fixture("chat.jsonl"), encode: byteEncode, eos: 255)
        #expect(chat.count == 24 && chat.allSatisfy { $0.ids.last == Int32(UInt8(ascii: "\n")) && !$0.trainable.last! })
    }

    @Test func classificationAndPreferenceFiles() throws {
        let texts = try LabelledTexts.load(try fixture("sentiment.csv"))
        #expect(texts.texts.count == 160 && texts.classNames() == ["negative", "positive"])
        #expect(texts.texts.contains { $0.contains(",") })  // quoted fields survive
        let pairs = try PreferencePair.load(try fixture("preferences.jsonl"), encode: byteEncode, eos: nil)
        #expect(pairs.count == 48 && pairs.allSatisfy { !$0.prompt.isEmpty && $0.chosen != $0.rejected })
    }

    @Test func badRecordsNameTheLine() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("bad-\(UUID()).jsonl").path
        try "{\"text\": \"ok\"}\n\n{\"prompt\": \"p\"}\n".write(toFile: path, atomically: true, encoding: .utf8)
        do { _ = try SFTData.load(path, encode: byteEncode, eos: nil); Issue.record("accepted") } catch {
            #expect("\(error)".contains("\(path):3") && "\(error)".contains("completion"))
        }
        #expect(splitIndices(10, fraction: 0.2, seed: 1).validation.count == 2)
        #expect(Set(splitIndices(10, fraction: 0.2, seed: 1).train + splitIndices(10, fraction: 0.2, seed: 1).validation) == Set(0..<10))
    }

    /// Windows line ends are accepted wherever text lines are read (a CR LF is one Character in
    /// Swift, so splitting on "\n" alone once read such a file as one line).
    @Test func crlfLinesAreAccepted() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("crlf-\(UUID()).jsonl").path
        try "{\"prompt\": \"a\", \"completion\": \"b\"}\r\n{\"prompt\": \"c\", \"completion\": \"d\"}\r\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try SFTData.load(path, encode: byteEncode, eos: nil).count == 2)
    }

    /// An adapter of another PEFT type is refused, not merged as LoRA.
    @Test func onlyLoRAAdaptersLoad() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ia3-\(UUID())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try #"{"peft_type": "IA3", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj"]}"#
            .write(toFile: dir + "/adapter_config.json", atomically: true, encoding: .utf8)
        do { _ = try LoRAModel.readConfig(dir); Issue.record("accepted") } catch {
            #expect("\(error)".contains("adapter_config.json") && "\(error)".contains("peft_type") && "\(error)".contains("IA3"))
        }
    }
}

