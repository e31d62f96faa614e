import FoundationEssentials

/// Writes f32 tensors as a .safetensors file in F32, F16 or BF16 (round to nearest even).
/// Tensors are written in name order; the header is padded with spaces to a multiple of 8 bytes.
public enum SafetensorsWriter {
    public static func write(_ tensors: [String: Tensor], dtype: String = "F32", metadata: [String: String] = [:],
                             path: String) throws {
        let esize: Int
        switch dtype {
        case "F32": esize = 4
        case "F16", "BF16": esize = 2
        default: throw DiffEditError.unsupported("\(path): cannot write dtype \(dtype) (F32, F16, BF16 only)")
        }
        let names = tensors.keys.sorted()
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        for n in names {
            let t = tensors[n]!
            header[n] = ["dtype": dtype, "shape": t.shape, "data_offsets": [offset, offset + t.count * esize]] as [String: Any]
            offset += t.count * esize
        }
        var hbytes = try JSONAny.serialize(header)
        while hbytes.count % 8 != 0 { hbytes.append(0x20) }
        var out = [UInt8]()
        out.reserveCapacity(8 + hbytes.count + offset)
        withUnsafeBytes(of: UInt64(hbytes.count).littleEndian) { out += $0 }
        out += hbytes
        for n in names {
            let t = tensors[n]!
            for v in t.buffer {
                switch dtype {
                case "F32": withUnsafeBytes(of: v.bitPattern.littleEndian) { out += $0 }
                case "F16": withUnsafeBytes(of: Float16(v).bitPattern.littleEndian) { out += $0 }
                default:
                    let b = v.bitPattern
                    let r: UInt32 = v.isNaN ? 0x7FC0_0000 : b &+ 0x7FFF &+ ((b >> 16) & 1)
                    withUnsafeBytes(of: UInt16(truncatingIfNeeded: r >> 16).littleEndian) { out += $0 }
                }
            }
        }
        guard FileManager.default.createFile(atPath: path, contents: Data(out)) else {
            throw DiffEditError.io("\(path): cannot write file")
        }
    }
}
