import CDiffKernels

/// The element type of a tensor's storage. Activations are always f32; model weights may be kept
/// reduced (WeightsDType). q8_0: blocks of 32 elements along a row, 34 bytes each (fp16 scale + 32 int8).
public enum ElementType: Sendable, Equatable {
    case f32, f16, bf16, q8_0

    var cType: de_dtype {
        switch self {
        case .f32: return DE_F32
        case .f16: return DE_F16
        case .bf16: return DE_BF16
        case .q8_0: return DE_Q8_0
        }
    }

    /// Bytes of `count` elements (q8_0: count % 32 == 0).
    func bytes(_ count: Int) -> Int {
        switch self {
        case .f32: return count * 4
        case .f16, .bf16: return count * 2
        case .q8_0: return count / 32 * 34
        }
    }

    /// Byte offset of element `index` (q8_0: a multiple of 32).
    func byteOffset(_ index: Int) -> Int {
        switch self {
        case .f32: return index * 4
        case .f16, .bf16: return index * 2
        case .q8_0: return index / 32 * 34
        }
    }

    public var name: String {
        switch self {
        case .f32: return "f32"
        case .f16: return "f16"
        case .bf16: return "bf16"
        case .q8_0: return "q8_0"
        }
    }
}
