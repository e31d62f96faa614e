/// UNetMidBlock2DCrossAttn (resnet, then per transformer: Transformer2DModel + resnet) or
/// UNetMidBlock2D as the UNet uses it (a single resnet, no attention).
final class UNetMidBlock {
    let resnets: [ResnetBlock2D]
    let attentions: [Transformer2DModel]

    init(_ w: WeightScope, type: String, config c: UNetConfig, channels: Int, tembChannels: Int,
         heads: Int, transformerLayers: Int) throws {
        let cross: Bool
        switch type {
        case "UNetMidBlock2DCrossAttn": cross = true
        case "UNetMidBlock2D": cross = false
        default: throw DiffEditError.unsupported("\(w.source.origin): mid_block_type \"\(type)\" is not supported (UNetMidBlock2DCrossAttn, UNetMidBlock2D)")
        }
        let count = cross ? 2 : 1
        resnets = try (0..<count).map { j in
            try ResnetBlock2D(w.sub("resnets", j), inChannels: channels, outChannels: channels, tembChannels: tembChannels,
                              groups: c.norm_num_groups, eps: c.norm_eps, outputScaleFactor: c.mid_block_scale_factor)
        }
        attentions = cross ? [try Transformer2DModel(w.sub("attentions", 0), name: "mid_block.attentions.0", place: "mid",
                                                     channels: channels, heads: heads, layers: transformerLayers,
                                                     contextDim: c.cross_attention_dim, groups: c.norm_num_groups,
                                                     linearProjection: c.use_linear_projection)] : []
    }

    /// x [B, C, H, W] -> [B, C, H, W]
    func callAsFunction(_ be: Backend, _ x: Tensor, tembAct: Tensor, context: Tensor,
                        controller: AttentionController?) throws -> Tensor {
        var h = try resnets[0](be, x, tembAct: tembAct)                                    // [B, C, H, W]
        for (j, attn) in attentions.enumerated() {
            h = try attn(be, h, context: context, controller: controller)                  // [B, C, H, W]
            h = try resnets[j + 1](be, h, tembAct: tembAct)                                // [B, C, H, W]
        }
        return h
    }
}
