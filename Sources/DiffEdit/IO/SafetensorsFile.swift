import FoundationEssentials
import CDiffKernels

/// A memory-mapped .safetensors file: 8-byte little-endian header length, a JSON header
/// `{"name": {"dtype": "F16", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}`,
/// then the data area. Everything in the header is validated when the file is opened; tensors are
/// converted to f32 only on request (f32 tensors are borrowed from the mapping without a copy).
/// Names are the names stored in the file; checkpoint-name translation is done by the loaders.
public final class SafetensorsFile: WeightSource, @unchecked Sendable {
    /// One tensor's header entry. `begin`/`end` are byte offsets relative to the data area.
    public struct Entry: Sendable, Equatable {
        public var name: String
        public var dtype: String
        public var shape: [Int]
        public var begin: Int
        public var end: Int
        public var count: Int { shape.reduce(1, *) }
    }

    /// Element sizes of the dtypes the safetensors format defines. Only F32, F16 and BF16 can be
    /// converted to f32 tensors; the others are accepted in the header (real checkpoints carry e.g. an
    /// I64 `position_ids`) and refused with `.unsupported` when loaded.
    public static let dtypeSizes: [String: Int] = [
        "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "U64": 8, "I32": 4, "U32": 4,
        "I16": 2, "U16": 2, "I8": 1, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1,
    ]
    public static let convertibleDTypes: Set<String> = ["F32", "F16", "BF16"]
    /// Largest header accepted (the reference implementation's limit is 100 MB).
    public static let maxHeaderBytes = 100_000_000

    public let path: String
    public let origin: String
    public let metadata: [String: String]
    public let entries: [String: Entry]
    /// Names in file order (by data offset).
    public let orderedNames: [String]
    private let file: MemoryMappedFile
    private let dataStart: Int

    /// Opens and validates `path`. Throws `.io` for missing/unreadable/truncated/malformed files and
    /// `.model` for dtypes the format does not define; every message names the file (and the
    /// tensor when one is at fault).
    public init(path: String) throws {
        self.path = path
        self.origin = path
        let file = try MemoryMappedFile(path: path)
        self.file = file
        guard file.size >= 8 else {
            throw DiffEditError.io("\(path): truncated safetensors file (\(file.size) bytes, need at least 8 for the header length)")
        }
        var n: UInt64 = 0
        for i in 0..<8 { n |= UInt64(file.bytes(i, 1)[0]) << (8 * UInt64(i)) }
        guard n <= UInt64(SafetensorsFile.maxHeaderBytes) else {
            throw DiffEditError.io("\(path): safetensors header length \(n) is too large (file has \(file.size) bytes) — not a safetensors file?")
        }
        let headerLen = Int(n)
        guard 8 + headerLen <= file.size else {
            throw DiffEditError.io("\(path): safetensors header length \(headerLen) runs past the end of the file (\(file.size) bytes): truncated file")
        }
        guard headerLen >= 2 else { throw DiffEditError.io("\(path): safetensors header is empty") }
        let headerBytes = Data(file.bytes(8, headerLen))
        let json: Any
        do {
            json = try JSONAny.parse(headerBytes)
        } catch {
            throw DiffEditError.io("\(path): safetensors header is not valid JSON — not a safetensors file or corrupt")
        }
        guard let dict = json as? [String: Any] else {
            throw DiffEditError.io("\(path): safetensors header is not a JSON object")
        }
        self.dataStart = 8 + headerLen
        let dataSize = file.size - dataStart

        var meta: [String: String] = [:]
        var entries: [String: Entry] = [:]
        for (name, value) in dict {
            if name == "__metadata__" {
                if let m = value as? [String: Any] {
                    for (k, v) in m { if let s = v as? String { meta[k] = s } }
                }
                continue
            }
            guard let info = value as? [String: Any] else {
                throw DiffEditError.io("\(path): tensor \(name): header entry is not an object")
            }
            guard let dtype = info["dtype"] as? String else {
                throw DiffEditError.io("\(path): tensor \(name): header entry has no dtype")
            }
            guard let esize = SafetensorsFile.dtypeSizes[dtype] else {
                // not a dtype the format defines: a malformed file, not a missing feature
                throw DiffEditError.model("\(path): tensor \(name) has unknown dtype \(dtype) (supported: F32, F16, BF16)")
            }
            guard let shapeAny = info["shape"] as? [Any] else {
                throw DiffEditError.io("\(path): tensor \(name): header entry has no shape")
            }
            var shape: [Int] = []
            for d in shapeAny {
                guard let v = SafetensorsFile.int(d), v >= 0 else {
                    throw DiffEditError.io("\(path): tensor \(name): bad dimension \(d) in shape")
                }
                shape.append(v)
            }
            guard let offs = info["data_offsets"] as? [Any], offs.count == 2,
                  let b = SafetensorsFile.int(offs[0]), let e = SafetensorsFile.int(offs[1]) else {
                throw DiffEditError.io("\(path): tensor \(name): header entry has no valid data_offsets [begin, end]")
            }
            guard b >= 0, e >= b else {
                throw DiffEditError.io("\(path): tensor \(name): data_offsets [\(b), \(e)] are out of order")
            }
            guard e <= dataSize else {
                throw DiffEditError.io("\(path): tensor \(name): data_offsets [\(b), \(e)] point outside the data area (\(dataSize) bytes): truncated or corrupt file")
            }
            var count = 1
            for d in shape {
                let (m, o) = count.multipliedReportingOverflow(by: d)
                guard !o else { throw DiffEditError.io("\(path): tensor \(name): shape \(shape) overflows") }
                count = m
            }
            let (bytes, o) = count.multipliedReportingOverflow(by: esize)
            guard !o, bytes == e - b else {
                throw DiffEditError.io("\(path): tensor \(name): \(e - b) bytes of data, but shape \(shape) x \(dtype) needs \(o ? -1 : bytes)")
            }
            entries[name] = Entry(name: name, dtype: dtype, shape: shape, begin: b, end: e)
        }
        // Ranges may not overlap (zero-size tensors occupy no bytes).
        let sorted = entries.values.sorted { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
        var last: Entry? = nil
        for en in sorted where en.end > en.begin {
            if let l = last, en.begin < l.end {
                throw DiffEditError.io("\(path): tensors \(l.name) [\(l.begin), \(l.end)) and \(en.name) [\(en.begin), \(en.end)) overlap in the data area")
            }
            last = en
        }
        self.entries = entries
        self.orderedNames = sorted.map(\.name)
        self.metadata = meta
    }

    /// An exact JSON integer (no fractions, nothing beyond 2^53 from a double).
    static func int(_ v: Any) -> Int? {
        if let i = v as? Int { return i }
        if let d = v as? Double, d.rounded() == d, abs(d) < 9.0e15 { return Int(d) }
        return nil
    }

    // MARK: WeightSource

    public var names: [String] { orderedNames }
    public func contains(_ name: String) -> Bool { entries[name] != nil }
    public func shape(of name: String) -> [Int]? { entries[name]?.shape }
    public func dtype(of name: String) -> String? { entries[name]?.dtype }

    /// The dtype most tensors have (by element count), "" for an empty file. For `info`.
    public var mainDType: String {
        var c: [String: Int] = [:]
        for e in entries.values { c[e.dtype, default: 0] += e.count }
        return c.max { ($0.value, $0.key) < ($1.value, $1.key) }?.key ?? ""
    }

    /// The stored bytes of a tensor (valid while this object lives).
    public func rawBytes(_ name: String) throws -> UnsafeRawBufferPointer {
        guard let e = entries[name] else { throw DiffEditError.model("\(path): missing tensor \(name)") }
        return file.bytes(dataStart + e.begin, e.end - e.begin)
    }

    public func tensor(_ name: String, expectedShape: [Int]?) throws -> Tensor {
        guard let e = entries[name] else { throw DiffEditError.model("\(path): missing tensor \(name)") }
        if let s = expectedShape, s != e.shape {
            throw DiffEditError.model("\(path): tensor \(name) has shape \(e.shape), expected \(s)")
        }
        return try load(e, elements: 0, count: e.count, shape: e.shape)
    }

    public func storedTensor(_ name: String, expectedShape: [Int]?) throws -> Tensor {
        guard let e = entries[name] else { throw DiffEditError.model("\(path): missing tensor \(name)") }
        if let s = expectedShape, s != e.shape {
            throw DiffEditError.model("\(path): tensor \(name) has shape \(e.shape), expected \(s)")
        }
        return try storedTensor(name, elements: 0, count: e.count, shape: e.shape)
    }

    /// Loads elements [start, start+count) of a tensor (row-major) as an f32 tensor of `shape`.
    /// Used to split fused weights (OpenCLIP in_proj) without converting the whole tensor.
    public func tensor(_ name: String, elements start: Int, count: Int, shape: [Int]) throws -> Tensor {
        guard let e = entries[name] else { throw DiffEditError.model("\(path): missing tensor \(name)") }
        guard start >= 0, count >= 0, start + count <= e.count, shape.reduce(1, *) == count else {
            throw DiffEditError.model("\(path): tensor \(name) (shape \(e.shape)) has no element range [\(start), \(start + count)) of shape \(shape)")
        }
        return try load(e, elements: start, count: count, shape: shape)
    }

    /// The tensor as stored where that is f16 or bf16: a reduced-precision tensor borrowing the mapping
    /// (no copy, no conversion); anything else as `tensor` (F32 borrowed, other dtypes refused naming the
    /// tensor). Elements [start, start+count) of the stored tensor.
    public func storedTensor(_ name: String, elements start: Int, count: Int, shape: [Int]) throws -> Tensor {
        guard let e = entries[name] else { throw DiffEditError.model("\(path): missing tensor \(name)") }
        guard start >= 0, count >= 0, start + count <= e.count, shape.reduce(1, *) == count else {
            throw DiffEditError.model("\(path): tensor \(name) (shape \(e.shape)) has no element range [\(start), \(start + count)) of shape \(shape)")
        }
        if count == 0 { return Tensor(shape: shape) }
        switch e.dtype {
        case "F16", "BF16":
            let src = file.bytes(dataStart + e.begin + start * 2, count * 2)
            let p = UnsafeMutableRawPointer(mutating: src.baseAddress!)
            let t = Tensor(shape: shape, storage: TensorStorage(reduced: e.dtype == "F16" ? .f16 : .bf16, bytes: p, count: count, owner: file))
            // NaN / infinity: an all-ones exponent (checked on the stored bits; the message as for f32 loads)
            let mask: UInt16 = e.dtype == "F16" ? 0x7C00 : 0x7F80
            var bad = false
            for i in 0..<count where UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) & mask == mask {
                bad = true
                break
            }
            if bad {
                let w = t.widened()
                try NumericHealth.requireFinite(w.data, count, shape: shape, "\(path): tensor \(e.name)")
            }
            // the check read every page: they go back until the weight is used (faulted in from the file then)
            t.storage.releaseMappedPages()
            return t
        default:
            return try load(e, elements: start, count: count, shape: shape)
        }
    }

    private func load(_ e: Entry, elements start: Int, count: Int, shape: [Int]) throws -> Tensor {
        guard SafetensorsFile.convertibleDTypes.contains(e.dtype) else {
            throw DiffEditError.unsupported("\(path): tensor \(e.name) has dtype \(e.dtype); only F32, F16 and BF16 weights are supported")
        }
        let esize = SafetensorsFile.dtypeSizes[e.dtype]!
        let offset = dataStart + e.begin + start * esize
        if count == 0 { return Tensor(shape: shape) }
        let t = try convert(e, offset: offset, count: count, shape: shape)
        try NumericHealth.requireFinite(t.data, count, shape: shape, "\(path): tensor \(e.name)")
        t.storage.releaseMappedPages()   // an f32 tensor used in place: its pages come back when it is used
        return t
    }

    private func convert(_ e: Entry, offset: Int, count: Int, shape: [Int]) throws -> Tensor {
        let src = file.bytes(offset, count * (SafetensorsFile.dtypeSizes[e.dtype] ?? 4))
        switch e.dtype {
        case "F32":
            if Int(bitPattern: src.baseAddress!) % MemoryLayout<Float>.alignment == 0 {
                let p = UnsafeMutableRawPointer(mutating: src.baseAddress!).assumingMemoryBound(to: Float.self)
                return Tensor(shape: shape, storage: TensorStorage(borrowing: p, count: count, owner: file))
            }
            let t = try Tensor.allocate(shape, what: "\(path): tensor \(e.name) as f32")
            UnsafeMutableRawPointer(t.data).copyMemory(from: src.baseAddress!, byteCount: count * 4)
            return t
        case "F16":
            let t = try Tensor.allocate(shape, what: "\(path): tensor \(e.name) as f32")
            HalfConversion.f16ToF32(src, t.data, count)
            file.releasePages(offset, src.count)   // the f32 copy replaces the file's pages
            return t
        default: // BF16
            let t = try Tensor.allocate(shape, what: "\(path): tensor \(e.name) as f32")
            HalfConversion.bf16ToF32(src, t.data, count)
            file.releasePages(offset, src.count)
            return t
        }
    }
}
