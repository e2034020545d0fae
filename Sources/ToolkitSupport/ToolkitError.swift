import Foundation

/// A user-facing error: bad input (a file, a key, a flag), never a programmer error.
///
/// The message names what is wrong and where (file, key path, offset), so the CLI can print it
/// as is and exit non-zero.
public struct ToolkitError: Error, CustomStringConvertible, LocalizedError, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
    public var errorDescription: String? { message }

    /// An error about a file, optionally at a byte offset or key.
    public static func file(_ path: String, _ what: String, offset: Int? = nil) -> ToolkitError {
        if let offset { return ToolkitError("\(path): at byte offset \(offset): \(what)") }
        return ToolkitError("\(path): \(what)")
    }
}
