/// diffusers Encoder (AutoencoderKL): conv_in, DownEncoderBlock2D levels (resnets, then a stride-2
/// conv with (0,1,0,1) padding except at the last level), mid block, GroupNorm+SiLU, conv_out to
/// 2 * latent_channels (mean, logvar).
final class VAEEncoder {
    let convIn: Conv2dLayer
    let blocks: [(resnets: [ResnetBlock2D], down: Downsample2D?)]
    let mid: VAEMidBlock
    let normOut: GroupNormLayer
    let convOut: Conv2dLayer

    init(_ w: WeightScope, config c: VAEConfig) throws {
        let ch = c.block_out_channels, g = c.norm_num_groups
        convIn = try Conv2dLayer(w.sub("conv_in"), inChannels: c.in_channels, outChannels: ch[0], kernel: 3)
        var blocks: [(resnets: [ResnetBlock2D], down: Downsample2D?)] = []
        var outC = ch[0]
        for i in 0..<ch.count {
            let inC = outC
            outC = ch[i]
            let bw = w.sub("down_blocks", i)
            let resnets = try (0..<c.layers_per_block).map { j in
                try ResnetBlock2D(bw.sub("resnets", j), inChannels: j == 0 ? inC : outC, outChannels: outC,
                                  tembChannels: nil, groups: g, eps: 1e-6)
            }
            let down = i < ch.count - 1 ? try Downsample2D(bw.sub("downsamplers", 0), channels: outC, padding: 0) : nil
            blocks.append((resnets, down))
        }
        self.blocks = blocks
        mid = try VAEMidBlock(w.sub("mid_block"), channels: outC, groups: g, addAttention: c.mid_block_add_attention)
        normOut = try GroupNormLayer(w.sub("conv_norm_out"), channels: outC, groups: g, eps: 1e-6)
        convOut = try Conv2dLayer(w.sub("conv_out"), inChannels: outC, outChannels: 2 * c.latent_channels, kernel: 3)
    }

    /// x [B, 3, H, W] -> moments [B, 2L, H/f, W/f]
    func callAsFunction(_ be: Backend, _ x: Tensor) throws -> Tensor {
        var h = try convIn(be, x)                                        // [B, C0, H, W]
        for block in blocks {
            for r in block.resnets { h = try r(be, h, tembAct: nil) }    // [B, Ci, H', W']
            if let d = block.down { h = try d(be, h) }                   // [B, Ci, H'/2, W'/2]
        }
        h = try mid(be, h)                                               // [B, Clast, H/f, W/f]
        _ = try normOut(be, h, silu: true, inPlace: true)                // [B, Clast, H/f, W/f]
        return try convOut(be, h)                                        // [B, 2L, H/f, W/f]
    }
}
