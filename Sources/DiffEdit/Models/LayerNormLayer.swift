/// torch.nn.LayerNorm parameters over the last dimension.
struct LayerNormLayer {
    let gamma: Tensor
    let beta: Tensor
    let eps: Float

    init(_ w: WeightScope, dim: Int, eps: Float) throws {
        gamma = try w("weight", [dim])
        beta = try w("bias", [dim])
        self.eps = eps
    }

    func callAsFunction(_ be: Backend, _ x: Tensor, inPlace: Bool = false) throws -> Tensor {
        try be.layerNorm(x, gamma: gamma, beta: beta, eps: eps, inPlace: inPlace)
    }
}
