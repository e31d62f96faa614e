/// The memory a model's weights take once loaded (f32, as the engine holds them), estimated from its three
/// configs alone, before any tensor is read: `StableDiffusionModel.checkModelSize` compares it with the
/// caller's `max_memory` (or the available RAM) at load, so a config that asks for more than the machine has
/// is `.outOfMemory` naming the figure, not a trap on an allocation halfway through the load (issue 21).
///
/// It counts the parameters of the layers the configs describe, as diffusers builds them (resnets,
/// transformer blocks, attention, embeddings), without the biases and norms (< 0.5%). Measured against the
/// fixtures' real tensor counts in `ModelSizeEstimateTests`; SD 1.5 comes out at 1.07e9 parameters
/// (published: 1.066e9 = UNet 860M + VAE 84M + CLIP text 123M); SDXL base's two text encoders and
/// add_embedding are counted too. Every product saturates at Int.max, so a
/// hostile config gives Int.max, never an overflow trap.
public struct ModelSizeEstimate: Equatable, Sendable {
    public var unetParameters: Int
    public var vaeParameters: Int
    public var textParameters: Int

    /// `text2`: SDXL's second text encoder (with its projection), nil for SD 1.x/2.x.
    public init(unet: UNetConfig, vae: VAEConfig, text: CLIPTextConfig, text2: CLIPTextConfig? = nil) {
        unetParameters = ModelSizeEstimate.unet(unet)
        vaeParameters = ModelSizeEstimate.vae(vae)
        textParameters = Self.sum(ModelSizeEstimate.text(text),
                                  text2.map { Self.sum(ModelSizeEstimate.text($0), Self.mul($0.hidden_size, $0.projection_dim)) } ?? 0)
    }

    public var parameters: Int { Self.sum(unetParameters, vaeParameters, textParameters) }
    /// Bytes of f32 weights.
    public var bytes: Int { Self.mul(parameters, 4) }

    static func mul(_ xs: Int...) -> Int { HostMemory.product(xs) }

    static func sum(_ xs: Int...) -> Int {
        var r = 0
        for x in xs {
            let (s, o) = r.addingReportingOverflow(max(x, 0))
            if o { return Int.max }
            r = s
        }
        return r
    }

    /// A resnet block cin -> c with a time embedding of `temb` (0: none): two 3x3 convs, the time
    /// projection and a 1x1 shortcut when the channel count changes.
    static func resnet(_ cin: Int, _ c: Int, temb: Int) -> Int {
        sum(mul(9, cin, c), mul(9, c, c), mul(temb, c), cin == c ? 0 : mul(cin, c))
    }

    /// A Transformer2DModel of `layers` BasicTransformerBlocks on c channels with context width `cross`:
    /// proj_in/out, self-attention (4 c^2), cross-attention (2 c^2 + 2 c cross), GEGLU feed-forward (12 c^2).
    static func transformer(_ c: Int, layers: Int, cross: Int) -> Int {
        let block = sum(mul(4, c, c), mul(2, c, c), mul(2, c, cross), mul(12, c, c))
        return sum(mul(2, c, c), mul(layers, block))
    }

    static func unet(_ u: UNetConfig) -> Int {
        guard let c0 = u.block_out_channels.first else { return 0 }
        return sum(encoder(u), decoder(u), mul(9, c0, u.out_channels))
    }

    /// The transformer layers of level `i` (transformer_layers_per_block as an int or a per-level list).
    static func transformerLayers(_ u: UNetConfig, _ i: Int) -> Int { u.transformer_layers_per_block.value(i) }

    /// What a UNet and a ControlNet share: conv_in, the time (and SDXL's added) embedding, the down blocks and
    /// the mid block.
    static func encoder(_ u: UNetConfig) -> Int {
        let ch = u.block_out_channels
        guard let c0 = ch.first, let cl = ch.last else { return 0 }
        let temb = mul(4, c0)
        var n = sum(mul(9, u.in_channels, c0), mul(c0, temb), mul(temb, temb))
        // SDXL's add_embedding (text_time): pooled text + 6 time embeddings -> temb, then temb -> temb
        if let p = u.projection_class_embeddings_input_dim { n = sum(n, mul(p, temb), mul(temb, temb)) }
        var cin = c0
        for (i, c) in ch.enumerated() {
            let attn = i < u.down_block_types.count && u.down_block_types[i].hasPrefix("CrossAttn")
            let L = max(u.resnets(block: i), 0)
            if L > 0 { n = sum(n, resnet(cin, c, temb: temb), mul(L - 1, resnet(c, c, temb: temb))) }
            if attn { n = sum(n, mul(L, transformer(c, layers: transformerLayers(u, i), cross: u.cross_attention_dim))) }
            if i < ch.count - 1 { n = sum(n, mul(9, c, c)) }
            cin = c
        }
        if u.mid_block_type != nil {
            n = sum(n, mul(2, resnet(cl, cl, temb: temb)), transformer(cl, layers: transformerLayers(u, ch.count - 1), cross: u.cross_attention_dim))
        }
        return n
    }

    /// The UNet's up path: L + 1 resnets a level on the concatenated skip connections (about 2c -> c).
    static func decoder(_ u: UNetConfig) -> Int {
        let ch = u.block_out_channels
        let temb = mul(4, ch.first ?? 0)
        var n = 0
        for (k, c) in ch.reversed().enumerated() {
            let attn = k < u.up_block_types.count && u.up_block_types[k].hasPrefix("CrossAttn")
            let L = max(u.resnets(block: ch.count - 1 - k), 0)
            n = sum(n, mul(sum(L, 1), resnet(mul(2, c), c, temb: temb)))
            if attn { n = sum(n, mul(sum(L, 1), transformer(c, layers: transformerLayers(u, ch.count - 1 - k), cross: u.cross_attention_dim))) }
            if k < ch.count - 1 { n = sum(n, mul(9, c, c)) }
        }
        return n
    }

    /// A ControlNet's parameters (issue 21: checked against max_memory when it is loaded): the UNet's encoder copy,
    /// one zero 1x1 convolution per skip connection and one after the mid block, and the conditioning embedding
    /// (conv_in, a 3x3 conv and a stride-2 3x3 conv between consecutive channel counts, conv_out). SD 1.5's comes out
    /// at 3.61e8 (published: 361M, 1.45 GB as f32).
    public static func controlNet(_ c: ControlNetConfig) -> Int {
        let u = c.unet
        let ch = u.block_out_channels
        guard let c0 = ch.first, let cl = ch.last else { return 0 }
        var n = encoder(u)
        n = sum(n, mul(c0, c0), mul(cl, cl))                     // the first skip (conv_in's output), the mid block's
        for (i, c) in ch.enumerated() {                           // L skips a level, + the downsampler's
            let L = max(u.resnets(block: i), 0)
            n = sum(n, mul(i < ch.count - 1 ? sum(L, 1) : L, c, c))
        }
        let e = c.conditioning_embedding_out_channels
        guard let e0 = e.first, let el = e.last else { return n }
        n = sum(n, mul(9, c.conditioning_channels, e0), mul(9, el, c0))
        for (a, b) in zip(e, e.dropFirst()) { n = sum(n, mul(9, a, a), mul(9, a, b)) }
        return n
    }

    static func vae(_ v: VAEConfig) -> Int {
        let ch = v.block_out_channels
        guard let c0 = ch.first, let cl = ch.last else { return 0 }
        let L = max(v.layers_per_block, 0)
        let latent = v.latent_channels
        // encoder and decoder convs in/out, quant convs
        var n = sum(mul(9, v.in_channels, c0), mul(9, c0, 2, latent), mul(9, latent, cl), mul(9, c0, v.out_channels),
                    mul(4, latent, latent))
        // mid blocks (encoder and decoder): two resnets and one attention (4 c^2)
        n = sum(n, mul(2, sum(mul(2, resnet(cl, cl, temb: 0)), mul(4, cl, cl))))
        var cin = c0
        for (i, c) in ch.enumerated() {
            if L > 0 { n = sum(n, resnet(cin, c, temb: 0), mul(L - 1, resnet(c, c, temb: 0))) }
            if i < ch.count - 1 { n = sum(n, mul(9, c, c)) }
            cin = c
        }
        cin = cl
        for (k, c) in ch.reversed().enumerated() {
            n = sum(n, resnet(cin, c, temb: 0), mul(L, resnet(c, c, temb: 0)))
            if k < ch.count - 1 { n = sum(n, mul(9, c, c)) }
            cin = c
        }
        return n
    }

    static func text(_ t: CLIPTextConfig) -> Int {
        let h = t.hidden_size
        let layer = sum(mul(4, h, h), mul(2, h, t.intermediate_size))
        return sum(mul(t.vocab_size, h), mul(t.max_position_embeddings, h), mul(t.num_hidden_layers, layer))
    }
}
