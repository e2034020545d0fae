#if _endian(big)
    #error("Checkpointing reads and writes little-endian data with plain copies")
#endif

/// Bulk conversion of little-endian safetensors payloads to `Float` / `Int` and back.
///
/// Loops run over raw pointers with unaligned loads (the data section need not be aligned in a
/// mapped file) and write into uninitialised array storage, so loading is memory-bound.
package enum DTypeConversion {
    /// BF16 → F32: the 16 bits are the upper half of an IEEE single.
    @inline(__always)
    package static func bf16ToFloat(_ bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }

    /// F32 → BF16 with round-to-nearest-even (as PyTorch); NaNs stay quiet NaNs.
    @inline(__always)
    package static func floatToBF16(_ x: Float) -> UInt16 {
        let bits = x.bitPattern
        if x.isNaN { return UInt16(truncatingIfNeeded: (bits >> 16) | 0x0040) }
        let rounding = 0x7FFF &+ ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
    }

    /// Converts `count` elements of `dtype` (a float type) at `raw` to `Float`.
    package static func floats(_ raw: UnsafeRawBufferPointer, dtype: SafetensorsDType, count: Int)
        -> [Float]
    {
        [Float](unsafeUninitializedCapacity: count) { out, initialized in
            guard count > 0, let src = raw.baseAddress, let dst = out.baseAddress else {
                initialized = 0
                return
            }
            switch dtype {
            case .f32:
                // The host is little-endian (x86_64/arm64 Linux), so F32 is a plain copy.
                UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: count * 4)
            case .bf16:
                for i in 0..<count {
                    dst[i] = bf16ToFloat(
                        UInt16(
                            littleEndian: src.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self)
                        ))
                }
            case .f16:
                for i in 0..<count {
                    let bits = UInt16(
                        littleEndian: src.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self))
                    dst[i] = Float(Float16(bitPattern: bits))
                }
            case .f64:
                for i in 0..<count {
                    dst[i] = Float(
                        Double(
                            bitPattern: UInt64(
                                littleEndian: src.loadUnaligned(
                                    fromByteOffset: i &* 8, as: UInt64.self))))
                }
            default:
                preconditionFailure("floats(_:) called with non-float dtype \(dtype)")
            }
            initialized = count
        }
    }

    /// Converts `count` elements of an integer dtype (or BOOL) to `Int`; nil if a U64 value
    /// does not fit.
    package static func ints(_ raw: UnsafeRawBufferPointer, dtype: SafetensorsDType, count: Int)
        -> [Int]?
    {
        var overflow = false
        let values = [Int](unsafeUninitializedCapacity: count) { out, initialized in
            initialized = 0
            guard count > 0, let src = raw.baseAddress, let dst = out.baseAddress else { return }
            func fill<T: FixedWidthInteger>(_: T.Type) {
                for i in 0..<count {
                    let v = T(
                        littleEndian: src.loadUnaligned(
                            fromByteOffset: i &* MemoryLayout<T>.size, as: T.self))
                    if let x = Int(exactly: v) {
                        dst[i] = x
                    } else {
                        dst[i] = 0
                        overflow = true
                    }
                }
            }
            switch dtype {
            case .bool, .u8: fill(UInt8.self)
            case .i8: fill(Int8.self)
            case .i16: fill(Int16.self)
            case .u16: fill(UInt16.self)
            case .i32: fill(Int32.self)
            case .u32: fill(UInt32.self)
            case .i64: fill(Int64.self)
            case .u64: fill(UInt64.self)
            default: preconditionFailure("ints(_:) called with non-integer dtype \(dtype)")
            }
            initialized = count
        }
        return overflow ? nil : values
    }

    /// Appends `values` encoded as `dtype` (F32, BF16, F16 or F64) to `out`.
    package static func encode(
        _ values: [Float], as dtype: SafetensorsDType, into out: inout [UInt8]
    ) {
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: values.count * dtype.size))
        out.withUnsafeMutableBytes { buf in
            guard let dst = buf.baseAddress?.advanced(by: start) else { return }
            values.withUnsafeBufferPointer { src in
                switch dtype {
                case .f32:
                    // The host is little-endian (x86_64/arm64 Linux), so F32 is a plain copy.
                    if let base = src.baseAddress {
                        dst.copyMemory(from: base, byteCount: src.count &* 4)
                    }
                case .bf16:
                    for (i, v) in src.enumerated() {
                        dst.storeBytes(
                            of: floatToBF16(v).littleEndian, toByteOffset: i &* 2, as: UInt16.self)
                    }
                case .f16:
                    for (i, v) in src.enumerated() {
                        dst.storeBytes(
                            of: Float16(v).bitPattern.littleEndian, toByteOffset: i &* 2,
                            as: UInt16.self)
                    }
                case .f64:
                    for (i, v) in src.enumerated() {
                        dst.storeBytes(
                            of: Double(v).bitPattern.littleEndian, toByteOffset: i &* 8,
                            as: UInt64.self)
                    }
                default:
                    preconditionFailure("encode(_:as:) called with non-float dtype \(dtype)")
                }
            }
        }
    }

    /// Appends `values` encoded as the integer `dtype` to `out`; returns the index of the first
    /// value that does not fit, or nil.
    package static func encode(_ values: [Int], as dtype: SafetensorsDType, into out: inout [UInt8])
        -> Int?
    {
        func put<T: FixedWidthInteger>(_: T.Type) -> Int? {
            out.reserveCapacity(out.count + values.count * MemoryLayout<T>.size)
            for (i, v) in values.enumerated() {
                guard let x = T(exactly: v) else { return i }
                withUnsafeBytes(of: x.littleEndian) { out.append(contentsOf: $0) }
            }
            return nil
        }
        switch dtype {
        case .bool:
            if let bad = values.firstIndex(where: { $0 != 0 && $0 != 1 }) { return bad }
            return put(UInt8.self)
        case .u8: return put(UInt8.self)
        case .i8: return put(Int8.self)
        case .i16: return put(Int16.self)
        case .u16: return put(UInt16.self)
        case .i32: return put(Int32.self)
        case .u32: return put(UInt32.self)
        case .i64: return put(Int64.self)
        case .u64: return put(UInt64.self)
        default: preconditionFailure("encode(_:as:) called with non-integer dtype \(dtype)")
        }
    }
}
