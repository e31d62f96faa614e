/// torch.nn.GroupNorm parameters (SiLU can be fused).
struct GroupNormLayer {
    let gamma: Tensor
    let beta: Tensor
    let groups: Int
    let eps: Float

    init(_ w: WeightScope, channels: Int, groups: Int, eps: Float) throws {
        guard groups > 0, channels % groups == 0 else {
            throw DiffEditError.model("\(w.source.origin): \(w.name("weight")): \(channels) channels do not split into \(groups) groups")
        }
        gamma = try w("weight", [channels])
        beta = try w("bias", [channels])
        self.groups = groups
        self.eps = eps
    }

    func callAsFunction(_ be: Backend, _ x: Tensor, silu: Bool = false, inPlace: Bool = false) throws -> Tensor {
        try be.groupNorm(x, groups: groups, gamma: gamma, beta: beta, eps: eps, silu: silu, inPlace: inPlace)
    }
}
