/// Every parameter a network loaded, by its clean name (as the network's WeightSource names it), and the
/// re-derivations registered for tensors made from one at load (none today; `onReplace`): what LoRA fusing changes in place.
/// Filled by `WeightScope` while the network is built; read-only afterwards except through `replace`.
public final class WeightRegistry: @unchecked Sendable {
    private(set) var tensors: [String: Tensor] = [:]
    private var dependents: [String: [() throws -> Void]] = [:]

    init() {}

    /// Clean names of all parameters.
    public var names: [String] { tensors.keys.sorted() }

    /// The parameter as the network uses it (a backend constant on a backend that wants constants).
    public func tensor(_ name: String) -> Tensor? { tensors[name] }

    func record(_ name: String, _ t: Tensor) { tensors[name] = t }

    /// `refresh` re-derives a tensor made from `name` at load; it runs after every `replace` of `name`.
    func onReplace(_ name: String, _ refresh: @escaping () throws -> Void) { dependents[name, default: []].append(refresh) }

    /// Points parameter `name` at `data` (same element count; see TensorStorage.rebind), then re-derives
    /// what was made from it. The caller guarantees that the network is not running.
    public func replace(_ name: String, with data: TensorStorage) throws {
        guard let t = tensors[name] else { throw DiffEditError.model("weights: no parameter \(name)") }
        guard t.offset == 0, t.storage.count == t.count else {
            throw DiffEditError.unsupported("weights: parameter \(name) is a view into a larger tensor and cannot be replaced")
        }
        try t.storage.rebind(to: data)
        for refresh in dependents[name] ?? [] { try refresh() }
    }
}
