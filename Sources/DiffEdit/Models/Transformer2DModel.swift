/// diffusers Transformer2DModel for continuous inputs: GroupNorm (eps 1e-6), proj_in (1x1 conv or
/// Linear; the same map), transformer blocks on tokens, proj_out, + input.
final class Transformer2DModel {
    let norm: GroupNormLayer
    let projIn: LinearLayer      // [inner, C]
    let blocks: [BasicTransformerBlock]
    let projOut: LinearLayer     // [C, inner]

    init(_ w: WeightScope, name: String, place: String, channels: Int, heads: Int, layers: Int,
         contextDim: Int, groups: Int, linearProjection: Bool) throws {
        guard heads > 0, channels % heads == 0 else {
            throw DiffEditError.model("\(w.source.origin): \(name): \(channels) channels do not split into \(heads) attention heads")
        }
        let headDim = channels / heads, inner = heads * headDim
        norm = try GroupNormLayer(w.sub("norm"), channels: channels, groups: groups, eps: 1e-6)
        if linearProjection {
            projIn = try LinearLayer(w.sub("proj_in"), inFeatures: channels, outFeatures: inner)
            projOut = try LinearLayer(w.sub("proj_out"), inFeatures: inner, outFeatures: channels)
        } else {
            projIn = try LinearLayer(conv1x1: w.sub("proj_in"), inFeatures: channels, outFeatures: inner)
            projOut = try LinearLayer(conv1x1: w.sub("proj_out"), inFeatures: inner, outFeatures: channels)
        }
        blocks = try (0..<layers).map { i in
            try BasicTransformerBlock(w.sub("transformer_blocks", i), name: "\(name).transformer_blocks.\(i)", place: place,
                                      dim: inner, contextDim: contextDim, heads: heads, headDim: headDim)
        }
    }

    /// x [B, C, H, W], context [B, Lc, D] -> [B, C, H, W]
    func callAsFunction(_ be: Backend, _ x: Tensor, context: Tensor, controller: AttentionController?) throws -> Tensor {
        let h = x.shape[2], w = x.shape[3]
        let n = try norm(be, x)                                                  // [B, C, H, W]
        let tokens = try be.linearNCHWToTokens(n, projIn.weight, projIn.bias)    // [B, HW, inner]
        for block in blocks {
            try block.forward(be, tokens, context: context, height: h, width: w, controller: controller)
        }
        return try be.linearTokensToNCHW(tokens, projOut.weight, projOut.bias, residual: x)   // [B, C, H, W]
    }
}
