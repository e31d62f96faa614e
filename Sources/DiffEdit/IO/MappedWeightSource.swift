/// Exposes tensors of one or more safetensors files under clean names, each with an optional
/// transform (1x1 conv -> linear, a row slice of a fused weight). This is the single place where
/// checkpoint names are translated; model code only sees the clean names.
public final class MappedWeightSource: WeightSource, @unchecked Sendable {
    public enum Transform: Sendable, Equatable {
        case identity
        /// Drop trailing size-1 dimensions: [C, C, 1, 1] -> [C, C] (VAE attention 1x1 convs).
        case squeezeTrailingOnes
        /// Rows [start, start + count) of dimension 0 (q/k/v of a fused in_proj weight or bias).
        case rows(start: Int, count: Int)
        /// A 2-d tensor transposed: [a, b] -> [b, a] (OpenCLIP's text_projection [D, P] as transformers' [P, D]).
        case transpose
    }

    public struct Ref: Sendable {
        public var file: SafetensorsFile
        public var name: String
        public var transform: Transform
        public init(file: SafetensorsFile, name: String, transform: Transform = .identity) {
            self.file = file; self.name = name; self.transform = transform
        }
    }

    public let origin: String
    public private(set) var refs: [String: Ref]
    private let sortedNames: [String]

    public init(origin: String, refs: [String: Ref]) {
        self.origin = origin
        self.refs = refs
        self.sortedNames = refs.keys.sorted()
    }

    public var names: [String] { sortedNames }
    public func contains(_ name: String) -> Bool { refs[name] != nil }

    /// The stored dtype behind a clean name.
    public func dtype(of name: String) -> String? { refs[name].flatMap { $0.file.dtype(of: $0.name) } }

    /// The stored bytes behind a clean name, for code that consumes f16/bf16 directly instead of
    /// converting to f32. nil for missing names and for row-sliced (fused) tensors; `shape` is the clean
    /// shape. The bytes stay valid while `owner` (the file) is alive.
    public func stored(_ name: String) throws -> (dtype: String, shape: [Int], bytes: UnsafeRawBufferPointer, owner: AnyObject)? {
        guard let r = refs[name], let s = shape(of: name), let dt = r.file.dtype(of: r.name) else { return nil }
        if r.transform != .identity && r.transform != .squeezeTrailingOnes { return nil }
        return (dt, s, try r.file.rawBytes(r.name), r.file)
    }

    public func shape(of name: String) -> [Int]? {
        guard let r = refs[name], let s = r.file.shape(of: r.name) else { return nil }
        return MappedWeightSource.apply(r.transform, to: s)
    }

    static func apply(_ t: Transform, to s: [Int]) -> [Int]? {
        switch t {
        case .identity: return s
        case .squeezeTrailingOnes:
            var r = s
            while r.count > 2, r.last == 1 { r.removeLast() }
            return r
        case .rows(let start, let count):
            guard let first = s.first, start >= 0, start + count <= first else { return nil }
            return [count] + s.dropFirst()
        case .transpose:
            return s.count == 2 ? [s[1], s[0]] : nil
        }
    }

    public func tensor(_ name: String, expectedShape: [Int]?) throws -> Tensor {
        try resolve(name, expectedShape: expectedShape, stored: false)
    }

    /// As `tensor`, but f16 / bf16 data stays in its stored precision, borrowed from the mapping.
    public func storedTensor(_ name: String, expectedShape: [Int]?) throws -> Tensor {
        try resolve(name, expectedShape: expectedShape, stored: true)
    }

    private func resolve(_ name: String, expectedShape: [Int]?, stored keep: Bool) throws -> Tensor {
        guard let r = refs[name] else { throw DiffEditError.model("\(origin): missing tensor \(name)") }
        guard let stored = r.file.shape(of: r.name) else {
            throw DiffEditError.model("\(r.file.path): missing tensor \(r.name) (for \(name))")
        }
        guard let s = MappedWeightSource.apply(r.transform, to: stored) else {
            throw DiffEditError.model("\(r.file.path): tensor \(r.name) has shape \(stored), cannot take \(r.transform) for \(name)")
        }
        if let e = expectedShape, e != s {
            let via = r.name == name ? "" : " (stored as \(r.name), shape \(stored))"
            throw DiffEditError.model("\(r.file.path): tensor \(name)\(via) has shape \(s), expected \(e)")
        }
        switch r.transform {
        case .identity:
            return try keep ? r.file.storedTensor(r.name, expectedShape: nil) : r.file.tensor(r.name, expectedShape: nil)
        case .squeezeTrailingOnes:
            return try (keep ? r.file.storedTensor(r.name, expectedShape: nil) : r.file.tensor(r.name, expectedShape: nil)).reshaped(s)
        case .rows(let start, _):
            let inner = stored.dropFirst().reduce(1, *)
            if keep { return try r.file.storedTensor(r.name, elements: start * inner, count: s.reduce(1, *), shape: s) }
            return try r.file.tensor(r.name, elements: start * inner, count: s.reduce(1, *), shape: s)
        case .transpose:
            let t = try r.file.tensor(r.name, expectedShape: nil)                       // [a, b]
            let (a, b) = (stored[0], stored[1])
            let y = try Tensor.allocate(s, what: "\(r.file.path): tensor \(r.name) transposed")   // [b, a]
            for i in 0..<a { for j in 0..<b { y.data[j * a + i] = t.data[i * b + j] } }
            return y
        }
    }
}
