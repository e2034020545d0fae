import Foundation
import Testing
import ToolkitSupport

@testable import Checkpointing

@Suite struct SafetensorsReaderTests {
    @Test func readsFixtureModelsWithTheKeysListedInMeta() throws {
        for model in Fixtures.models {
            let file = try SafetensorsFile(path: Fixtures.path("\(model)/model.safetensors"))
            let meta = try Fixtures.meta(model)
            let keys = try #require(meta["checkpoint_keys"] as? [String])
            #expect(file.names == keys.sorted(), "\(model)")
            #expect(file.metadata == ["format": "pt"])
            // grads.safetensors holds one gradient per parameter with the same shapes.
            let grads = try SafetensorsFile(path: Fixtures.path("\(model)/grads.safetensors"))
            for name in file.names {
                #expect(try grads.info(name).shape == file.info(name).shape)
                #expect(file.tensors[name]?.dtype == .f32)
            }
        }
    }

    @Test func readsIntegerInputsAndScalarLoss() throws {
        let inputs = try SafetensorsFile(path: Fixtures.path("gpt2-tiny/inputs.safetensors"))
        #expect(inputs.metadata.isEmpty)
        let ids = try inputs.ints("input_ids")
        #expect(try inputs.info("input_ids").shape == [2, 16])
        #expect(ids.count == 32 && ids.allSatisfy { (0..<512).contains($0) })
        let labels = try inputs.ints("labels")
        // README: labels[0,0] = -100 and the last 4 labels of the last row are -100.
        #expect(labels[0] == -100)
        #expect(Array(labels[28..<32]) == [-100, -100, -100, -100])
        expectError(["input_ids", "I64", "expected a float type"]) {
            _ = try inputs.floats("input_ids")
        }

        let outputs = try SafetensorsFile(path: Fixtures.path("gpt2-tiny/outputs.safetensors"))
        let loss = try outputs.tensor("loss")
        #expect(loss.shape == [])
        let metaLoss = try #require(Fixtures.meta("gpt2-tiny")["loss"] as? Double)
        #expect(loss.values == [Float(metaLoss)])
        expectError(["no tensor named 'nope'"]) { _ = try outputs.tensor("nope") }
    }

    @Test func rewritingAFixtureIsByteIdentical() throws {
        for file in [
            "gpt2-tiny/model.safetensors", "qwen3-moe-tiny/grads.safetensors",
            "gpt2-tiny/inputs.safetensors", "attention/attention.safetensors",
        ] {
            let original = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path(file)))
            let st = try SafetensorsFile(data: original, path: file)
            var w = SafetensorsWriter(metadata: st.metadata.isEmpty ? nil : st.metadata)
            for name in st.names {
                let info = try st.info(name)
                if info.dtype.isFloat {
                    try w.add(name, try st.tensor(name), as: info.dtype)
                } else {
                    try w.add(name, ints: try st.ints(name), shape: info.shape, as: info.dtype)
                }
            }
            #expect(try w.serialized() == original, "\(file)")
        }
        // F32 tensors added as in-place views write the same bytes as copies do.
        let original = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("gpt2-tiny/model.safetensors")))
        let st = try SafetensorsFile(data: original)
        let tensors = try st.names.map { try ($0, st.tensor($0)) }
        var w = SafetensorsWriter(metadata: st.metadata.isEmpty ? nil : st.metadata)
        var buffers: [UnsafeMutableBufferPointer<Float>] = []
        defer { buffers.forEach { $0.deallocate() } }
        for (name, t) in tensors {
            let b = UnsafeMutableBufferPointer<Float>.allocate(capacity: t.values.count)
            _ = b.initialize(from: t.values)
            buffers.append(b)
            try w.add(name, shape: t.shape, view: .init(base: UnsafePointer(b.baseAddress!), count: b.count, owner: nil))
        }
        #expect(try w.serialized() == original)
        #expect(throws: ToolkitError.self) {
            var bad = SafetensorsWriter()
            try bad.add("x", shape: [3], view: .init(base: UnsafePointer(buffers[0].baseAddress!), count: 2, owner: nil))
        }
    }

    @Test func widensBF16AndF16Exactly() throws {
        let bf16: [UInt16] = [0x3F80, 0xC000, 0x3FC0, 0x7F80, 0xFF80, 0x0001, 0x8000, 0x4049]
        let bf16Expected: [Float] = [1, -2, 1.5, .infinity, -.infinity, 0x1p-133, -0.0, 3.140625]
        let f16: [UInt16] = [0x3C00, 0xC000, 0x7BFF, 0x0001, 0x3555, 0xFC00, 0x8000]
        let f16Expected: [Float] = [1, -2, 65504, 0x1p-24, 0.333251953125, -.infinity, -0.0]
        var data: [UInt8] = []
        for v in bf16 + f16 { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
        let header =
            #"{"a":{"dtype":"BF16","shape":[2,4],"data_offsets":[0,16]},"#
            + #""b":{"dtype":"F16","shape":[7],"data_offsets":[16,30]}}"#
        let st = try SafetensorsFile(data: rawSafetensors(header: header, data: data))
        let a = try st.tensor("a")
        #expect(a.shape == [2, 4])
        #expect(a.values.map(\.bitPattern) == bf16Expected.map(\.bitPattern))
        #expect(try st.floats("b").map(\.bitPattern) == f16Expected.map(\.bitPattern))
        // A NaN keeps its payload bits in the upper half.
        #expect(DTypeConversion.bf16ToFloat(0x7FC1).bitPattern == 0x7FC1_0000)
    }

    @Test func writesBF16WithRoundToNearestEven() throws {
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1).
        // 1 + 3·2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: ties go to 1 + 2^-6.
        let values: [Float] = [1 + 0x1p-8, 1 + 3 * 0x1p-8, 1 + 0x1p-8 + 0x1p-20, -2.5, 3.140625]
        let expected: [Float] = [1, 1 + 0x1p-6, 1 + 0x1p-7, -2.5, 3.140625]
        var w = SafetensorsWriter()
        try w.add("x", HostTensor(shape: [5], values: values), as: .bf16)
        try w.add("h", HostTensor(shape: [2], values: [0.1, 65504]), as: .f16)
        let st = try SafetensorsFile(data: try w.serialized())
        #expect(try st.floats("x") == expected)
        #expect(try st.floats("h") == [Float(Float16(0.1)), 65504])
        #expect(st.tensors["x"]?.dtype == .bf16)
    }

    @Test func writerPadsHeaderAndOrdersBySizeThenName() throws {
        var w = SafetensorsWriter(metadata: ["format": "pt", "a\"b": "c\nd"])
        try w.add("z.half", HostTensor(shape: [3], values: [1, 2, 3]), as: .f16)
        try w.add("b", HostTensor(shape: [1, 2], values: [4, 5]))
        try w.add("a", HostTensor(shape: [], values: [6]))
        try w.add("ids", ints: [-1, 7], shape: [2], as: .i64)
        #expect(w.orderedNames == ["ids", "a", "b", "z.half"])
        let data = try w.serialized()
        let n = data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        #expect(n % 8 == 0)
        #expect(
            data[8 + Int(n) - 1] == UInt8(ascii: " ") || data[8 + Int(n) - 1] == UInt8(ascii: "}"))
        let st = try SafetensorsFile(data: data)
        #expect(st.metadata == ["format": "pt", "a\"b": "c\nd"])
        #expect(try st.ints("ids") == [-1, 7])
        #expect(try st.tensor("a") == HostTensor(shape: [], values: [6]))
        #expect(try st.tensor("b") == HostTensor(shape: [1, 2], values: [4, 5]))
        #expect(try st.floats("z.half") == [1, 2, 3])
        // Each tensor is aligned to its element size relative to the file start.
        for name in st.names {
            let info = try st.info(name)
            #expect((st.dataStart + info.dataOffsets.lowerBound) % info.dtype.size == 0)
        }
    }

    @Test func writerRejectsBadInput() throws {
        var w = SafetensorsWriter()
        try w.add("a", HostTensor(shape: [1], values: [1]))
        expectError(["duplicate", "'a'"]) { try w.add("a", HostTensor(shape: [1], values: [1])) }
        expectError(["invalid tensor name"]) {
            try w.add("__metadata__", HostTensor(shape: [], values: [1]))
        }
        expectError(["'c'", "does not match"]) { try w.add("c", ints: [1, 2], shape: [3]) }
        expectError(["'d'", "not an integer dtype"]) {
            try w.add("d", ints: [1], shape: [1], as: .f32)
        }
        try w.add("e", ints: [300], shape: [1], as: .u8)
        expectError(["'e'", "300", "U8"]) { _ = try w.serialized() }
    }

    @Test func atomicWriteAndMmapRead() throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let t = HostTensor(shape: [3, 2], values: [1, -2, 3.5, 4, 5, .infinity])
        let path = dir.path("sub/x.safetensors")
        try SafetensorsWriter.write(["w": t], to: path)
        let st = try SafetensorsFile(path: path)
        #expect(try st.tensor("w").bitwiseEqual(t))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path("sub"))
        #expect(leftovers == ["x.safetensors"])
        expectError([dir.path("missing"), "cannot open"]) {
            _ = try SafetensorsFile(path: dir.path("missing"))
        }
        #expect(FileManager.default.createFile(atPath: dir.path("empty"), contents: Data()))
        expectError([dir.path("empty"), "too short"]) {
            _ = try SafetensorsFile(path: dir.path("empty"))
        }
        expectError([dir.path("sub"), "not a regular file"]) {
            _ = try SafetensorsFile(path: dir.path("sub"))
        }
    }
}

@Suite struct SafetensorsDTypeTests {
    @Test func everyIntegerDTypeAndF64RoundTrip() throws {
        let cases: [(SafetensorsDType, [Int])] = [
            (.bool, [0, 1, 1]), (.u8, [0, 255, 7]), (.i8, [-128, 127, 0]),
            (.i16, [-32768, 32767, 5]), (.u16, [0, 65535, 9]),
            (.i32, [Int(Int32.min), Int(Int32.max), -1]), (.u32, [0, Int(UInt32.max), 3]),
            (.i64, [Int.min, Int.max, -100]), (.u64, [0, Int.max, 42]),
        ]
        var w = SafetensorsWriter(metadata: nil)
        for (dtype, values) in cases {
            try w.add(dtype.rawValue, ints: values, shape: [3], as: dtype)
        }
        let doubles: [Float] = [1e-30, -3.25, .infinity]
        try w.add("f64", HostTensor(shape: [3], values: doubles), as: .f64)
        let st = try SafetensorsFile(data: try w.serialized())
        for (dtype, values) in cases {
            #expect(try st.ints(dtype.rawValue) == values, "\(dtype)")
            #expect(st.tensors[dtype.rawValue]?.dtype == dtype)
        }
        #expect(try st.floats("f64") == doubles)
        expectError(["'BOOL'", "expected a float type"]) { _ = try st.floats("BOOL") }
        expectError(["'f64'", "expected an integer type"]) { _ = try st.ints("f64") }

        var bad = SafetensorsWriter()
        try bad.add("b", ints: [2], shape: [1], as: .bool)
        expectError(["'b'", "BOOL"]) { _ = try bad.serialized() }
        // U64 values above Int.max are reported, not wrapped.
        var raw: [UInt8] = []
        withUnsafeBytes(of: UInt64.max.littleEndian) { raw.append(contentsOf: $0) }
        let big = try SafetensorsFile(
            data: rawSafetensors(
                header: #"{"u":{"dtype":"U64","shape":[1],"data_offsets":[0,8]}}"#, data: raw))
        expectError(["'u'", "above Int.max"]) { _ = try big.ints("u") }
    }
}
