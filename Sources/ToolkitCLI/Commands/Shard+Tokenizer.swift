import TokenShards
import ToolkitSupport

/// The tokenizer behind `toolkit shard`, seen through TokenShards' `TokenEncoder`.
enum ShardTokenizer {
    static func load(_ spec: String) throws -> any TokenEncoder & TokenDecoder {
        if spec == "builtin:bytes" { return ByteTokenEncoder() }
        throw ToolkitError.file(
            spec,
            "loading tokenizer files needs the Tokenization module, which is not merged "
                + "yet; use --tokenizer builtin:bytes")
    }
}
