import CDiffKernels
import Synchronization

/// Owns a block of f32 memory (64-byte aligned). Shared by tensors that are views of the same data.
///
/// Three kinds. Host-born storage (`init(count:)`, `init(borrowing:)`) lives in host memory for its
/// whole life. Constant storage (`init(constantHandle:source:backend:)`, made by `Backend.constant`)
/// is a model weight uploaded once: ops get the provider's handle, host reads see the source tensor's
/// host data (kept alive; never written), and the handle is released with the storage. Device-born storage is what ops write on a resident backend (the CUDA provider, or
/// the CPU provider in staged mode): it starts in the backend's memory and moves to host memory, once,
/// the first time host code asks for `pointer` (a download; the device block is released). Ops take
/// `opBase`: the device block while the data lives there, host memory otherwise, so a chain of ops
/// never leaves the device until host code reads the result.
///
/// A fourth kind holds a model weight in reduced precision (`init(reduced:...)`: f16, bf16 or q8_0, owned
/// or borrowed from a memory-mapped checkpoint): ops that understand it read `reducedBase` in place
/// (Tensor.weightOperand); anything else that asks for f32 (`pointer`, `opBase`) gets a widened copy,
/// made once and kept (counted in `transferStats.widenedWeights`: zero on the normal paths).
public final class TensorStorage: @unchecked Sendable {
    public let count: Int
    /// f32 for everything but reduced-precision weights.
    public private(set) var elementType: ElementType
    private var reduced: UnsafeMutableRawPointer?   // reduced storage: the stored elements
    private var ownsReduced: Bool
    private var host: UnsafeMutablePointer<Float>?
    private var owner: AnyObject?   // keeps a memory map (or other owner) alive for borrowed storage
    private var ownsHost: Bool
    private var device: UnsafeMutableRawPointer?
    private let backend: Backend?   // set for device-born storage only (host-born storage takes no lock)
    private var resident: Bool { backend != nil }
    private let lock = Mutex<Void>(())
    private var constHandle: UnsafeMutableRawPointer?   // constant storage: the provider's handle
    private let constBackend: Backend?                  // ... and who releases it
    private var constKind = DE_CONST_WEIGHT             // ... and how it was uploaded (for rebind)

    /// f32 storage at `host` (host-born, borrowed or constant): the one place these fields are set.
    private init(f32Host host: UnsafeMutablePointer<Float>, count: Int, owner: AnyObject?, ownsHost: Bool,
                 constHandle: UnsafeMutableRawPointer? = nil, constBackend: Backend? = nil) {
        self.host = host
        self.count = count
        self.elementType = .f32; self.reduced = nil; self.ownsReduced = false
        self.owner = owner
        self.ownsHost = ownsHost
        self.backend = nil
        self.constHandle = constHandle
        self.constBackend = constBackend
    }

    /// Allocates `count` floats, zero-filled when `zeroed`. Traps when the memory is not there: sizes that scale
    /// with a request or a file take `init(allocating:zeroed:what:)` instead.
    public convenience init(count: Int, zeroed: Bool = true) {
        precondition(count >= 0, "TensorStorage: negative count")
        self.init(f32Host: TensorStorage.allocateHost(count: count, zeroed: zeroed), count: count, owner: nil, ownsHost: true)
    }

    /// Allocates `count` floats through `HostMemory`, zero-filled when `zeroed`; `.outOfMemory` "out of memory
    /// allocating N bytes for WHAT" when the memory is not there.
    public convenience init(allocating count: Int, zeroed: Bool, what: @autoclosure () -> String) throws {
        precondition(count >= 0, "TensorStorage: negative count")
        let bytes = HostMemory.bytes(max(count, 1), MemoryLayout<Float>.stride)
        let raw = try HostMemory.allocate(bytes, what: what())
        if zeroed { raw.initializeMemory(as: UInt8.self, repeating: 0, count: bytes) }
        self.init(f32Host: raw.bindMemory(to: Float.self, capacity: max(count, 1)), count: count, owner: nil, ownsHost: true)
    }

    /// Borrows memory kept alive by `owner` (e.g. an f32 tensor inside a memory-mapped file).
    public convenience init(borrowing pointer: UnsafeMutablePointer<Float>, count: Int, owner: AnyObject) {
        self.init(f32Host: pointer, count: count, owner: owner, ownsHost: false)
    }

    /// A constant uploaded with de_backend_constant_upload (`Backend.constant`): ops take `handle`, host
    /// reads see `source` (kept alive, never written through this storage).
    convenience init(constantHandle handle: UnsafeMutableRawPointer, source: Tensor, backend: Backend, kind: de_const_kind) {
        self.init(f32Host: source.data, count: source.count, owner: source, ownsHost: false,
                  constHandle: handle, constBackend: backend)
        self.constKind = kind
    }

    // MARK: model weights changed in place (LoRA fusing)
    //
    // A model weight (host-born or constant storage) can be pointed at other data: every tensor over this
    // storage (the layer's weight, reshaped views) then computes with the new values, and a constant is
    // uploaded again. The caller guarantees that no op of the model runs meanwhile.

    /// The data this storage shows now, as a storage of its own that keeps it alive and readable (this one
    /// then borrows it): what `rebind` takes to go back to exactly these values.
    public func detachData() -> TensorStorage {
        precondition(!resident, "TensorStorage.detachData: device-born storage is not a model weight")
        if let r = reduced {   // a reduced weight: its stored bytes, exactly
            lock.withLock { _ in dropWidened() }
            if ownsReduced {
                let block = RawBlock(r)
                ownsReduced = false
                owner = block
                return TensorStorage(reduced: elementType, bytes: r, count: count, owner: block)
            }
            return TensorStorage(reduced: elementType, bytes: r, count: count, owner: owner ?? self)
        }
        if ownsHost, let h = host {
            let kept = TensorStorage(borrowing: h, count: count, owner: TensorStorage.HostBlock(h))
            ownsHost = false
            owner = kept
            return kept
        }
        let kept = TensorStorage(borrowing: host!, count: count, owner: owner ?? self)
        return kept
    }

    /// From now on this storage shows `source`'s data (kept alive by it; never written through it). A
    /// constant is uploaded again from the new data and its old handle released (after the new upload
    /// succeeded: on failure nothing changed).
    public func rebind(to source: TensorStorage) throws {
        precondition(!resident, "TensorStorage.rebind: device-born storage is not a model weight")
        precondition(source.count == count, "TensorStorage.rebind: \(source.count) values for \(count)")
        if let old = reduced {
            // a reduced weight given reduced data of its type borrows it as it is (bit for bit: going back
            // to the original); given f32 data (a LoRA-fused weight) it becomes f32 storage of that data,
            // as diffusers fuses in the compute dtype (rounding it to 16 bits would move outputs ~1e-3)
            lock.withLock { _ in dropWidened() }
            if ownsReduced { HostMemory.free(old) }
            if source.elementType == elementType, let sr = source.reduced {
                reduced = sr
                ownsReduced = false
                owner = source
                return
            }
            reduced = nil
            ownsReduced = false
            elementType = .f32
            ownsHost = false
            host = source.pointer
            owner = source
            return
        }
        if let sr = source.reduced, constHandle == nil {
            // an f32 weight going back to reduced data (unfusing a weight that was reduced at load)
            if ownsHost, let h = host { HostMemory.free(h) }
            host = nil
            ownsHost = true
            reduced = sr
            ownsReduced = false
            elementType = source.elementType
            owner = source
            return
        }
        let newHost = source.pointer
        if let old = constHandle, let be = constBackend {
            let bytes = count * MemoryLayout<Float>.stride
            guard let h = de_backend_constant_upload(be.raw, newHost, bytes, constKind) else {
                throw DiffEditError.outOfMemory("constant_upload: \(bytes) bytes: \(String(cString: de_backend_last_error(be.raw)))")
            }
            constHandle = h
            de_backend_constant_release(be.raw, old)
        }
        if ownsHost, let h = host { HostMemory.free(h) }
        ownsHost = false
        host = newHost
        owner = source
    }

    /// Owns one host block (what `detachData` hands a block this storage allocated to).
    /// Owns a reduced weight's bytes once they are detached from the storage that allocated them.
    final class RawBlock {
        let pointer: UnsafeMutableRawPointer
        init(_ p: UnsafeMutableRawPointer) { pointer = p }
        deinit { HostMemory.free(pointer) }
    }

    /// Frees the widened f32 copy of a reduced weight (under `lock`; the data it showed is about to change).
    private func dropWidened() {
        if reduced != nil, ownsHost, let h = host { HostMemory.free(h) }
        if reduced != nil { host = nil; ownsHost = true }
    }

    final class HostBlock {
        let pointer: UnsafeMutablePointer<Float>
        init(_ p: UnsafeMutablePointer<Float>) { pointer = p }
        deinit { HostMemory.free(pointer) }
    }

    /// A reduced-precision weight (f16, bf16 or q8_0; `count` elements, q8_0: count % 32 == 0) at `bytes`:
    /// borrowed while `owner` (e.g. a memory-mapped file) keeps it alive, or owned (`owner` nil: `bytes`
    /// came from HostMemory.allocate and is freed with the storage).
    init(reduced type: ElementType, bytes: UnsafeMutableRawPointer, count: Int, owner: AnyObject?) {
        precondition(type != .f32, "TensorStorage(reduced:): f32 is not reduced")
        precondition(type != .q8_0 || count % 32 == 0, "TensorStorage: q8_0 needs a multiple of 32 elements")
        self.count = count
        self.elementType = type
        self.reduced = bytes
        self.ownsReduced = owner == nil
        self.host = nil
        self.owner = owner
        self.ownsHost = true      // the widened copy, if one is ever made
        self.backend = nil
        self.constHandle = nil
        self.constBackend = nil
    }

    /// The stored elements of a reduced weight (nil for f32 storage).
    public var reducedBase: UnsafeRawPointer? { reduced.map { UnsafeRawPointer($0) } }

    /// The reduced elements as f32 (a new buffer of `count` floats).
    func widenReduced(into h: UnsafeMutablePointer<Float>) {
        guard let r = reduced else { return }
        switch elementType {
        case .f16: de_f16_to_f32(r.assumingMemoryBound(to: UInt16.self), h, Int64(count))
        case .bf16: de_bf16_to_f32(r.assumingMemoryBound(to: UInt16.self), h, Int64(count))
        case .q8_0: de_dequantize_q8_0(r, h, Int64(count))
        case .f32: break
        }
    }

    /// For storage borrowed from a memory-mapped file (f32 or reduced): drops the file's resident pages
    /// under it once its data has been converted elsewhere (MemoryMappedFile.releasePages). No-op otherwise.
    func releaseMappedPages() {
        guard !ownsHost || (reduced != nil && !ownsReduced), let file = owner as? MemoryMappedFile, let fb = file.base else { return }
        let start: UnsafeRawPointer
        if let r = reduced { start = UnsafeRawPointer(r) } else if let h = host { start = UnsafeRawPointer(h) } else { return }
        let off = start - UnsafeRawPointer(fb)
        file.releasePages(off, elementType.bytes(count))
    }

    /// True when the data is read in place from a memory-mapped file (borrowed, no copy).
    public var isMapped: Bool { owner is MemoryMappedFile && (!ownsHost || (reduced != nil && !ownsReduced)) }

    /// True for constant storage (a model weight uploaded once).
    public var isConstant: Bool { constHandle != nil }

    /// `count` floats of the backend's own memory (uninitialised; an op is about to write them).
    init(deviceCount count: Int, backend: Backend) throws {
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        guard let d = de_backend_alloc(backend.raw, bytes) else {
            throw DiffEditError.outOfMemory("\(backend.name) backend: could not allocate \(bytes) bytes of device memory")
        }
        self.device = d
        self.count = count
        self.elementType = .f32; self.reduced = nil; self.ownsReduced = false
        self.owner = nil
        self.ownsHost = true
        self.backend = backend
        self.constHandle = nil
        self.constBackend = nil
        TensorStorage.stats.withLock { $0.deviceAllocations += 1 }
    }

    /// Host memory for `count` floats (HostMemory; freed with HostMemory.free). Traps when it is not there (the
    /// non-throwing paths: small tensors, a reduced weight's widened copy, a download of device memory).
    private static func allocateHost(count: Int, zeroed: Bool) -> UnsafeMutablePointer<Float> {
        let bytes = HostMemory.bytes(max(count, 1), MemoryLayout<Float>.stride)
        guard let raw = HostMemory.allocate(bytes) else {
            preconditionFailure("out of memory allocating \(bytes) bytes for a tensor of \(count) floats")
        }
        if zeroed { raw.initializeMemory(as: UInt8.self, repeating: 0, count: bytes) }
        return raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    /// Host memory holding the data (downloads device-born storage the first time).
    public var pointer: UnsafeMutablePointer<Float> {
        if reduced != nil {
            return lock.withLock { _ in
                if let h = host { return h }
                let h = TensorStorage.allocateHost(count: count, zeroed: false)
                widenReduced(into: h)
                host = h
                TensorStorage.stats.withLock { $0.widenedWeights += 1; $0.widenedBytes += count * 4 }
                return h
            }
        }
        if !resident { return host! }
        return lock.withLock { _ in
            if let d = device, let be = backend {
                let h = TensorStorage.allocateHost(count: count, zeroed: false)
                let bytes = count * MemoryLayout<Float>.stride
                let st = de_backend_download(be.raw, h, d, bytes)
                if st != DE_OK {
                    // no throwing from a property: zero the data and fail the next op on this backend
                    UnsafeMutableRawPointer(h).initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
                    be.recordTransferFailure("download of \(bytes) bytes: \(String(cString: de_backend_last_error(be.raw)))")
                }
                de_backend_release(be.raw, d)
                device = nil
                host = h
                TensorStorage.stats.withLock { $0.downloads += 1; $0.downloadBytes += bytes }
            }
            return host!
        }
    }

    /// Base address for op descriptors: the constant handle, device memory while the data lives there,
    /// else host memory.
    public var opBase: UnsafeMutableRawPointer {
        if let h = constHandle { return h }
        if reduced != nil { return UnsafeMutableRawPointer(pointer) }
        if !resident { return UnsafeMutableRawPointer(host!) }
        return lock.withLock { _ in device ?? UnsafeMutableRawPointer(host!) }
    }

    /// True while the data lives in backend (device) memory (always for a constant).
    public var isOnDevice: Bool {
        if constHandle != nil { return true }
        if !resident { return false }
        return lock.withLock { _ in device != nil }
    }

    deinit {
        if let h = constHandle, let be = constBackend { de_backend_constant_release(be.raw, h) }
        if let d = device, let be = backend { de_backend_release(be.raw, d) }
        if ownsHost, let h = host { HostMemory.free(h) }
        if ownsReduced, let r = reduced { HostMemory.free(r) }
    }

    /// Counters of device-born storage (process-wide): how often data had to come back to the host.
    public struct TransferStats: Sendable, Equatable {
        public var deviceAllocations = 0
        public var downloads = 0
        public var downloadBytes = 0
        /// Reduced-precision weights widened to f32 because code asked for their f32 data (a fallback;
        /// the model paths read reduced weights in place) and the bytes those copies hold.
        public var widenedWeights = 0
        public var widenedBytes = 0
    }
    static let stats = Mutex<TransferStats>(TransferStats())
    public static var transferStats: TransferStats { stats.withLock { $0 } }
}

/// A dense, row-major f32 tensor: a shape and an offset into a `TensorStorage`, whose data lives in
/// host memory, in a resident backend's memory (op outputs; downloaded when host code reads `data`),
/// or is a model constant uploaded once (ops see the backend's handle through `opData`).
/// Image tensors are NCHW; token tensors [B, L, C].
/// Reference semantics for the data (a class over shared storage); `shape` is immutable.
public final class Tensor: @unchecked Sendable, CustomStringConvertible {
    public let shape: [Int]
    public let storage: TensorStorage
    public let offset: Int

    public var count: Int { shape.reduce(1, *) }
    public var rank: Int { shape.count }
    /// Host memory of the data (a resident tensor is downloaded first; see TensorStorage).
    public var data: UnsafeMutablePointer<Float> { storage.pointer + offset }
    /// The address ops take: a constant's handle, device memory while the data lives there, else host
    /// memory. Never dereference it on the host.
    public var opData: UnsafeMutablePointer<Float> { storage.opBase.assumingMemoryBound(to: Float.self) + offset }
    /// True while the data lives in backend (device) memory.
    public var isOnDevice: Bool { storage.isOnDevice }
    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: data, count: count) }
    /// The storage's element type (f32 except for reduced-precision model weights).
    public var elementType: ElementType { storage.elementType }

    /// The operand a weight-aware op takes (gemm a_dtype / b_dtype, conv2d weight_dtype): the stored
    /// elements in place for a reduced weight, else `opData` as f32.
    var weightOperand: (pointer: UnsafeRawPointer, dtype: de_dtype) {
        guard let r = storage.reducedBase else { return (UnsafeRawPointer(opData), DE_F32) }
        return (r + storage.elementType.byteOffset(offset), storage.elementType.cType)
    }

    /// Row `r` of a [rows, n] tensor as f32 into `dst` (n floats): a reduced tensor's row is widened alone
    /// (no f32 copy of the whole tensor is made or kept).
    func row(_ r: Int, into dst: UnsafeMutablePointer<Float>) {
        let n = shape.last ?? 1
        guard let base = storage.reducedBase else { dst.update(from: data + r * n, count: n); return }
        let first = offset + r * n
        switch storage.elementType {
        case .f16: de_f16_to_f32((base + 2 * first).assumingMemoryBound(to: UInt16.self), dst, Int64(n))
        case .bf16: de_bf16_to_f32((base + 2 * first).assumingMemoryBound(to: UInt16.self), dst, Int64(n))
        case .q8_0, .f32:
            let w = widened()   // not a table layout kept anywhere today; correct, if slow
            dst.update(from: w.data + r * n, count: n)
        }
    }

    /// Bytes the data occupies in its storage's element type.
    public var storedBytes: Int { storage.elementType.bytes(count) }

    /// This tensor as a new f32 tensor when it is reduced (without caching the widened copy in the
    /// storage), else itself.
    public func widened() -> Tensor {
        guard storage.reducedBase != nil else { return self }
        let all = Tensor(shape: [storage.count], zeroed: false)
        storage.widenReduced(into: all.data)
        return Tensor(shape: shape, storage: all.storage, offset: offset)
    }

    /// A reduced-precision copy of this tensor's values (f32 input: `data`; reduced input is widened first),
    /// rows of `shape.last` elements; q8_0 needs count % 32 == 0 (quantized in blocks of 32 in order).
    /// The copy's memory comes from `HostMemory`: `.outOfMemory` naming `what` when it is not there.
    public func converted(to type: ElementType, what: @autoclosure () -> String = "a converted tensor") throws -> Tensor {
        if type == .f32 { return elementType == .f32 ? self : widened() }
        if type == elementType { return self }
        let n = count
        precondition(type != .q8_0 || n % 32 == 0, "Tensor.converted(to: q8_0): \(n) elements")
        let bytes = try HostMemory.allocate(max(type.bytes(n), 1), what: "\(what()) in \(type)")
        func convert(_ src: UnsafePointer<Float>, _ first: Int, _ m: Int) {
            let dst = bytes + type.byteOffset(first)
            switch type {
            case .f16: de_f32_to_f16(src, dst.assumingMemoryBound(to: UInt16.self), Int64(m))
            case .bf16: de_f32_to_bf16(src, dst.assumingMemoryBound(to: UInt16.self), Int64(m))
            case .q8_0: de_quantize_q8_0(src, dst, Int64(m / 32), 32)
            case .f32: break
            }
        }
        if let base = storage.reducedBase, elementType == .f16 || elementType == .bf16 {
            // a 16-bit source widened in chunks: no f32 copy of the whole tensor (at load, such temporaries
            // between the kept weights fragment the heap and stay resident: ~0.2 GB for SD 1.5 in q8_0)
            let chunk = 32 * 1024
            let buf = UnsafeMutablePointer<Float>.allocate(capacity: chunk)
            defer { buf.deallocate() }
            var i = 0
            while i < n {
                let m = min(chunk, n - i)
                let src = (base + 2 * (offset + i)).assumingMemoryBound(to: UInt16.self)
                if elementType == .f16 { de_f16_to_f32(src, buf, Int64(m)) } else { de_bf16_to_f32(src, buf, Int64(m)) }
                convert(buf, i, m)
                i += m
            }
        } else {
            let src = widened()
            convert(src.data, 0, n)
        }
        return Tensor(shape: shape, storage: TensorStorage(reduced: type, bytes: bytes, count: n, owner: nil))
    }

    public init(shape: [Int], zeroed: Bool = true) {
        precondition(shape.allSatisfy { $0 >= 0 }, "Tensor: negative dimension in \(shape)")
        self.shape = shape
        self.storage = TensorStorage(count: shape.reduce(1, *), zeroed: zeroed)
        self.offset = 0
    }

    /// A new host tensor whose memory comes from `HostMemory`: `.outOfMemory` "out of memory allocating N bytes
    /// for WHAT" when it is not there, where `init(shape:)` would trap. For buffers that scale with a request or a
    /// file (op outputs, images as tensors, converted weights).
    public static func allocate(_ shape: [Int], zeroed: Bool = false, what: @autoclosure () -> String) throws -> Tensor {
        precondition(shape.allSatisfy { $0 >= 0 }, "Tensor: negative dimension in \(shape)")
        let n = HostMemory.product(shape)
        guard n <= Int.max / MemoryLayout<Float>.stride else {
            throw HostMemory.failure(Int.max, "\(what()) (shape \(shape))")
        }
        return Tensor(shape: shape, storage: try TensorStorage(allocating: n, zeroed: zeroed, what: "\(what()) (shape \(shape))"))
    }

    /// A copy through `HostMemory` (`.outOfMemory` naming `what` when the memory is not there).
    public func copy(what: @autoclosure () -> String) throws -> Tensor {
        let t = try Tensor.allocate(shape, what: what())
        t.data.update(from: data, count: count)
        return t
    }

    public init(shape: [Int], storage: TensorStorage, offset: Int = 0) {
        precondition(offset + shape.reduce(1, *) <= storage.count, "Tensor: view out of storage bounds")
        self.shape = shape
        self.storage = storage
        self.offset = offset
    }

    public convenience init(shape: [Int], values: [Float]) {
        precondition(shape.reduce(1, *) == values.count, "Tensor: \(values.count) values for shape \(shape)")
        self.init(shape: shape, zeroed: false)
        values.withUnsafeBufferPointer { src in
            if let base = src.baseAddress { data.update(from: base, count: values.count) }
        }
    }

    public static func zeros(_ shape: [Int]) -> Tensor { Tensor(shape: shape) }

    public static func full(_ shape: [Int], _ value: Float) -> Tensor {
        let t = Tensor(shape: shape, zeroed: false)
        t.data.update(repeating: value, count: t.count)
        return t
    }

    /// Same data, new shape (element count must match).
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var s = newShape
        if let i = s.firstIndex(of: -1) {
            let known = s.enumerated().filter { $0.offset != i }.map(\.element).reduce(1, *)
            s[i] = known == 0 ? 0 : count / known
        }
        precondition(s.reduce(1, *) == count, "Tensor.reshaped: \(shape) -> \(newShape)")
        return Tensor(shape: s, storage: storage, offset: offset)
    }

    /// A view of items [start, start+length) along dimension 0 (no copy).
    public func slice0(_ start: Int, _ length: Int) -> Tensor {
        precondition(start >= 0 && length >= 0 && start + length <= shape[0], "Tensor.slice0 out of range")
        let inner = shape.dropFirst().reduce(1, *)
        return Tensor(shape: [length] + shape.dropFirst(), storage: storage, offset: offset + start * inner)
    }

    public func copy() -> Tensor {
        let t = Tensor(shape: shape, zeroed: false)
        t.data.update(from: data, count: count)
        return t
    }

    public func toArray() -> [Float] { Array(buffer) }

    /// Concatenates along dimension 0.
    public static func cat0(_ parts: [Tensor]) -> Tensor {
        precondition(!parts.isEmpty, "Tensor.cat0: nothing to concatenate")
        let inner = Array(parts[0].shape.dropFirst())
        precondition(parts.allSatisfy { Array($0.shape.dropFirst()) == inner }, "Tensor.cat0: shapes differ")
        let t = Tensor(shape: [parts.map { $0.shape[0] }.reduce(0, +)] + inner, zeroed: false)
        var o = 0
        for p in parts { (t.data + o).update(from: p.data, count: p.count); o += p.count }
        return t
    }

    public var description: String { "Tensor\(shape)" }
}
