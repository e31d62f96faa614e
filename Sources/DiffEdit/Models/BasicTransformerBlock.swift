/// diffusers BasicTransformerBlock (norm_type "layer_norm", GEGLU feed-forward):
/// h += attn1(LN1(h)); h += attn2(LN2(h), text); h += FF(LN3(h)), all on the residual stream in place.
final class BasicTransformerBlock {
    let norm1: LayerNormLayer
    let attn1: UNetAttention
    let norm2: LayerNormLayer
    let attn2: UNetAttention
    let norm3: LayerNormLayer
    let ffProj: LinearLayer     // ff.net.0.proj  [2 * 4 * dim, dim]
    let ffOut: LinearLayer      // ff.net.2       [dim, 4 * dim]

    init(_ w: WeightScope, name: String, place: String, dim: Int, contextDim: Int, heads: Int, headDim: Int) throws {
        norm1 = try LayerNormLayer(w.sub("norm1"), dim: dim, eps: 1e-5)
        attn1 = try UNetAttention(w.sub("attn1"), name: name + ".attn1", place: place, isCross: false, dim: dim,
                                  contextDim: contextDim, heads: heads, headDim: headDim)
        norm2 = try LayerNormLayer(w.sub("norm2"), dim: dim, eps: 1e-5)
        attn2 = try UNetAttention(w.sub("attn2"), name: name + ".attn2", place: place, isCross: true, dim: dim,
                                  contextDim: contextDim, heads: heads, headDim: headDim)
        norm3 = try LayerNormLayer(w.sub("norm3"), dim: dim, eps: 1e-5)
        let ff = dim * 4
        ffProj = try LinearLayer(w.sub("ff.net.0.proj"), inFeatures: dim, outFeatures: 2 * ff)
        ffOut = try LinearLayer(w.sub("ff.net.2"), inFeatures: ff, outFeatures: dim)
    }

    /// hidden [B, L, dim] updated in place; context [B, Lc, contextDim].
    func forward(_ be: Backend, _ hidden: Tensor, context: Tensor, height: Int, width: Int,
                 controller: AttentionController?) throws {
        var n = try norm1(be, hidden)                                  // [B, L, dim]
        try attn1.forward(be, normed: n, context: nil, residual: hidden, height: height, width: width, controller: controller)
        n = try norm2(be, hidden)                                      // [B, L, dim]
        try attn2.forward(be, normed: n, context: context, residual: hidden, height: height, width: width, controller: controller)
        n = try norm3(be, hidden)                                      // [B, L, dim]
        let p = try ffProj(be, n)                                      // [B, L, 8 dim]
        let g = try be.geglu(p)                                        // [B, L, 4 dim]
        try ffOut.accumulate(be, g, into: hidden)                      // [B, L, dim]
    }
}
