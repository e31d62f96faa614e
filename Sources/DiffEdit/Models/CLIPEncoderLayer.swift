import CDiffKernels

/// transformers CLIPEncoderLayer: h += out_proj(causal MHA(LN1(h))); h += fc2(act(fc1(LN2(h)))).
final class CLIPEncoderLayer {
    let layerNorm1: LayerNormLayer
    let qProj: LinearLayer
    let kProj: LinearLayer
    let vProj: LinearLayer
    let outProj: LinearLayer
    let layerNorm2: LayerNormLayer
    let fc1: LinearLayer
    let fc2: LinearLayer
    let heads: Int
    let activation: de_unary_kind

    init(_ w: WeightScope, config c: CLIPTextConfig, activation: de_unary_kind) throws {
        let d = c.hidden_size
        layerNorm1 = try LayerNormLayer(w.sub("layer_norm1"), dim: d, eps: c.layer_norm_eps)
        qProj = try LinearLayer(w.sub("self_attn.q_proj"), inFeatures: d, outFeatures: d)
        kProj = try LinearLayer(w.sub("self_attn.k_proj"), inFeatures: d, outFeatures: d)
        vProj = try LinearLayer(w.sub("self_attn.v_proj"), inFeatures: d, outFeatures: d)
        outProj = try LinearLayer(w.sub("self_attn.out_proj"), inFeatures: d, outFeatures: d)
        layerNorm2 = try LayerNormLayer(w.sub("layer_norm2"), dim: d, eps: c.layer_norm_eps)
        fc1 = try LinearLayer(w.sub("mlp.fc1"), inFeatures: d, outFeatures: c.intermediate_size)
        fc2 = try LinearLayer(w.sub("mlp.fc2"), inFeatures: c.intermediate_size, outFeatures: d)
        heads = c.num_attention_heads
        self.activation = activation
    }

    /// hidden [B, L, D] updated in place.
    func forward(_ be: Backend, _ hidden: Tensor) throws {
        let b = hidden.shape[0], l = hidden.shape[1], d = hidden.shape[2], hd = d / heads
        let n = try layerNorm1(be, hidden)                          // [B, L, D]
        let q = try qProj(be, n)                                    // [B, L, D]
        let k = try kProj(be, n)                                    // [B, L, D]
        let v = try vProj(be, n)                                    // [B, L, D]
        let scores = Tensor(shape: [b, heads, l, l], zeroed: false) // [B, H, L, L]
        for i in 0..<b {
            try be.gemm(batch: heads, m: l, n: l, k: hd, a: q.opData + i * l * d, lda: d, strideA: hd,
                        b: k.opData + i * l * d, ldb: d, strideB: hd, transB: true,
                        c: scores.opData + i * heads * l * l, ldc: l, strideC: l * l)
        }
        // causal mask: token r attends to tokens 0...r
        let s = scores.data
        for row in 0..<(b * heads * l) {
            let r = row % l
            if r + 1 < l { (s + row * l + r + 1).update(repeating: -1e30, count: l - r - 1) }
        }
        _ = try be.softmax(scores, scale: 1 / Float(hd).squareRoot(), inPlace: true)   // [B, H, L, L]
        let o = Tensor(shape: [b, l, d], zeroed: false)             // [B, L, D]
        for i in 0..<b {
            for hh in 0..<heads {   // per head: the heads' outputs interleave along the row
                try be.gemm(m: l, n: hd, k: l, a: scores.opData + (i * heads + hh) * l * l, lda: l,
                            b: v.opData + i * l * d + hh * hd, ldb: d,
                            c: o.opData + i * l * d + hh * hd, ldc: d)
            }
        }
        try outProj.accumulate(be, o, into: hidden)                 // [B, L, D]
        let n2 = try layerNorm2(be, hidden)                         // [B, L, D]
        let f = try fc1(be, n2)                                     // [B, L, I]
        _ = try be.unary(activation, f, inPlace: true)              // [B, L, I]
        try fc2.accumulate(be, f, into: hidden)                     // [B, L, D]
    }
}
