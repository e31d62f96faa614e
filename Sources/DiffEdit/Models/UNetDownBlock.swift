/// CrossAttnDownBlock2D / DownBlock2D: resnets (each followed by a Transformer2DModel in the
/// cross-attention variant), then an optional stride-2 downsampler. Every stage's output is a skip.
final class UNetDownBlock {
    let resnets: [ResnetBlock2D]
    let attentions: [Transformer2DModel]
    let downsampler: Downsample2D?

    init(_ w: WeightScope, index: Int, type: String, config c: UNetConfig, inChannels: Int, outChannels: Int,
         tembChannels: Int, heads: Int, transformerLayers: Int, addDownsample: Bool) throws {
        let cross: Bool
        switch type {
        case "CrossAttnDownBlock2D": cross = true
        case "DownBlock2D": cross = false
        default: throw DiffEditError.unsupported("\(w.source.origin): down_block_types[\(index)] \"\(type)\" is not supported (CrossAttnDownBlock2D, DownBlock2D)")
        }
        resnets = try (0..<c.resnets(block: index)).map { j in
            try ResnetBlock2D(w.sub("resnets", j), inChannels: j == 0 ? inChannels : outChannels, outChannels: outChannels,
                              tembChannels: tembChannels, groups: c.norm_num_groups, eps: c.norm_eps)
        }
        attentions = cross ? try (0..<c.resnets(block: index)).map { j in
            try Transformer2DModel(w.sub("attentions", j), name: "down_blocks.\(index).attentions.\(j)", place: "down",
                                   channels: outChannels, heads: heads, layers: transformerLayers,
                                   contextDim: c.cross_attention_dim, groups: c.norm_num_groups,
                                   linearProjection: c.use_linear_projection)
        } : []
        downsampler = addDownsample
            ? try Downsample2D(w.sub("downsamplers", 0), channels: outChannels, padding: c.downsample_padding) : nil
    }

    /// x [B, Cin, H, W] -> output [B, Cout, H', W'], with every stage's output appended to `skips`.
    func callAsFunction(_ be: Backend, _ x: Tensor, tembAct: Tensor, context: Tensor,
                        controller: AttentionController?, skips: inout [Tensor]) throws -> Tensor {
        var h = x
        for (j, resnet) in resnets.enumerated() {
            h = try resnet(be, h, tembAct: tembAct)                                         // [B, Cout, H, W]
            if !attentions.isEmpty { h = try attentions[j](be, h, context: context, controller: controller) }
            skips.append(h)
        }
        if let d = downsampler {
            h = try d(be, h)                                                                // [B, Cout, H/2, W/2]
            skips.append(h)
        }
        return h
    }
}
