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
        // Feed-forward in row chunks: the [rows, 8 dim] projection of a whole 64x64 batch would be
        // ~84 MB per block (fresh pages every call); chunks stay small and are reused by malloc.
        let dim = n.shape[2], rows = n.count / dim
        let chunk = ffChunkRows ?? max(64, Self.ffChunkFloats / ffProj.outFeatures)
        var r = 0
        while r < rows {
            let m = min(chunk, rows - r)
            let xs = Tensor(shape: [m, dim], storage: n.storage, offset: n.offset + r * dim)             // [m, dim]
            let p = try ffProj(be, xs)                                                                 // [m, 8 dim]
            let g = try be.geglu(p)                                                                    // [m, 4 dim]
            let hs = Tensor(shape: [m, dim], storage: hidden.storage, offset: hidden.offset + r * dim) // [m, dim]
            try ffOut.accumulate(be, g, into: hs)                                                      // [m, dim]
            r += m
        }
    }

    /// Largest feed-forward projection chunk, in floats (16 MB).
    static let ffChunkFloats = 1 << 22
    /// Rows per feed-forward chunk (nil: from ffChunkFloats). Tests set small values.
    var ffChunkRows: Int? = nil
}
