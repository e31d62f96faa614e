/// Parameter containers of the basic layers (torch.nn.Conv2d / Linear / GroupNorm / LayerNorm).
/// Each runs through the backend ops; shapes were checked when loading.
struct Conv2dLayer {
    let weight: Tensor   // [Cout, Cin, kh, kw]
    let bias: Tensor?    // [Cout]
    let stride: Int
    let padding: (Int, Int, Int, Int)   // top, left, bottom, right

    init(_ w: WeightScope, inChannels: Int, outChannels: Int, kernel: Int, stride: Int = 1,
         padding: (Int, Int, Int, Int)? = nil, bias: Bool = true) throws {
        weight = try w("weight", [outChannels, inChannels, kernel, kernel])
        self.bias = bias ? try w("bias", [outChannels]) : nil
        self.stride = stride
        let p = kernel / 2
        self.padding = padding ?? (p, p, p, p)
    }

    var outChannels: Int { weight.shape[0] }

    /// x [N, Cin, H, W] -> [N, Cout, OH, OW] (+ residual, fused).
    func callAsFunction(_ be: Backend, _ x: Tensor, residual: Tensor? = nil) throws -> Tensor {
        try be.conv2d(x, weight, bias, stride: stride, padding: padding, residual: residual)
    }
}

struct LinearLayer {
    let weight: Tensor   // [out, in]
    let bias: Tensor?    // [out]

    init(_ w: WeightScope, inFeatures: Int, outFeatures: Int, bias: Bool = true) throws {
        weight = try w("weight", [outFeatures, inFeatures])
        self.bias = bias ? try w("bias", [outFeatures]) : nil
    }

    /// A 1x1 convolution's weight [out, in, 1, 1] used as a linear layer.
    init(conv1x1 w: WeightScope, inFeatures: Int, outFeatures: Int) throws {
        weight = try w("weight", [outFeatures, inFeatures, 1, 1]).reshaped([outFeatures, inFeatures])
        bias = try w("bias", [outFeatures])
    }

    var inFeatures: Int { weight.shape[1] }
    var outFeatures: Int { weight.shape[0] }

    /// x [..., in] -> [..., out]
    func callAsFunction(_ be: Backend, _ x: Tensor) throws -> Tensor {
        try be.linear(x, weight, bias)
    }

    /// y [..., out] += x [..., in] @ W^T + b   (residual add fused into the GEMM, beta = 1)
    func accumulate(_ be: Backend, _ x: Tensor, into y: Tensor) throws {
        let rows = x.count / inFeatures
        precondition(y.count == rows * outFeatures, "LinearLayer.accumulate: x \(x.shape) y \(y.shape)")
        try be.gemm(m: rows, n: outFeatures, k: inFeatures, a: x.data, lda: inFeatures, b: weight.data,
                    ldb: inFeatures, transB: true, c: y.data, ldc: outFeatures, beta: 1, bias: bias?.data)
    }
}

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

extension Conv2dLayer {
    /// From tensors already loaded (e.g. a slice of another layer's weight).
    init(weight: Tensor, bias: Tensor?, stride: Int, padding: (Int, Int, Int, Int)) {
        self.weight = weight; self.bias = bias; self.stride = stride; self.padding = padding
    }
}
