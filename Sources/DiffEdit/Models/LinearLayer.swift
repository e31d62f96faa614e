/// torch.nn.Linear parameters (also 1x1-conv weights used as a linear map).
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

    /// From tensors already loaded (tests, derived layers).
    init(weight: Tensor, bias: Tensor?) {
        self.weight = weight; self.bias = bias
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
        let wo = weight.weightOperand
        try be.gemm(m: rows, n: outFeatures, k: inFeatures, a: UnsafeRawPointer(x.opData), lda: inFeatures, b: wo.pointer,
                    bType: wo.dtype, ldb: inFeatures, transB: true, c: y.opData, ldc: outFeatures, beta: 1, bias: bias?.opData)
    }
}
