/// CrossAttnUpBlock2D / UpBlock2D: layers_per_block (of the mirrored down block) + 1 resnets, each over [h ++ skip] (skips taken
/// from the end), each followed by a Transformer2DModel in the cross-attention variant, then an
/// optional nearest upsampler + conv.
final class UNetUpBlock {
    let resnets: [ResnetBlock2D]
    let attentions: [Transformer2DModel]
    let upsampler: Upsample2D?

    /// skipChannels[j]: channels of the skip consumed by resnet j.
    init(_ w: WeightScope, index: Int, type: String, config c: UNetConfig, prevOutputChannels: Int, outChannels: Int,
         skipChannels: [Int], tembChannels: Int, heads: Int, transformerLayers: Int, addUpsample: Bool) throws {
        let cross: Bool
        switch type {
        case "CrossAttnUpBlock2D": cross = true
        case "UpBlock2D": cross = false
        default: throw DiffEditError.unsupported("\(w.source.origin): up_block_types[\(index)] \"\(type)\" is not supported (CrossAttnUpBlock2D, UpBlock2D)")
        }
        let n = skipChannels.count
        resnets = try (0..<n).map { j in
            let inC = (j == 0 ? prevOutputChannels : outChannels) + skipChannels[j]
            return try ResnetBlock2D(w.sub("resnets", j), inChannels: inC, outChannels: outChannels,
                                     tembChannels: tembChannels, groups: c.norm_num_groups, eps: c.norm_eps)
        }
        attentions = cross ? try (0..<n).map { j in
            try Transformer2DModel(w.sub("attentions", j), name: "up_blocks.\(index).attentions.\(j)", place: "up",
                                   channels: outChannels, heads: heads, layers: transformerLayers,
                                   contextDim: c.cross_attention_dim, groups: c.norm_num_groups,
                                   linearProjection: c.use_linear_projection)
        } : []
        upsampler = addUpsample ? try Upsample2D(w.sub("upsamplers", 0), channels: outChannels) : nil
    }

    /// x [B, Cin, H, W] -> [B, Cout, H2, W2]; pops one skip per resnet. upsampleSize: spatial size
    /// after the upsampler (that of the next skip), nil = x2.
    func callAsFunction(_ be: Backend, _ x: Tensor, tembAct: Tensor, context: Tensor, controller: AttentionController?,
                        skips: inout [Tensor], upsampleSize: (Int, Int)?) throws -> Tensor {
        var h = x
        for (j, resnet) in resnets.enumerated() {
            let skip = skips.removeLast()                                                   // [B, Cs, H, W]
            let joined = try be.catChannels(h, skip)                                            // [B, C + Cs, H, W]
            h = try resnet(be, joined, tembAct: tembAct)                                    // [B, Cout, H, W]
            if !attentions.isEmpty { h = try attentions[j](be, h, context: context, controller: controller) }
        }
        if let u = upsampler { h = try u(be, h, size: upsampleSize) }                       // [B, Cout, 2H, 2W]
        return h
    }
}
