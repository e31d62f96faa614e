/// torch.nn.Conv2d parameters, run through the backend conv (bias and residual fused).
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

extension Conv2dLayer {
    /// From tensors already loaded (e.g. a slice of another layer's weight).
    init(weight: Tensor, bias: Tensor?, stride: Int, padding: (Int, Int, Int, Int)) {
        self.weight = weight; self.bias = bias; self.stride = stride; self.padding = padding
    }
}
