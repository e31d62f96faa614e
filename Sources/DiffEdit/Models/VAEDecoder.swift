/// diffusers Decoder (AutoencoderKL): conv_in, mid block, UpDecoderBlock2D levels (layers_per_block + 1
/// resnets, then nearest x2 + conv except at the last level), GroupNorm+SiLU, conv_out.
final class VAEDecoder {
    let convIn: Conv2dLayer
    let mid: VAEMidBlock
    let blocks: [(resnets: [ResnetBlock2D], up: Upsample2D?)]
    let normOut: GroupNormLayer
    let convOut: Conv2dLayer

    init(_ w: WeightScope, config c: VAEConfig) throws {
        let ch = Array(c.block_out_channels.reversed()), g = c.norm_num_groups
        convIn = try Conv2dLayer(w.sub("conv_in"), inChannels: c.latent_channels, outChannels: ch[0], kernel: 3)
        mid = try VAEMidBlock(w.sub("mid_block"), channels: ch[0], groups: g, addAttention: c.mid_block_add_attention)
        var blocks: [(resnets: [ResnetBlock2D], up: Upsample2D?)] = []
        var outC = ch[0]
        for i in 0..<ch.count {
            let prevC = outC
            outC = ch[i]
            let bw = w.sub("up_blocks", i)
            let resnets = try (0...c.layers_per_block).map { j in
                try ResnetBlock2D(bw.sub("resnets", j), inChannels: j == 0 ? prevC : outC, outChannels: outC,
                                  tembChannels: nil, groups: g, eps: 1e-6)
            }
            let up = i < ch.count - 1 ? try Upsample2D(bw.sub("upsamplers", 0), channels: outC) : nil
            blocks.append((resnets, up))
        }
        self.blocks = blocks
        normOut = try GroupNormLayer(w.sub("conv_norm_out"), channels: outC, groups: g, eps: 1e-6)
        convOut = try Conv2dLayer(w.sub("conv_out"), inChannels: outC, outChannels: c.out_channels, kernel: 3)
    }

    /// z [B, L, h, w] -> [B, 3, h*f, w*f]
    func callAsFunction(_ be: Backend, _ z: Tensor) throws -> Tensor {
        // h is held only here, so each resnet takes it (and frees it as early as it can)
        var h: Tensor? = try mid(be, try convIn(be, z))                 // [B, Clast, h, w]
        for block in blocks {
            for r in block.resnets { h = try r(be, taking: &h, tembAct: nil) }    // [B, Ci, h', w']
            if let u = block.up {
                h = try u(be, h!)                                        // [B, Ci, 2h', 2w']
                // the next level's tensors are large (512 px and up): the op buffers sized for this level's
                // wider convs (a 512-channel Winograd weight transform is 38 MB) and the heap's free pages
                // are given back before them
                if Upsample2D.isLarge(elements: h!.count) {
                    be.shrinkScratch(above: 0)
                    HeapTrim.releaseFreePages()
                }
            }
        }
        let y = try normOut(be, h!, silu: true, inPlace: true)           // [B, C0, H, W]
        return try convOut(be, y)                                        // [B, 3, H, W]
    }
}
