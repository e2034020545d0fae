import Foundation
import Testing
import ToolkitSupport

@testable import Checkpointing

@Suite struct SafetensorsCorruptionTests {
    let f32x2 = [UInt8](repeating: 0, count: 8)

    func open(_ header: String, _ data: [UInt8], length: UInt64? = nil) throws {
        _ = try SafetensorsFile(
            data: rawSafetensors(header: header, data: data, declaredLength: length), path: "bad.st"
        )
    }

    @Test func headerLengthOutOfBounds() {
        expectError(["bad.st", "too short"]) {
            _ = try SafetensorsFile(data: Data([1, 2, 3]), path: "bad.st")
        }
        expectError(["bad.st", "exceeds the", "bytes after the length field", "offset 0"]) {
            try open("{}", [], length: 3)
        }
        expectError(["bad.st", "exceeds the limit"]) { try open("{}", [], length: 1 << 40) }
        expectError(["bad.st", "exceeds the limit"]) { try open("{}", [], length: .max) }
        expectError(["bad.st", "too small"]) { try open("{", [], length: 1) }
    }

    @Test func invalidJSON() {
        expectError(["bad.st", "does not start with '{'"]) { try open("[1,2]   ", []) }
        expectError(["bad.st", "invalid JSON header"]) { try open(#"{"a": }"#, []) }
        expectError(["bad.st", "invalid JSON header"]) { try open("{\u{FF}}", []) }
        expectError(["bad.st", "invalid JSON header"]) {
            _ = try SafetensorsFile(
                data: rawSafetensors(
                    header: "", data: [UInt8(ascii: "{"), 0xC3, 0x28, UInt8(ascii: "}")],
                    declaredLength: 4),
                path: "bad.st")
        }
        expectError(["'x'", "expected an object"]) { try open(#"{"x": 3}"#, []) }
        expectError(["__metadata__", "expected a string"]) {
            try open(#"{"__metadata__": {"a": 1}}"#, [])
        }
    }

    @Test func badEntries() {
        let d = f32x2
        expectError(["'w'", "unknown dtype 'F33'"]) {
            try open(#"{"w":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}}"#, d)
        }
        expectError(["'w'", "shape[0] is negative"]) {
            try open(#"{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, d)
        }
        expectError(["'w'", "shape[1] is not an integer"]) {
            try open(#"{"w":{"dtype":"F32","shape":[2,1.5],"data_offsets":[0,8]}}"#, d)
        }
        expectError(["'w'", "overflows"]) {
            try open(
                #"{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#, d)
        }
        expectError(["'w'", "outside the data section of 8 bytes"]) {
            try open(#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, d)
        }
        expectError(["'w'", "outside the data section"]) {
            try open(#"{"w":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}}"#, d)
        }
        expectError(["'w'", "span 8 bytes but shape [3] × F32 needs 12"]) {
            try open(#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, d)
        }
        expectError(["'w'", "two integers"]) {
            try open(#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}}"#, d)
        }
        expectError(["'w'", "missing or non-string 'dtype'"]) {
            try open(#"{"w":{"shape":[2],"data_offsets":[0,8]}}"#, d)
        }
        expectError(["'w'", "unknown key 'extra'"]) {
            try open(#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":1}}"#, d)
        }
    }

    /// Two tensors of one name would leave one of them unused, silently: an error naming it.
    @Test func duplicateNamesAreRefused() {
        let entry = #""w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#
        expectError(["bad.st", "key 'w' appears twice", "offset"]) { try open("{" + entry + "," + entry + "}", f32x2 + f32x2) }
        // The same key in different objects is fine (the scan keeps one set of keys per object).
        #expect(JSONValue.duplicateKey(in: Data(#"{"a":{"x":1},"b":{"x":2},"c":[{"x":1},{"x":2}]}"#.utf8)) == nil)
        #expect(JSONValue.duplicateKey(in: Data(#"{"a":"k\"","a":1}"#.utf8))?.0 == "a")
    }

    @Test func overlappingGapsAndTrailingBytes() {
        let two = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"#
        expectError(["'b'", "overlaps the previous tensor", "offset"]) {
            try open(two + #""b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, f32x2)
        }
        expectError(["'b'", "leaves a gap"]) {
            try open(
                two + #""b":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}}"#, f32x2 + f32x2)
        }
        expectError(["cover 8 bytes of data but the data section has 12 bytes"]) {
            try open(
                #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, f32x2 + [0, 0, 0, 0])
        }
        #expect(throws: Never.self) { try open(#"{"__metadata__":null}"#, []) }
        // Zero-sized tensors may share an offset.
        #expect(throws: Never.self) {
            try open(
                #"{"e":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"#
                    + #""z":{"dtype":"BF16","shape":[3,0],"data_offsets":[0,0]}}"#, [])
        }
    }

    /// Random truncations and byte flips of real files must give a clean error or a valid file
    /// whose every tensor can be read — never a trap.
    @Test func fuzzTruncationsAndByteFlips() throws {
        var rng = SplitMix64(seed: 0x5EED)
        var samples: [Data] = []
        samples.append(
            try Data(
                contentsOf: URL(fileURLWithPath: Fixtures.path("gpt2-tiny/inputs.safetensors"))))
        var w = SafetensorsWriter()
        try w.add("a", HostTensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6]), as: .bf16)
        try w.add("b", HostTensor(shape: [3], values: [7, 8, 9]), as: .f16)
        try w.add("c", ints: [1, -2], shape: [2], as: .i32)
        try w.add("d", ints: [5], shape: [1], as: .u64)
        samples.append(try w.serialized())
        var errors = 0
        var valid = 0
        for iteration in 0..<3000 {
            var data = samples[iteration % samples.count]
            let headerEnd = min(
                data.count,
                8 + Int(data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }))
            switch rng.next() % 4 {
            case 0:
                data = data.prefix(Int(rng.next() % UInt64(data.count)))
            case 1, 2:
                // Flip 1–4 bytes, mostly inside the length field and header.
                for _ in 0..<(1 + Int(rng.next() % 4)) {
                    let i = Int(rng.next() % UInt64(rng.next() % 4 == 0 ? data.count : headerEnd))
                    data[data.startIndex + i] ^= UInt8(truncatingIfNeeded: 1 << (rng.next() % 8))
                }
            default:
                let i = Int(rng.next() % UInt64(headerEnd))
                data[data.startIndex + i] = UInt8(truncatingIfNeeded: rng.next())
            }
            do {
                let st = try SafetensorsFile(data: data, path: "fuzz")
                for name in st.names {
                    let dtype = try st.info(name).dtype
                    if dtype.isFloat {
                        _ = try st.floats(name)
                    } else if dtype.isInteger {
                        _ = try st.ints(name)
                    }
                }
                valid += 1
            } catch is ToolkitError {
                errors += 1
            }
        }
        #expect(errors + valid == 3000)
        #expect(errors > 1000 && valid > 100)
    }
}
