import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

#if canImport(Glibc)
private func systemConnect(_ fd: Int32, _ addr: UnsafePointer<sockaddr>, _ len: socklen_t) -> Int32 { Glibc.connect(fd, addr, len) }
private func systemSend(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int { Glibc.send(fd, p, n, Int32(MSG_NOSIGNAL)) }
#else
private func systemConnect(_ fd: Int32, _ addr: UnsafePointer<sockaddr>, _ len: socklen_t) -> Int32 { Darwin.connect(fd, addr, len) }
private func systemSend(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int { Darwin.send(fd, p, n, 0) }  // SO_NOSIGPIPE is set
#endif

/// A small blocking HTTP/1.1 client over a TCP socket, one request per connection
/// (`Connection: close`): what `toolkit bench serve` and the tests drive the server with. It reads
/// a chunked or sized body, and hands each server-sent event to `onEvent` as it arrives (the bench
/// times the first one).
public struct HTTPClient: Sendable {
    public let host: String
    public let port: Int
    public var timeoutSeconds: Int

    public init(host: String = "127.0.0.1", port: Int, timeoutSeconds: Int = 120) {
        self.host = host
        self.port = port
        self.timeoutSeconds = timeoutSeconds
    }

    public struct Reply: Sendable {
        public var status: Int
        public var headers: [String: String]
        public var body: Data
        public var text: String { String(decoding: body, as: UTF8.self) }
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Sends one request and reads the whole reply. `onEvent` receives each `data:` payload of a
    /// `text/event-stream` reply as soon as its event is complete; returning false closes the
    /// connection (a client that goes away).
    public func send(_ method: String, _ path: String, body: Data? = nil, contentType: String = "application/json",
                     onEvent: ((String) -> Bool)? = nil) throws -> Reply {
        let fd = try connect()
        defer { close(fd) }
        var head = "\(method) \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nConnection: close\r\nAccept: */*\r\n"
        if let body { head += "Content-Type: \(contentType)\r\nContent-Length: \(body.count)\r\n" }
        head += "\r\n"
        try write(fd, Data(head.utf8) + (body ?? Data()))
        var reader = Reader(fd: fd)
        guard let statusLine = try reader.line(), statusLine.hasPrefix("HTTP/1.") else { throw Failure(description: "no HTTP status line") }
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, let status = Int(parts[1]) else { throw Failure(description: "bad status line '\(statusLine)'") }
        var headers: [String: String] = [:]
        while let line = try reader.line(), !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let events = (headers["content-type"] ?? "").hasPrefix("text/event-stream") ? onEvent : nil
        var body = Data(), pending = Data()
        /// Passes complete events on; false: the caller wants to stop.
        func feed(_ piece: Data) -> Bool {
            body += piece
            guard let events else { return true }
            pending += piece
            while let r = pending.firstRange(of: Data("\n\n".utf8)) {
                let event = String(decoding: pending[pending.startIndex..<r.lowerBound], as: UTF8.self)
                pending = Data(pending[r.upperBound...])
                for line in event.split(separator: "\n") where line.hasPrefix("data:") {
                    if !events(String(line.dropFirst(5)).trimmingCharacters(in: .whitespaces)) { return false }
                }
            }
            return true
        }
        if headers["transfer-encoding"]?.lowercased() == "chunked" {
            while true {
                guard let sizeLine = try reader.line(), let field = sizeLine.split(separator: ";").first,
                      let size = Int(field.trimmingCharacters(in: .whitespaces), radix: 16), size >= 0 else {
                    throw Failure(description: "bad chunk size")
                }
                if size == 0 { break }
                let chunk = try reader.bytes(size)
                _ = try reader.line()
                if !feed(chunk) { break }
            }
        } else if let length = headers["content-length"].flatMap({ Int($0) }) {
            _ = feed(try reader.bytes(length))
        } else {
            while let piece = try reader.some() { if !feed(piece) { break } }
        }
        return Reply(status: status, headers: headers, body: body)
    }

    /// POSTs a JSON value.
    public func post(_ path: String, json: Any, onEvent: ((String) -> Bool)? = nil) throws -> Reply {
        try send("POST", path, body: try JSONSerialization.data(withJSONObject: json), onEvent: onEvent)
    }

    private func connect() throws -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        #if canImport(Glibc)
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #else
        hints.ai_socktype = SOCK_STREAM
        #endif
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &list) == 0, let first = list else {
            throw Failure(description: "cannot resolve \(host)")
        }
        defer { freeaddrinfo(list) }
        var node: UnsafeMutablePointer<addrinfo>? = first
        while let a = node {
            let fd = socket(a.pointee.ai_family, a.pointee.ai_socktype, a.pointee.ai_protocol)
            if fd >= 0 {
                var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                var one: Int32 = 1
                setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                #if canImport(Darwin)
                setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, socklen_t(MemoryLayout<Int32>.size))
                #endif
                if systemConnect(fd, a.pointee.ai_addr, a.pointee.ai_addrlen) == 0 { return fd }
                close(fd)
            }
            node = a.pointee.ai_next
        }
        throw Failure(description: "cannot connect to \(host):\(port) (\(String(cString: strerror(errno))))")
    }

    private func write(_ fd: Int32, _ data: Data) throws {
        try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            var done = 0
            while done < raw.count {
                let n = systemSend(fd, raw.baseAddress! + done, raw.count - done)
                guard n > 0 else { throw Failure(description: "send failed (\(String(cString: strerror(errno))))") }
                done += n
            }
        }
    }

    /// Buffered reads from the socket.
    private struct Reader {
        let fd: Int32
        var buffer = Data()

        mutating func fill() throws -> Bool {
            var chunk = [UInt8](repeating: 0, count: 16384)
            let n = recv(fd, &chunk, chunk.count, 0)
            if n < 0 { throw Failure(description: "read failed (\(String(cString: strerror(errno))))") }
            if n == 0 { return false }
            buffer += chunk[0..<n]
            return true
        }

        /// One line without its CRLF; nil at the end of the stream.
        mutating func line() throws -> String? {
            while true {
                if let r = buffer.firstRange(of: Data("\r\n".utf8)) {
                    let line = String(decoding: buffer[buffer.startIndex..<r.lowerBound], as: UTF8.self)
                    buffer = Data(buffer[r.upperBound...])
                    return line
                }
                guard try fill() else { return nil }
            }
        }

        mutating func bytes(_ n: Int) throws -> Data {
            while buffer.count < n { guard try fill() else { throw Failure(description: "the connection closed mid-body") } }
            let out = Data(buffer.prefix(n))
            buffer = Data(buffer.dropFirst(n))
            return out
        }

        mutating func some() throws -> Data? {
            if buffer.isEmpty { guard try fill() else { return nil } }
            defer { buffer = Data() }
            return buffer
        }
    }
}
