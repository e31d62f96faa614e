import CDiffKernels

/// Tensor-level operations over the backend's op descriptors. Shapes are checked with
/// preconditions: a mismatch here is a bug inside the library (inputs are validated earlier).
extension Backend {
    // MARK: matrix products

    /// y[..., out] = x[..., in] @ w[out, in]^T + b[out]   (torch.nn.Linear)
    public func linear(_ x: Tensor, _ w: Tensor, _ b: Tensor? = nil) throws -> Tensor {
        let inF = w.shape[1], outF = w.shape[0]
        precondition(x.shape.last == inF, "linear: x \(x.shape) vs w \(w.shape)")
        let rows = x.count / inF
        let y = try output(Array(x.shape.dropLast()) + [outF])
        let wo = w.weightOperand   // reduced-precision weights are read in place
        try gemm(m: rows, n: outF, k: inF, a: UnsafeRawPointer(x.opData), lda: inF, b: wo.pointer, bType: wo.dtype, ldb: inF,
                 transB: true, c: y.opData, ldc: outF, bias: b?.opData)
        return y
    }

    /// C = alpha * op(A) @ op(B) + beta * C (+ bias per row), strided batched, row-major.
    public func gemm(batch: Int = 1, m: Int, n: Int, k: Int,
                     a: UnsafePointer<Float>, lda: Int, strideA: Int = 0, transA: Bool = false,
                     b: UnsafePointer<Float>, ldb: Int, strideB: Int = 0, transB: Bool = false,
                     c: UnsafeMutablePointer<Float>, ldc: Int, strideC: Int = 0,
                     alpha: Float = 1, beta: Float = 0, bias: UnsafePointer<Float>? = nil) throws {
        try gemm(batch: batch, m: m, n: n, k: k, a: UnsafeRawPointer(a), lda: lda, strideA: strideA, transA: transA,
                 b: UnsafeRawPointer(b), ldb: ldb, strideB: strideB, transB: transB, c: c, ldc: ldc, strideC: strideC,
                 alpha: alpha, beta: beta, bias: bias)
    }

    /// As above with a weight operand in its storage dtype (aType / bType: de_gemm_op.a_dtype / b_dtype;
    /// a reduced a is untransposed, a reduced b transposed; see Tensor.weightOperand).
    public func gemm(batch: Int = 1, m: Int, n: Int, k: Int,
                     a: UnsafeRawPointer, aType: de_dtype = DE_F32, lda: Int, strideA: Int = 0, transA: Bool = false,
                     b: UnsafeRawPointer, bType: de_dtype = DE_F32, ldb: Int, strideB: Int = 0, transB: Bool = false,
                     c: UnsafeMutablePointer<Float>, ldc: Int, strideC: Int = 0,
                     alpha: Float = 1, beta: Float = 0, bias: UnsafePointer<Float>? = nil) throws {
        var op = de_gemm_op()
        op.dtype = DE_F32
        op.a_dtype = aType; op.b_dtype = bType
        op.batch = Int32(batch); op.m = Int32(m); op.n = Int32(n); op.k = Int32(k)
        op.trans_a = transA; op.trans_b = transB
        op.a = a; op.lda = Int64(lda); op.stride_a = Int64(strideA)
        op.b = b; op.ldb = Int64(ldb); op.stride_b = Int64(strideB)
        op.c = UnsafeMutableRawPointer(c); op.ldc = Int64(ldc); op.stride_c = Int64(strideC)
        op.alpha = alpha; op.beta = beta; op.bias = bias
        try check(de_gemm(raw, &op), "gemm")
    }

    /// Batched matmul: a [B, M, K] @ b [B, K, N] (or transposes) -> [B, M, N].
    public func bmm(_ a: Tensor, _ b: Tensor, transA: Bool = false, transB: Bool = false, alpha: Float = 1) throws -> Tensor {
        precondition(a.rank == 3 && b.rank == 3 && a.shape[0] == b.shape[0], "bmm: \(a.shape) x \(b.shape)")
        let bs = a.shape[0]
        let m = transA ? a.shape[2] : a.shape[1], k = transA ? a.shape[1] : a.shape[2]
        let k2 = transB ? b.shape[2] : b.shape[1], n = transB ? b.shape[1] : b.shape[2]
        precondition(k == k2, "bmm: inner dims \(a.shape) x \(b.shape)")
        let y = try output([bs, m, n])
        try gemm(batch: bs, m: m, n: n, k: k, a: a.opData, lda: a.shape[2], strideA: a.shape[1] * a.shape[2], transA: transA,
                 b: b.opData, ldb: b.shape[2], strideB: b.shape[1] * b.shape[2], transB: transB,
                 c: y.opData, ldc: n, strideC: m * n, alpha: alpha)
        return y
    }

    // MARK: convolution and normalisation

    /// x [N, Cin, H, W], w [Cout, Cin, kh, kw] -> [N, Cout, OH, OW]. padding: (top, left, bottom, right).
    public func conv2d(_ x: Tensor, _ w: Tensor, _ b: Tensor? = nil, stride: Int = 1,
                       padding: (Int, Int, Int, Int), residual: Tensor? = nil) throws -> Tensor {
        precondition(x.rank == 4 && w.rank == 4 && x.shape[1] == w.shape[1], "conv2d: x \(x.shape) w \(w.shape)")
        let (n, cin, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (cout, kh, kw) = (w.shape[0], w.shape[2], w.shape[3])
        let oh = (h + padding.0 + padding.2 - kh) / stride + 1
        let ow = (wd + padding.1 + padding.3 - kw) / stride + 1
        let y = try output([n, cout, oh, ow])
        if let r = residual { precondition(r.shape == y.shape, "conv2d: residual \(r.shape) vs \(y.shape)") }
        var op = de_conv2d_op()
        op.dtype = DE_F32
        op.n = Int32(n); op.c_in = Int32(cin); op.h = Int32(h); op.w = Int32(wd)
        op.c_out = Int32(cout); op.kh = Int32(kh); op.kw = Int32(kw)
        op.stride_h = Int32(stride); op.stride_w = Int32(stride)
        op.pad_t = Int32(padding.0); op.pad_l = Int32(padding.1); op.pad_b = Int32(padding.2); op.pad_r = Int32(padding.3)
        let wo = w.weightOperand   // reduced-precision weights are read in place
        op.x = UnsafeRawPointer(x.opData); op.weight = wo.pointer; op.weight_dtype = wo.dtype
        op.bias = b.map { UnsafePointer($0.opData) }
        op.residual = residual.map { UnsafePointer($0.opData) }
        op.y = UnsafeMutableRawPointer(y.opData)
        try check(de_conv2d(raw, &op), "conv2d")
        return y
    }

    /// Symmetric padding convenience.
    public func conv2d(_ x: Tensor, _ w: Tensor, _ b: Tensor? = nil, stride: Int = 1, padding: Int,
                       residual: Tensor? = nil) throws -> Tensor {
        try conv2d(x, w, b, stride: stride, padding: (padding, padding, padding, padding), residual: residual)
    }

    /// GroupNorm (+ optional fused SiLU) over x [N, C, ...]. Returns a new tensor unless inPlace.
    public func groupNorm(_ x: Tensor, groups: Int, gamma: Tensor?, beta: Tensor?, eps: Float,
                          silu: Bool = false, inPlace: Bool = false) throws -> Tensor {
        let n = x.shape[0], c = x.shape[1], hw = x.count / max(n * c, 1)
        precondition(c % groups == 0, "groupNorm: \(c) channels, \(groups) groups")
        let y = try inPlace ? x : output(x.shape)
        var op = de_group_norm_op()
        op.dtype = DE_F32
        op.n = Int32(n); op.c = Int32(c); op.hw = Int32(hw); op.groups = Int32(groups); op.eps = eps
        op.gamma = gamma.map { UnsafePointer($0.opData) }; op.beta = beta.map { UnsafePointer($0.opData) }
        op.silu = silu
        op.x = UnsafeRawPointer(x.opData); op.y = UnsafeMutableRawPointer(y.opData)
        try check(de_group_norm(raw, &op), "group_norm")
        return y
    }

    /// LayerNorm over the last dimension.
    public func layerNorm(_ x: Tensor, gamma: Tensor?, beta: Tensor?, eps: Float, inPlace: Bool = false) throws -> Tensor {
        let cols = x.shape.last!
        let y = try inPlace ? x : output(x.shape)
        var op = de_layer_norm_op()
        op.dtype = DE_F32
        op.rows = Int64(x.count / max(cols, 1)); op.cols = Int32(cols); op.eps = eps
        op.gamma = gamma.map { UnsafePointer($0.opData) }; op.beta = beta.map { UnsafePointer($0.opData) }
        op.x = UnsafeRawPointer(x.opData); op.y = UnsafeMutableRawPointer(y.opData)
        try check(de_layer_norm(raw, &op), "layer_norm")
        return y
    }

    /// Row softmax of scale * x over the last dimension.
    public func softmax(_ x: Tensor, scale: Float = 1, inPlace: Bool = false) throws -> Tensor {
        let cols = x.shape.last!
        let y = try inPlace ? x : output(x.shape)
        var op = de_softmax_op()
        op.dtype = DE_F32
        op.rows = Int64(x.count / max(cols, 1)); op.cols = Int32(cols); op.scale = scale
        op.x = UnsafeRawPointer(x.opData); op.y = UnsafeMutableRawPointer(y.opData)
        try check(de_softmax(raw, &op), "softmax")
        return y
    }

    // MARK: attention

    /// Fused multi-head attention on projection outputs q [B, Lq, H*D], k/v [B, Lk, H*D] -> [B, Lq, H*D].
    public func attention(q: Tensor, k: Tensor, v: Tensor, heads: Int, scale: Float? = nil) throws -> Tensor {
        let b = q.shape[0], lq = q.shape[1], inner = q.shape[2], lk = k.shape[1]
        precondition(k.shape == [b, lk, inner] && v.shape == k.shape && inner % heads == 0,
                     "attention: q \(q.shape) k \(k.shape) v \(v.shape) heads \(heads)")
        let d = inner / heads
        let o = try output([b, lq, inner])
        var op = de_attention_op()
        op.dtype = DE_F32
        op.batch = Int32(b); op.heads = Int32(heads); op.q_len = Int32(lq); op.kv_len = Int32(lk); op.head_dim = Int32(d)
        op.scale = scale ?? (1 / Float(d).squareRoot())
        op.q = UnsafeRawPointer(q.opData); op.q_sb = Int64(lq * inner); op.q_sh = Int64(d); op.q_st = Int64(inner)
        op.k = UnsafeRawPointer(k.opData); op.k_sb = Int64(lk * inner); op.k_sh = Int64(d); op.k_st = Int64(inner)
        op.v = UnsafeRawPointer(v.opData); op.v_sb = Int64(lk * inner); op.v_sh = Int64(d); op.v_st = Int64(inner)
        op.o = UnsafeMutableRawPointer(o.opData); op.o_sb = Int64(lq * inner); op.o_sh = Int64(d); op.o_st = Int64(inner)
        try check(de_attention(raw, &op), "attention")
        return o
    }

    /// Attention through the raw descriptor (custom strides, e.g. per-item key sources).
    public func attention(_ op: inout de_attention_op) throws {
        try check(de_attention(raw, &op), "attention")
    }

    // MARK: elementwise

    public func unary(_ kind: de_unary_kind, _ x: Tensor, alpha: Float = 1, beta: Float = 0, inPlace: Bool = false) throws -> Tensor {
        let y = try inPlace ? x : output(x.shape)
        var op = de_unary_op()
        op.dtype = DE_F32; op.kind = kind; op.n = Int64(x.count); op.alpha = alpha; op.beta = beta
        op.x = UnsafeRawPointer(x.opData); op.y = UnsafeMutableRawPointer(y.opData)
        try check(de_unary(raw, &op), "unary")
        return y
    }

    public func silu(_ x: Tensor, inPlace: Bool = false) throws -> Tensor { try unary(DE_UNARY_SILU, x, inPlace: inPlace) }
    public func gelu(_ x: Tensor, inPlace: Bool = false) throws -> Tensor { try unary(DE_UNARY_GELU, x, inPlace: inPlace) }
    public func quickGelu(_ x: Tensor, inPlace: Bool = false) throws -> Tensor { try unary(DE_UNARY_QUICK_GELU, x, inPlace: inPlace) }
    /// y = alpha * x + beta
    public func scale(_ x: Tensor, _ alpha: Float, plus beta: Float = 0, inPlace: Bool = false) throws -> Tensor {
        try unary(DE_UNARY_SCALE, x, alpha: alpha, beta: beta, inPlace: inPlace)
    }

    /// x [..., 2C] -> [..., C] = x[..., :C] * gelu(x[..., C:])
    public func geglu(_ x: Tensor) throws -> Tensor {
        let c2 = x.shape.last!
        precondition(c2 % 2 == 0, "geglu: odd last dim \(x.shape)")
        let y = try output(Array(x.shape.dropLast()) + [c2 / 2])
        var op = de_geglu_op()
        op.dtype = DE_F32; op.rows = Int64(x.count / c2); op.cols = Int32(c2 / 2)
        op.x = UnsafeRawPointer(x.opData); op.y = UnsafeMutableRawPointer(y.opData)
        try check(de_geglu(raw, &op), "geglu")
        return y
    }

    /// y = a (op) b with b broadcast as b[(i / bInner) % b.count]. Same shapes: plain elementwise.
    public func binary(_ kind: de_binary_kind, _ a: Tensor, _ b: Tensor, bInner: Int = 1, inPlace: Bool = false) throws -> Tensor {
        precondition(b.count * bInner <= a.count && a.count % (b.count * bInner) == 0,
                     "binary: a \(a.shape) b \(b.shape) inner \(bInner)")
        let y = try inPlace ? a : output(a.shape)
        var op = de_binary_op()
        op.dtype = DE_F32; op.kind = kind; op.n = Int64(a.count); op.b_len = Int64(b.count); op.b_inner = Int64(bInner)
        op.a = UnsafeRawPointer(a.opData); op.b = UnsafeRawPointer(b.opData); op.y = UnsafeMutableRawPointer(y.opData)
        try check(de_binary(raw, &op), "binary")
        return y
    }

    public func add(_ a: Tensor, _ b: Tensor, inPlace: Bool = false) throws -> Tensor {
        precondition(a.count == b.count, "add: \(a.shape) + \(b.shape)")
        return try binary(DE_BINARY_ADD, a, b, inPlace: inPlace)
    }

    public func mul(_ a: Tensor, _ b: Tensor, inPlace: Bool = false) throws -> Tensor {
        precondition(a.count == b.count, "mul: \(a.shape) * \(b.shape)")
        return try binary(DE_BINARY_MUL, a, b, inPlace: inPlace)
    }

    /// x [N, C, H, W] + v [N, C] broadcast over H, W (e.g. the time embedding in a ResNet block).
    public func addPerChannel(_ x: Tensor, _ v: Tensor, inPlace: Bool = false) throws -> Tensor {
        let n = x.shape[0], c = x.shape[1], hw = x.count / max(n * c, 1)
        precondition(v.count == n * c || v.count == c, "addPerChannel: x \(x.shape) v \(v.shape)")
        return try binary(DE_BINARY_ADD, x, v, bInner: hw, inPlace: inPlace)
    }

    /// Nearest upsample x [N, C, H, W] -> [N, C, H*f, W*f].
    public func upsampleNearest(_ x: Tensor, factor: Int = 2) throws -> Tensor {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let y = try output([n, c, h * factor, w * factor])
        var op = de_upsample_op()
        op.dtype = DE_F32; op.planes = Int64(n * c); op.h = Int32(h); op.w = Int32(w); op.factor = Int32(factor)
        op.x = UnsafeRawPointer(x.opData); op.y = UnsafeMutableRawPointer(y.opData)
        try check(de_upsample(raw, &op), "upsample")
        return y
    }

    /// x [B, R, C] -> [B, C, R]. NCHW <-> tokens: [N, C, H*W] <-> [N, H*W, C].
    public func transpose(_ x: Tensor, batch: Int, rows: Int, cols: Int) throws -> Tensor {
        precondition(batch * rows * cols == x.count, "transpose: \(x.shape) as [\(batch), \(rows), \(cols)]")
        let y = try output([batch, cols, rows])
        var op = de_transpose_op()
        op.dtype = DE_F32; op.batch = Int64(batch); op.rows = Int32(rows); op.cols = Int32(cols)
        op.x = UnsafeRawPointer(x.opData); op.y = UnsafeMutableRawPointer(y.opData)
        try check(de_transpose(raw, &op), "transpose")
        return y
    }

    /// NCHW -> [N, H*W, C]
    public func toTokens(_ x: Tensor) throws -> Tensor {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        return try transpose(x, batch: n, rows: c, cols: h * w)
    }

    /// [N, H*W, C] -> NCHW
    public func fromTokens(_ x: Tensor, height: Int, width: Int) throws -> Tensor {
        let n = x.shape[0], c = x.shape[2]
        return try transpose(x, batch: n, rows: height * width, cols: c).reshaped([n, c, height, width])
    }
}

// MARK: copies that stay on the backend

extension Backend {
    /// Strided copy of up to 4 dims (shape/strides padded on the left with 1 / 0), element offsets.
    public func copyStrided(shape: [Int], from x: Tensor, fromOffset xo: Int = 0, fromStrides xs: [Int],
                            to y: Tensor, toOffset yo: Int = 0, toStrides ys: [Int]) throws {
        precondition(shape.count <= 4 && xs.count == shape.count && ys.count == shape.count, "copyStrided: rank")
        func pad(_ a: [Int], _ v: Int) -> [Int64] { (Array(repeating: v, count: 4 - a.count) + a).map(Int64.init) }
        let sh = pad(shape, 1), sx = pad(xs, 0), sy = pad(ys, 0)
        if sh.contains(0) { return }
        // bounds (a bug inside the library, not bad input)
        let lastX = xo + zip(sh, sx).map { Int(($0 - 1) * $1) }.reduce(0, +)
        let lastY = yo + zip(sh, sy).map { Int(($0 - 1) * $1) }.reduce(0, +)
        precondition(xo >= 0 && yo >= 0 && lastX < x.count && lastY < y.count, "copyStrided: out of bounds")
        var op = de_copy_op()
        op.dtype = DE_F32
        op.shape = (sh[0], sh[1], sh[2], sh[3])
        op.x = UnsafeRawPointer(x.opData + xo); op.x_stride = (sx[0], sx[1], sx[2], sx[3])
        op.y = UnsafeMutableRawPointer(y.opData + yo); op.y_stride = (sy[0], sy[1], sy[2], sy[3])
        try check(de_copy(raw, &op), "copy")
    }

    /// A copy of x in the backend's memory (a host copy on a non-resident backend).
    public func copy(_ x: Tensor) throws -> Tensor {
        if !resident { return try x.copy(what: "a copy") }
        let y = try output(x.shape)
        try copyStrided(shape: [x.count], from: x, fromStrides: [1], to: y, toStrides: [1])
        return y
    }
}
