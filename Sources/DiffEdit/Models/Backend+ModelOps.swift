import FoundationEssentials

/// Composite operations the model code needs, built from the backend's op descriptors
/// (strided GEMMs instead of explicit transposes) or small host loops.
extension Backend {
    /// Channel concatenation [N, Ca, H, W] ++ [N, Cb, H, W] -> [N, Ca+Cb, H, W] (the UNet skip join).
    func catChannels(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        precondition(a.rank == 4 && b.rank == 4 && a.shape[0] == b.shape[0] && a.shape[2...] == b.shape[2...],
                     "catChannels: \(a.shape) ++ \(b.shape)")
        let n = a.shape[0], hw = a.shape[2] * a.shape[3]
        let ca = a.shape[1] * hw, cb = b.shape[1] * hw
        let y = try output([n, a.shape[1] + b.shape[1], a.shape[2], a.shape[3]])
        try copyStrided(shape: [n, ca], from: a, fromStrides: [ca, 1], to: y, toStrides: [ca + cb, 1])
        try copyStrided(shape: [n, cb], from: b, fromStrides: [cb, 1], to: y, toOffset: ca, toStrides: [ca + cb, 1])
        return y
    }

    /// Per-pixel linear map from NCHW to tokens: x [N, C, H, W], w [out, C] -> [N, H*W, out]
    /// (a 1x1 conv followed by the token transpose, done as one transposed-A GEMM).
    func linearNCHWToTokens(_ x: Tensor, _ w: Tensor, _ b: Tensor?) throws -> Tensor {
        let n = x.shape[0], c = x.shape[1], hw = x.shape[2] * x.shape[3], out = w.shape[0]
        precondition(w.shape[1] == c, "linearNCHWToTokens: x \(x.shape) w \(w.shape)")
        let y = try output([n, hw, out])
        let wo = w.weightOperand
        try gemm(batch: n, m: hw, n: out, k: c, a: UnsafeRawPointer(x.opData), lda: hw, strideA: c * hw, transA: true,
                 b: wo.pointer, bType: wo.dtype, ldb: c, strideB: 0, transB: true, c: y.opData, ldc: out, strideC: hw * out,
                 bias: b?.opData)
        return y
    }

    /// Per-token linear map back to NCHW plus a residual: h [N, H*W, in], w [C, in], b [C],
    /// residual [N, C, H, W] -> residual + (h @ w^T + b) laid out as [N, C, H, W].
    func linearTokensToNCHW(_ h: Tensor, _ w: Tensor, _ b: Tensor?, residual: Tensor) throws -> Tensor {
        let n = residual.shape[0], c = residual.shape[1], hw = residual.shape[2] * residual.shape[3]
        let inner = w.shape[1]
        precondition(w.shape[0] == c && h.count == n * hw * inner, "linearTokensToNCHW: h \(h.shape) w \(w.shape) r \(residual.shape)")
        let y: Tensor
        if let b = b { y = try addPerChannel(residual, b) } else { y = try copy(residual) }   // [N, C, H, W]
        let wo = w.weightOperand
        try gemm(batch: n, m: c, n: hw, k: inner, a: wo.pointer, aType: wo.dtype, lda: inner, strideA: 0,
                 b: UnsafeRawPointer(h.opData), ldb: inner, strideB: hw * inner, transB: true,
                 c: y.opData, ldc: hw, strideC: c * hw, beta: 1)
        return y
    }

    /// Nearest-neighbour resize to an exact size, as torch's F.interpolate(mode="nearest")
    /// (source index floor(dst * in / out)). Uses the backend op for exact integer factors.
    func resizeNearest(_ x: Tensor, height oh: Int, width ow: Int) throws -> Tensor {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        if oh % h == 0 && ow % w == 0 && oh / h == ow / w && oh / h >= 1 {
            let f = oh / h
            return f == 1 ? x : try upsampleNearest(x, factor: f)
        }
        let y = try Tensor.allocate([n, c, oh, ow], what: "a resized tensor")
        let sh = Float(h) / Float(oh), sw = Float(w) / Float(ow)
        let rowSrc = (0..<oh).map { min(Int((Float($0) * sh).rounded(.down)), h - 1) }
        let colSrc = (0..<ow).map { min(Int((Float($0) * sw).rounded(.down)), w - 1) }
        let src = x.data, dst = y.data
        for p in 0..<(n * c) {
            for i in 0..<oh {
                let s = src + p * h * w + rowSrc[i] * w
                let d = dst + p * oh * ow + i * ow
                for j in 0..<ow { d[j] = s[colSrc[j]] }
            }
        }
        return y
    }
}
