/// Loads parameters under a name prefix from a `WeightSource`, always with the expected shape, so
/// that a missing tensor or a shape that contradicts the config is reported naming the tensor.
/// With a backend, every parameter is made a backend constant as it is loaded (`Backend.constant`:
/// uploaded once on CUDA / staged CPU, the loaded tensor itself on the plain CPU backend).
/// With a registry, every loaded parameter is recorded under its full name (LoRA fusing finds it there).
/// Weights (kind .weight: linear and conv matrices) are kept as `weightsDType` says on a backend that
/// computes with reduced weights in place (`Backend.keepsReducedWeights`), f32 otherwise.
struct WeightScope {
    let source: WeightSource
    let prefix: String
    let backend: Backend?
    let registry: WeightRegistry?
    let weightsDType: WeightsDType
    /// What the loaded parameters hold (shared by the sub-scopes of one network).
    let tally: WeightTally

    init(_ source: WeightSource, prefix: String = "", backend: Backend? = nil, registry: WeightRegistry? = nil,
         weightsDType: WeightsDType = .auto, tally: WeightTally = WeightTally()) {
        self.source = source
        self.prefix = prefix
        self.backend = backend
        self.registry = registry
        self.weightsDType = weightsDType
        self.tally = tally
    }

    /// The scope of a sub-module: "down_blocks" -> "down_blocks.0" ...
    func sub(_ name: String) -> WeightScope {
        WeightScope(source, prefix: prefix + name + ".", backend: backend, registry: registry, weightsDType: weightsDType,
                    tally: tally)
    }
    func sub(_ name: String, _ index: Int) -> WeightScope { sub("\(name).\(index)") }

    /// The full name of a parameter (for messages and attention-site names).
    func name(_ leaf: String) -> String { prefix + leaf }

    /// Whether weights may be kept reduced here.
    private var reduces: Bool { backend?.keepsReducedWeights ?? false }

    /// Loads `prefix + name`, checking its shape, as a backend constant of `kind` (default: rank >= 2 is
    /// a weight, else an f32 parameter); `upload: false` for tensors only host code reads (always f32).
    func callAsFunction(_ name: String, _ shape: [Int], kind: Backend.ConstantKind? = nil, upload: Bool = true) throws -> Tensor {
        let k = kind ?? (shape.count >= 2 ? .weight : .param)
        let keep = upload && k == .weight && reduces && weightsDType != .f32
        let loaded = try load(name, shape, stored: keep)
        let t = keep ? try stored(loaded, name: prefix + name) : loaded
        tally.record(t)
        guard upload, let be = backend else { registry?.record(prefix + name, t); return t }
        let c = try be.constant(t, kind: k)
        registry?.record(prefix + name, c)
        return c
    }

    /// Loads `prefix + name` for host code only (never an op operand: e.g. an embedding table gathered row by
    /// row), checking its shape. Under any WeightsDType but f32 it stays as the file stores it (an fp16 / bf16
    /// tensor borrowed in place from the mapping, no copy: read it with `Tensor.row(_:into:)`); f32 widens it.
    func hostTable(_ name: String, _ shape: [Int]) throws -> Tensor {
        let t = try load(name, shape, stored: weightsDType != .f32)
        tally.record(t)
        registry?.record(prefix + name, t)
        return t
    }

    /// Re-derives a tensor made from parameter `name` (of this scope) whenever that parameter is replaced.
    func onReplace(of name: String, _ refresh: @escaping () throws -> Void) {
        registry?.onReplace(prefix + name, refresh)
    }

    /// `t` (as loaded: f32, or f16 / bf16 in place) in the element type `weightsDType` asks for.
    private func stored(_ t: Tensor, name: String) throws -> Tensor {
        let want: ElementType
        switch weightsDType {
        case .auto: return t
        case .f32: return t   // never reached: f32 loads through `tensor`
        case .f16: want = .f16
        case .bf16: want = .bf16
        case .q8_0: want = WeightScope.fit(.q8_0, t)
        }
        if want == t.elementType { return t }
        let c = try t.converted(to: want, what: "weight \(name)")
        t.storage.releaseMappedPages()   // the converted copy replaces the file's pages
        return c
    }

    /// q8_0 only for rows whose length is a multiple of 32; other weights keep 16 bits (f16, or bf16 when
    /// that is how they are stored).
    static func fit(_ type: ElementType, _ t: Tensor) -> ElementType {
        guard type == .q8_0 else { return type }
        let row = t.shape.count >= 2 ? t.count / max(t.shape[0], 1) : t.count
        if row % 32 == 0 && t.count % 32 == 0 { return .q8_0 }
        return t.elementType == .bf16 ? .bf16 : .f16
    }

    private func load(_ name: String, _ shape: [Int], stored keep: Bool) throws -> Tensor {
        let full = prefix + name
        let t: Tensor
        do {
            t = keep ? try source.storedTensor(full, expectedShape: shape) : try source.tensor(full, expectedShape: shape)
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
