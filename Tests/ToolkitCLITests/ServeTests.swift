import Foundation
import Serving
import Testing

/// `toolkit serve` as a user runs it: the binary on a free port, answers equal to
/// `toolkit generate --greedy`, and SIGTERM while a stream runs (it finishes, the server exits 0).
@Suite struct ServeTests {
    /// Starts `toolkit serve ARGS --port 0` and returns the process, its stderr and the port.
    static func start(_ args: [String]) throws -> (Process, Pipe, Int) {
        let err = Pipe()
        let p = try CLI.start(["serve"] + args + ["--port", "0"], stderr: err)
        var banner = ""
        let deadline = Date().addingTimeInterval(60)
        while !banner.contains("http://"), Date() < deadline, p.isRunning {
            banner += String(decoding: err.fileHandleForReading.availableData, as: UTF8.self)
        }
        let port = banner.split(separator: ":").last.flatMap { Int($0.prefix { $0.isNumber }) } ?? 0
        #expect(port > 0, "\(banner)")
        return (p, err, port)
    }

    /// Serve and chat on the HF fixtures: greedy completions give HF's tokens (`return_token_ids`),
    /// and a chat turn answers.
    @Test(arguments: ["gpt2-tiny", "qwen3-tiny", "llama3-tiny", "gemma3-tiny", "gptoss-tiny"])
    func serveAndChatOnTheHFFixtures(name: String) throws {
        let tmp = CLI.temp("serve-\(name)")
        let tok = tmp.appendingPathComponent("tokenizer.json").path
        try CLI.toyTokenizer(tmp, out: tok)
        let folder = CLI.packageRoot.appendingPathComponent("Tests/Fixtures/\(name)").path
        let gen = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/generation.json"))) as! [String: Any]
        let prompts = gen["prompt_ids"] as! [[Int]], expected = gen["new_tokens"] as! [[Int]]
        let (p, _, port) = try Self.start(["--model", folder, "--tokenizer", tok])
        defer { p.terminate(); p.waitUntilExit() }
        let client = HTTPClient(port: port, timeoutSeconds: 30)
        let r = try client.post("/v1/completions", json: ["prompt": prompts, "max_tokens": expected[0].count, "temperature": 0,
                                                           "return_token_ids": true, "ignore_eos": true])
        #expect(r.status == 200, "\(r.text)")
        let choices = (try JSONSerialization.jsonObject(with: r.body) as? [String: Any])?["choices"] as? [[String: Any]] ?? []
        #expect(choices.map { $0["token_ids"] as? [Int] ?? [] } == expected, "\(name)")
        let chat = try CLI.run(["chat", "--model", folder, "--tokenizer", tok, "--temperature", "0", "--max-new-tokens", "5"],
                               input: "the cat\n/quit\n")
        #expect(chat.code == 0, "\(chat.err)")
    }

    @Test func serveAnswersLikeGenerateAndStopsGracefully() throws {
        let tmp = CLI.temp("serve")
        let model = try CLI.toyCheckpoint(tmp)
        let g = try CLI.run(["generate", "--checkpoint", model, "--prompt", "the dog ran", "--max-new-tokens", "12", "--greedy", "--json"])
        #expect(g.code == 0, "\(g.err)")
        let expected = try CLI.json(g.out)["text"] as? String ?? "?"

        let (p, err, port) = try Self.start(["--checkpoint", model, "--name", "toy"])
        defer { if p.isRunning { p.terminate() } }
        let client = HTTPClient(port: port, timeoutSeconds: 30)
        let body: [String: Any] = ["model": "toy", "prompt": "the dog ran", "max_tokens": 12, "temperature": 0]
        let whole = try client.post("/v1/completions", json: body)
        #expect(whole.status == 200, "\(whole.text)")
        let choice = ((try JSONSerialization.jsonObject(with: whole.body) as? [String: Any])?["choices"] as? [[String: Any]])?.first
        #expect(choice?["text"] as? String == expected)
        var streamed = body
        streamed["stream"] = true
        var pieces: [String] = []
        _ = try client.post("/v1/completions", json: streamed) { data in
            if let d = data.data(using: .utf8), let o = try? JSONSerialization.jsonObject(with: d) as? [String: Any],
               let t = (o["choices"] as? [[String: Any]])?.first?["text"] as? String { pieces.append(t) }
            return true
        }
        #expect(pieces.joined() == expected)
        // SIGTERM after the first event of a stream: the stream still ends with [DONE], then the process exits 0.
        var events: [String] = []
        var signalled = false
        let long = try client.post("/v1/completions", json: ["prompt": "the cat", "max_tokens": 40, "temperature": 0, "stream": true]) { e in
            events.append(e)
            if !signalled { signalled = true; kill(p.processIdentifier, SIGTERM) }
            return true
        }
        #expect(long.status == 200 && events.last == "[DONE]", "\(events.suffix(2))")
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        let rest = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(rest.contains("serve: stopped"), "\(rest)")
    }
}
