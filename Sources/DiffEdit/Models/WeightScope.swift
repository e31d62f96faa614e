/// Loads parameters under a name prefix from a `WeightSource`, always with the expected shape, so
/// that a missing tensor or a shape that contradicts the config is reported naming the tensor.
struct WeightScope {
    let source: WeightSource
    let prefix: String

    init(_ source: WeightSource, prefix: String = "") {
        self.source = source
        self.prefix = prefix
    }

    /// The scope of a sub-module: "down_blocks" -> "down_blocks.0" ...
    func sub(_ name: String) -> WeightScope { WeightScope(source, prefix: prefix + name + ".") }
    func sub(_ name: String, _ index: Int) -> WeightScope { sub("\(name).\(index)") }

    /// The full name of a parameter (for messages and attention-site names).
    func name(_ leaf: String) -> String { prefix + leaf }

    /// Loads `prefix + name`, checking its shape.
    func callAsFunction(_ name: String, _ shape: [Int]) throws -> Tensor {
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
