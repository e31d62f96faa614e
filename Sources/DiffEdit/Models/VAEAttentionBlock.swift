/// The VAE mid-block attention (diffusers Attention with group_norm, one head of C channels,
/// biased to_q/to_k/to_v/to_out.0, residual connection, rescale 1).
final class VAEAttentionBlock {
    let groupNorm: GroupNormLayer
    let toQ: LinearLayer
    let toK: LinearLayer
    let toV: LinearLayer
    let toOut: LinearLayer
    let channels: Int

    init(_ w: WeightScope, channels: Int, groups: Int, eps: Float) throws {
        self.channels = channels
        groupNorm = try GroupNormLayer(w.sub("group_norm"), channels: channels, groups: groups, eps: eps)
        toQ = try LinearLayer(w.sub("to_q"), inFeatures: channels, outFeatures: channels)
        toK = try LinearLayer(w.sub("to_k"), inFeatures: channels, outFeatures: channels)
        toV = try LinearLayer(w.sub("to_v"), inFeatures: channels, outFeatures: channels)
        toOut = try LinearLayer(w.sub("to_out.0"), inFeatures: channels, outFeatures: channels)
    }

    /// x [B, C, H, W] -> x + attention(x) [B, C, H, W]
    func callAsFunction(_ be: Backend, _ x: Tensor) throws -> Tensor {
        let n = try groupNorm(be, x)                                          // [B, C, H, W]
        let q = try be.linearNCHWToTokens(n, toQ.weight, toQ.bias)            // [B, HW, C]
        let k = try be.linearNCHWToTokens(n, toK.weight, toK.bias)            // [B, HW, C]
        let v = try be.linearNCHWToTokens(n, toV.weight, toV.bias)            // [B, HW, C]
        let o = try be.attention(q: q, k: k, v: v, heads: 1)                  // [B, HW, C]
        return try be.linearTokensToNCHW(o, toOut.weight, toOut.bias, residual: x)   // [B, C, H, W]
    }
}
