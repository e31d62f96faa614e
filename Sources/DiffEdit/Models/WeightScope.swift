/// Loads parameters under a name prefix from a `WeightSource`, always with the expected shape, so
/// that a missing tensor or a shape that contradicts the config is reported naming the tensor.
/// With a backend, every parameter is made a backend constant as it is loaded (`Backend.constant`:
/// uploaded once on CUDA / staged CPU, the loaded tensor itself on the plain CPU backend).
/// With a registry, every loaded parameter is recorded under its full name (LoRA fusing finds it there).
struct WeightScope {
    let source: WeightSource
    let prefix: String
    let backend: Backend?
    let registry: WeightRegistry?

    init(_ source: WeightSource, prefix: String = "", backend: Backend? = nil, registry: WeightRegistry? = nil) {
        self.source = source
        self.prefix = prefix
        self.backend = backend
        self.registry = registry
    }

    /// The scope of a sub-module: "down_blocks" -> "down_blocks.0" ...
    func sub(_ name: String) -> WeightScope {
        WeightScope(source, prefix: prefix + name + ".", backend: backend, registry: registry)
    }
    func sub(_ name: String, _ index: Int) -> WeightScope { sub("\(name).\(index)") }

    /// The full name of a parameter (for messages and attention-site names).
    func name(_ leaf: String) -> String { prefix + leaf }

    /// Loads `prefix + name`, checking its shape, as a backend constant of `kind` (default: rank >= 2 is
    /// a weight, else an f32 parameter); `upload: false` for tensors only host code reads.
    func callAsFunction(_ name: String, _ shape: [Int], kind: Backend.ConstantKind? = nil, upload: Bool = true) throws -> Tensor {
        let t = try load(name, shape)
        guard upload, let be = backend else { registry?.record(prefix + name, t); return t }
        let c = try be.constant(t, kind: kind ?? (shape.count >= 2 ? .weight : .param))
        registry?.record(prefix + name, c)
        return c
    }

    /// Re-derives a tensor made from parameter `name` (of this scope) whenever that parameter is replaced.
    func onReplace(of name: String, _ refresh: @escaping () throws -> Void) {
        registry?.onReplace(prefix + name, refresh)
    }

    /// A tensor derived at load from loaded ones (e.g. Upsample2D's phase kernels) as a backend constant.
    func constant(_ t: Tensor, kind: Backend.ConstantKind) throws -> Tensor {
        guard let be = backend else { return t }
        return try be.constant(t, kind: kind)
    }

    private func load(_ name: String, _ shape: [Int]) throws -> Tensor {
        let full = prefix + name
        let t: Tensor
        do {
            t = try source.tensor(full, expectedShape: shape)
        } catch let e as DiffEditError {
            throw e
        } catch {
            throw DiffEditError.model("\(source.origin): tensor \(full): \(error)")
        }
        guard t.shape == shape else {
            throw DiffEditError.model("\(source.origin): tensor \(full) has shape \(t.shape), expected \(shape)")
        }
        return t
    }
}
