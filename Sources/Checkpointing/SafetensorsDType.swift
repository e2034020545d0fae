/// The element types of the safetensors format (names as they appear in the header).
///
/// Every type is recognised for header validation (sizes); conversion to `Float` is supported
/// for the float types and conversion to `Int` for the integer types and `BOOL`.
public enum SafetensorsDType: String, Sendable, CaseIterable, Codable {
    case bool = "BOOL"
    case u8 = "U8"
    case i8 = "I8"
    case f8e5m2 = "F8_E5M2"
    case f8e4m3 = "F8_E4M3"
    case i16 = "I16"
    case u16 = "U16"
    case f16 = "F16"
    case bf16 = "BF16"
    case i32 = "I32"
    case u32 = "U32"
    case f32 = "F32"
    case f64 = "F64"
    case i64 = "I64"
    case u64 = "U64"

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .bool, .u8, .i8, .f8e5m2, .f8e4m3: 1
        case .i16, .u16, .f16, .bf16: 2
        case .i32, .u32, .f32: 4
        case .f64, .i64, .u64: 8
        }
    }

    /// True for types `SafetensorsFile.floats` converts (F32, F16, BF16, F64).
    public var isFloat: Bool { [.f32, .f16, .bf16, .f64].contains(self) }

    /// True for types `SafetensorsFile.ints` converts (signed/unsigned integers and BOOL).
    public var isInteger: Bool {
        [.bool, .u8, .i8, .i16, .u16, .i32, .u32, .i64, .u64].contains(self)
    }
}
