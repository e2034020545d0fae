import Foundation
import ToolkitSupport

/// Non-finite numbers, which JSON cannot hold, travel as these strings in every file this
/// target reads or writes (a diverged run logs `"loss": "nan"`).
let nonFiniteStrings = (positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")

/// A JSON decoder that reads `nonFiniteStrings` as numbers.
func reportDecoder() -> JSONDecoder {
    let decoder = JSONDecoder()
    decoder.nonConformingFloatDecodingStrategy = .convertFromString(
        positiveInfinity: nonFiniteStrings.positiveInfinity,
        negativeInfinity: nonFiniteStrings.negativeInfinity, nan: nonFiniteStrings.nan)
    return decoder
}

/// A sorted-key JSON encoder that writes non-finite numbers as `nonFiniteStrings`.
func reportEncoder(pretty: Bool) -> JSONEncoder {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    if pretty { encoder.outputFormatting.insert(.prettyPrinted) }
    encoder.nonConformingFloatEncodingStrategy = .convertToString(
        positiveInfinity: nonFiniteStrings.positiveInfinity,
        negativeInfinity: nonFiniteStrings.negativeInfinity, nan: nonFiniteStrings.nan)
    return encoder
}

/// The contents of `path`, or an error naming it and `what` it should have been.
func readFile(_ path: String, what: String) throws -> Data {
    do {
        return try Data(contentsOf: URL(fileURLWithPath: path))
    } catch {
        throw ToolkitError.file(path, "cannot read \(what): \(error.localizedDescription)")
    }
}

/// A one-line description of a decoding error that names the key path.
func describe(_ error: DecodingError) -> String {
    func path(_ context: DecodingError.Context, _ key: CodingKey? = nil) -> String {
        let keys = context.codingPath.map(\.stringValue) + (key.map { [$0.stringValue] } ?? [])
        return keys.joined(separator: ".")
    }
    switch error {
    case .keyNotFound(let key, let context):
        return "missing key \"\(path(context, key))\""
    case .valueNotFound(_, let context):
        return "key \"\(path(context))\" is null"
    case .typeMismatch(let type, let context):
        if context.codingPath.isEmpty { return "not a JSON object" }
        return "key \"\(path(context))\" has the wrong type (expected \(type))"
    case .dataCorrupted(let context):
        if context.codingPath.isEmpty { return "not a valid JSON object" }
        return "key \"\(path(context))\": \(context.debugDescription)"
    @unknown default:
        return "\(error)"
    }
}
