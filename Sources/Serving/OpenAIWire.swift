import Foundation

// The request and response bodies of OpenAI's completions and chat completions API, as clients send
// and expect them. Field names are the wire's (snake_case). Unknown fields are ignored, as OpenAI
// does; a known field of the wrong type is a 400 naming it (`APIError.decoding`).

/// A prompt: one string, several strings, one token-id list or several (`/v1/completions`).
enum PromptInput: Decodable {
    case texts([String])
    case ids([[Int32]])

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) { self = .texts([s]); return }
        if let s = try? c.decode([String].self) { self = .texts(s); return }
        if let ids = try? c.decode([Int32].self) { self = .ids([ids]); return }
        if let ids = try? c.decode([[Int32]].self) { self = .ids(ids); return }
        throw DecodingError.typeMismatch(
            PromptInput.self, .init(codingPath: c.codingPath, debugDescription: "a string, a list of strings, or token ids"))
    }

    var count: Int {
        switch self {
        case .texts(let t): return t.count
        case .ids(let i): return i.count
        }
    }
}

/// `stop`: one string or a list of them.
struct StopInput: Decodable {
    var strings: [String]
    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { strings = []; return }
        if let s = try? c.decode(String.self) { strings = [s]; return }
        if let s = try? c.decode([String].self) { strings = s; return }
        throw DecodingError.typeMismatch(StopInput.self, .init(codingPath: c.codingPath, debugDescription: "a string or a list of strings"))
    }
}

struct StreamOptions: Decodable {
    var include_usage: Bool?
}

/// The fields both endpoints share (OpenAI's, plus vLLM's `top_k`, `min_p` and
/// `repetition_penalty`), decoded from the same body as the endpoint's own fields.
struct CommonFields: Decodable {
    var model: String?
    var temperature: Double?
    var top_p: Double?
    var top_k: Int?
    var min_p: Double?
    var repetition_penalty: Double?
    var presence_penalty: Double?
    var frequency_penalty: Double?
    var seed: Int64?
    var stop: StopInput?
    var n: Int?
    var stream: Bool?
    var stream_options: StreamOptions?
    /// vLLM's extension: each choice also carries the generated token ids (`token_ids`).
    var return_token_ids: Bool?
    /// vLLM's extension: do not stop at the model's EOS ids (a chat still stops at its end of turn).
    var ignore_eos: Bool?
}

struct CompletionRequest: Decodable {
    var common: CommonFields
    var prompt: PromptInput
    var max_tokens: Int?
    var echo: Bool?
    var logprobs: Int?
    var suffix: String?
    var best_of: Int?

    enum CodingKeys: String, CodingKey { case prompt, max_tokens, echo, logprobs, suffix, best_of }
    init(from decoder: any Decoder) throws {
        common = try CommonFields(from: decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        prompt = try c.decode(PromptInput.self, forKey: .prompt)
        max_tokens = try c.decodeIfPresent(Int.self, forKey: .max_tokens)
        echo = try c.decodeIfPresent(Bool.self, forKey: .echo)
        logprobs = try c.decodeIfPresent(Int.self, forKey: .logprobs)
        suffix = try c.decodeIfPresent(String.self, forKey: .suffix)
        best_of = try c.decodeIfPresent(Int.self, forKey: .best_of)
    }
}

/// A message's content: a string, or a list of parts of which the text parts are read.
struct MessageContent: Decodable {
    var text: String
    struct Part: Decodable {
        var type: String
        var text: String?
    }
    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { text = ""; return }
        if let s = try? c.decode(String.self) { text = s; return }
        let parts = try c.decode([Part].self)
        if let bad = parts.first(where: { $0.type != "text" }) {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath, debugDescription: "content parts of type '\(bad.type)' are not supported (text only)"))
        }
        text = parts.compactMap(\.text).joined()
    }
}

struct ChatRequestMessage: Decodable {
    var role: String
    var content: MessageContent?
}

struct ChatCompletionRequest: Decodable {
    var common: CommonFields
    var messages: [ChatRequestMessage]
    var max_tokens: Int?
    var max_completion_tokens: Int?
    var logprobs: Bool?
    var tools: [IgnoredValue]?

    enum CodingKeys: String, CodingKey { case messages, max_tokens, max_completion_tokens, logprobs, tools }
    init(from decoder: any Decoder) throws {
        common = try CommonFields(from: decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        messages = try c.decode([ChatRequestMessage].self, forKey: .messages)
        max_tokens = try c.decodeIfPresent(Int.self, forKey: .max_tokens)
        max_completion_tokens = try c.decodeIfPresent(Int.self, forKey: .max_completion_tokens)
        logprobs = try c.decodeIfPresent(Bool.self, forKey: .logprobs)
        tools = try c.decodeIfPresent([IgnoredValue].self, forKey: .tools)
    }
}

/// Any JSON value, not kept (for fields only checked for presence).
struct IgnoredValue: Decodable {
    init(from decoder: any Decoder) throws {}
}

// MARK: - Responses

struct Usage: Codable, Equatable {
    var prompt_tokens: Int
    var completion_tokens: Int
    var total_tokens: Int
}

/// `logprobs` and `finish_reason` are written as null when absent, as OpenAI does.
struct CompletionChoice: Codable {
    var index: Int
    var text: String
    var logprobs: String?
    var finish_reason: String?
    var token_ids: [Int32]?

    enum CodingKeys: String, CodingKey { case index, text, logprobs, finish_reason, token_ids }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(index, forKey: .index)
        try c.encode(text, forKey: .text)
        try c.encode(logprobs, forKey: .logprobs)
        try c.encode(finish_reason, forKey: .finish_reason)
        try c.encodeIfPresent(token_ids, forKey: .token_ids)
    }
}

struct CompletionResponse: Codable {
    var id: String
    var object = "text_completion"
    var created: Int
    var model: String
    var choices: [CompletionChoice]
    var usage: Usage?
}

struct ChatMessageOut: Codable {
    var role: String?
    var content: String?
}

struct ChatChoice: Codable {
    var index: Int
    var message: ChatMessageOut?
    var delta: ChatMessageOut?
    var logprobs: String?
    var finish_reason: String?
    var token_ids: [Int32]?

    enum CodingKeys: String, CodingKey { case index, message, delta, logprobs, finish_reason, token_ids }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(index, forKey: .index)
        try c.encodeIfPresent(message, forKey: .message)
        try c.encodeIfPresent(delta, forKey: .delta)
        try c.encode(logprobs, forKey: .logprobs)
        try c.encode(finish_reason, forKey: .finish_reason)
        try c.encodeIfPresent(token_ids, forKey: .token_ids)
    }
}

struct ChatCompletionResponse: Codable {
    var id: String
    var object: String
    var created: Int
    var model: String
    var choices: [ChatChoice]
    var usage: Usage?
}

struct ModelCard: Codable {
    var id: String
    var object = "model"
    var created: Int
    var owned_by = "toolkit"
    var max_model_len: Int
}

struct ModelList: Codable {
    var object = "list"
    var data: [ModelCard]
}

/// The error body every 4xx and 5xx carries: `{"error": {"message", "type", "param", "code"}}`.
public struct APIError: Error, Codable, Equatable {
    /// `param` and `code` are written as null when absent, as OpenAI does.
    public struct Body: Codable, Equatable, Sendable {
        public var message: String
        public var type: String
        public var param: String?
        public var code: String?

        enum CodingKeys: String, CodingKey { case message, type, param, code }
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(message, forKey: .message)
            try c.encode(type, forKey: .type)
            try c.encode(param, forKey: .param)
            try c.encode(code, forKey: .code)
        }
    }
    public var error: Body
    /// The HTTP status (not in the body).
    public var status: Int

    enum CodingKeys: String, CodingKey { case error }

    public init(_ status: Int, _ message: String, param: String? = nil, code: String? = nil) {
        self.status = status
        let type = status == 429 ? "rate_limit_error" : status >= 500 ? "server_error" : "invalid_request_error"
        error = Body(message: message, type: type, param: param, code: code)
    }

    public init(from decoder: any Decoder) throws {
        error = try decoder.container(keyedBy: CodingKeys.self).decode(Body.self, forKey: .error)
        status = 0
    }

    /// A body that did not decode, said in terms of its fields.
    static func decoding(_ e: any Error) -> APIError {
        guard let e = e as? DecodingError else { return APIError(400, "the body is not valid JSON: \(e)") }
        func path(_ keys: [any CodingKey]) -> String {
            keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined().trimmingPrefix(".").description
        }
        func kind(_ t: Any.Type) -> String {
            switch t {
            case is Int.Type, is Int32.Type, is Int64.Type: return "an integer"
            case is Double.Type: return "a number"
            case is String.Type: return "a string"
            case is Bool.Type: return "true or false"
            case is PromptInput.Type: return "a string, a list of strings, or a list of token ids"
            case is StopInput.Type: return "a string or a list of strings"
            default:
                let name = "\(t)"
                return name.hasPrefix("Array") ? "a list" : name.hasPrefix("Dictionary") ? "an object" : "an object (\(name))"
            }
        }
        switch e {
        case .typeMismatch(let t, let c):
            let p = path(c.codingPath)
            return p.isEmpty ? APIError(400, "the body must be a JSON object") : APIError(400, "'\(p)' must be \(kind(t))", param: p)
        case .valueNotFound(let t, let c):
            let p = path(c.codingPath)
            return APIError(400, "'\(p)' must be \(kind(t)), not null", param: p)
        case .keyNotFound(let k, let c):
            let p = path(c.codingPath + [k])
            return APIError(400, "the required field '\(p)' is missing", param: p)
        case .dataCorrupted(let c):
            let p = path(c.codingPath)
            if p.isEmpty { return APIError(400, "the body is not valid JSON (\(c.debugDescription))") }
            return APIError(400, "'\(p)': \(c.debugDescription)", param: p)
        @unknown default:
            return APIError(400, "the body could not be read: \(e)")
        }
    }
}
