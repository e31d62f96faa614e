import CDiffKernels

/// Owns a block of f32 memory (64-byte aligned). Shared by tensors that are views of the same data.
public final class TensorStorage: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int
    private let owner: AnyObject?   // keeps a memory map (or other owner) alive for borrowed storage
    private let owned: Bool

    /// Allocates `count` floats, zero-filled when `zeroed`.
    public init(count: Int, zeroed: Bool = true) {
        precondition(count >= 0, "TensorStorage: negative count")
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        if zeroed { raw.initializeMemory(as: UInt8.self, repeating: 0, count: bytes) }
        self.pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        self.count = count
        self.owner = nil
        self.owned = true
    }

    /// Borrows memory kept alive by `owner` (e.g. an f32 tensor inside a memory-mapped file).
    public init(borrowing pointer: UnsafeMutablePointer<Float>, count: Int, owner: AnyObject) {
        self.pointer = pointer
        self.count = count
        self.owner = owner
        self.owned = false
    }

    deinit {
        if owned { UnsafeMutableRawPointer(pointer).deallocate() }
    }
}

/// A dense, row-major f32 tensor in host memory. Image tensors are NCHW; token tensors [B, L, C].
/// Reference semantics for the data (a class over shared storage); `shape` is immutable.
public final class Tensor: @unchecked Sendable, CustomStringConvertible {
    public let shape: [Int]
    public let storage: TensorStorage
    public let offset: Int

    public var count: Int { shape.reduce(1, *) }
    public var rank: Int { shape.count }
    public var data: UnsafeMutablePointer<Float> { storage.pointer + offset }
    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: data, count: count) }

    public init(shape: [Int], zeroed: Bool = true) {
        precondition(shape.allSatisfy { $0 >= 0 }, "Tensor: negative dimension in \(shape)")
        self.shape = shape
        self.storage = TensorStorage(count: shape.reduce(1, *), zeroed: zeroed)
        self.offset = 0
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
