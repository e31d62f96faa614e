/// Where model code gets its parameters. Names are always the clean diffusers/transformers names
/// relative to the component (e.g. "down_blocks.0.resnets.0.conv1.weight" for the UNet,
/// "text_model.encoder.layers.0.mlp.fc1.weight" for the text encoder); all checkpoint-name
/// translation happens in IO before a WeightSource is handed to a model.
public protocol WeightSource: AnyObject {
    /// Human-readable origin for error messages (a file path, "folder/unet", ...).
    var origin: String { get }
    /// All tensor names available.
    var names: [String] { get }
    func contains(_ name: String) -> Bool
    /// The shape as stored, without loading data; nil when missing.
    func shape(of name: String) -> [Int]?
    /// Loads (converts to f32) the tensor. Throws `.model` naming origin and tensor when missing,
    /// when `expectedShape` is given and differs, or when the data cannot be read.
    func tensor(_ name: String, expectedShape: [Int]?) throws -> Tensor
    /// The tensor in its stored precision where that is f16 or bf16 (borrowed in place from a mapped file
    /// where possible; see WeightsDType), else as `tensor`. Default: `tensor`.
    func storedTensor(_ name: String, expectedShape: [Int]?) throws -> Tensor
}

extension WeightSource {
    public func storedTensor(_ name: String, expectedShape: [Int]?) throws -> Tensor {
        try tensor(name, expectedShape: expectedShape)
    }
    public func tensor(_ name: String) throws -> Tensor { try tensor(name, expectedShape: nil) }
    public func tensor(_ name: String, _ shape: [Int]) throws -> Tensor { try tensor(name, expectedShape: shape) }

    /// A view of this source under a name prefix ("unet." ...).
    public func scoped(_ prefix: String) -> WeightSource { PrefixedWeightSource(base: self, prefix: prefix) }
}

/// Exposes `base`'s tensors under `prefix` stripped.
public final class PrefixedWeightSource: WeightSource {
    public let base: WeightSource
    public let prefix: String
    public init(base: WeightSource, prefix: String) { self.base = base; self.prefix = prefix }
    public var origin: String { base.origin }
    public var names: [String] { base.names.filter { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) } }
    public func contains(_ name: String) -> Bool { base.contains(prefix + name) }
    public func shape(of name: String) -> [Int]? { base.shape(of: prefix + name) }
    public func tensor(_ name: String, expectedShape: [Int]?) throws -> Tensor {
        try base.tensor(prefix + name, expectedShape: expectedShape)
    }
    public func storedTensor(_ name: String, expectedShape: [Int]?) throws -> Tensor {
        try base.storedTensor(prefix + name, expectedShape: expectedShape)
    }
}

/// In-memory weights (tests, benchmarks with random weights, converted tensors).
public final class DictionaryWeightSource: WeightSource {
    public let origin: String
    public var tensors: [String: Tensor]
    public init(origin: String = "memory", tensors: [String: Tensor] = [:]) { self.origin = origin; self.tensors = tensors }
    public var names: [String] { Array(tensors.keys).sorted() }
    public func contains(_ name: String) -> Bool { tensors[name] != nil }
    public func shape(of name: String) -> [Int]? { tensors[name]?.shape }
    public func tensor(_ name: String, expectedShape: [Int]?) throws -> Tensor {
        guard let t = tensors[name] else { throw DiffEditError.model("\(origin): missing tensor \(name)") }
        if let s = expectedShape, s != t.shape {
            throw DiffEditError.model("\(origin): tensor \(name) has shape \(t.shape), expected \(s)")
        }
        return t
    }
}
