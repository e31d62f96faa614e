import FoundationEssentials

/// NumPy .npy files (format 1.0/2.0/3.0, C order): read float32/float16/float64/int32/int64/uint8,
/// write float32. Used for `--init-noise`, `--save-latents` and the reference fixtures.
public enum NPY {
    public struct Array {
        public var shape: [Int]
        public var floats: [Float]    // every dtype converted to Float (ints exactly up to 2^24)
        public var ints: [Int64]      // integer dtypes only (empty otherwise)
        public var tensor: Tensor { Tensor(shape: shape, values: floats) }
    }

    public static func read(path: String) throws -> Array {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DiffEditError.io("\(path): cannot read file")
        }
        return try parse([UInt8](data), origin: path)
    }

    public static func readTensor(path: String) throws -> Tensor { try read(path: path).tensor }

    public static func parse(_ bytes: [UInt8], origin: String) throws -> Array {
        let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]
        guard bytes.count >= 10, Swift.Array(bytes[0..<6]) == magic else {
            throw DiffEditError.io("\(origin): not a .npy file (bad magic)")
        }
        let major = bytes[6]
        var headerLen: Int, start: Int
        if major == 1 {
            headerLen = Int(bytes[8]) | Int(bytes[9]) << 8; start = 10
        } else if major == 2 || major == 3 {
            guard bytes.count >= 12 else { throw DiffEditError.io("\(origin): truncated .npy header") }
            headerLen = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24; start = 12
        } else {
            throw DiffEditError.io("\(origin): unsupported .npy version \(major)")
        }
        guard start + headerLen <= bytes.count else { throw DiffEditError.io("\(origin): truncated .npy header") }
        let header = String(decoding: bytes[start..<(start + headerLen)], as: UTF8.self)
        func field(_ key: String) -> String? {
            guard let r = header.firstRange(of: "'\(key)':") else { return nil }
            return TextUtil.trimmingWhitespace(header[r.upperBound...])
        }
        guard let descrField = field("descr"), let q1 = descrField.firstIndex(of: "'") else {
            throw DiffEditError.io("\(origin): .npy header has no descr")
        }
        let afterQ = descrField[descrField.index(after: q1)...]
        guard let q2 = afterQ.firstIndex(of: "'") else { throw DiffEditError.io("\(origin): bad descr") }
        let descr = String(afterQ[..<q2])
        if let fo = field("fortran_order"), fo.hasPrefix("True") {
            throw DiffEditError.unsupported("\(origin): Fortran-order .npy is not supported")
        }
        guard let sf = field("shape"), let p1 = sf.firstIndex(of: "("), let p2 = sf.firstIndex(of: ")") else {
            throw DiffEditError.io("\(origin): .npy header has no shape")
        }
        let dims = sf[sf.index(after: p1)..<p2].split(separator: ",").map { TextUtil.trimmingWhitespace($0) }.filter { !$0.isEmpty }
        var shape: [Int] = []
        for d in dims {
            guard let v = Int(d), v >= 0 else { throw DiffEditError.io("\(origin): bad dimension \(d) in .npy shape") }
            shape.append(v)
        }
        let count = shape.reduce(1, *)
        let body = start + headerLen
        let little = descr.hasPrefix("<") || descr.hasPrefix("|")
        guard little else { throw DiffEditError.unsupported("\(origin): big-endian .npy (\(descr)) is not supported") }
        let kind = String(descr.dropFirst())
        let size: Int
        switch kind {
        case "f4", "i4", "u4": size = 4
        case "f8", "i8", "u8": size = 8
        case "f2", "i2", "u2": size = 2
        case "u1", "i1", "b1": size = 1
        default: throw DiffEditError.unsupported("\(origin): .npy dtype \(descr) is not supported")
        }
        guard body + count * size <= bytes.count else {
            throw DiffEditError.io("\(origin): .npy data truncated (need \(count * size) bytes, have \(bytes.count - body))")
        }
        var floats = [Float](repeating: 0, count: count)
        var ints: [Int64] = []
        bytes.withUnsafeBytes { raw in
            let p = raw.baseAddress! + body
            switch kind {
            case "f4": for i in 0..<count { floats[i] = p.loadUnaligned(fromByteOffset: i * 4, as: Float.self) }
            case "f8": for i in 0..<count { floats[i] = Float(p.loadUnaligned(fromByteOffset: i * 8, as: Double.self)) }
            case "f2": for i in 0..<count { floats[i] = Float(Float16(bitPattern: p.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))) }
            default:
                ints = [Int64](repeating: 0, count: count)
                for i in 0..<count {
                    let v: Int64
                    switch kind {
                    case "i4": v = Int64(p.loadUnaligned(fromByteOffset: i * 4, as: Int32.self))
                    case "u4": v = Int64(p.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))
                    case "i8": v = p.loadUnaligned(fromByteOffset: i * 8, as: Int64.self)
                    case "u8": v = Int64(bitPattern: p.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self))
                    case "i2": v = Int64(p.loadUnaligned(fromByteOffset: i * 2, as: Int16.self))
                    case "u2": v = Int64(p.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))
                    case "i1": v = Int64(p.load(fromByteOffset: i, as: Int8.self))
                    default: v = Int64(p.load(fromByteOffset: i, as: UInt8.self))
                    }
                    ints[i] = v; floats[i] = Float(v)
                }
            }
        }
        return Array(shape: shape, floats: floats, ints: ints)
    }

    /// Writes a float32 .npy (version 1.0).
    public static func write(_ t: Tensor, path: String) throws {
        let shapeStr = t.shape.count == 1 ? "(\(t.shape[0]),)" : "(" + t.shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': \(shapeStr), }"
        let total = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - total % 64) % 64) + "\n"
        var out: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0]
        let hl = header.utf8.count
        out += [UInt8(hl & 0xff), UInt8(hl >> 8)]
        out += Swift.Array(header.utf8)
        out.reserveCapacity(out.count + t.count * 4)
        for v in t.buffer { withUnsafeBytes(of: v.bitPattern.littleEndian) { out += $0 } }
        let ok = FileManager.default.createFile(atPath: path, contents: Data(out))
        if !ok { throw DiffEditError.io("\(path): cannot write file") }
    }
}
