import Glibc

/// diffusers ControlNetModel (Zhang et al. 2023) for the SD 1.x / 2.x UNet family: a copy of the UNet's
/// encoder (conv_in, time embedding, down blocks, mid block; the same building blocks as
/// `UNet2DConditionModel`) whose input is the latents plus the embedded control image, and one 1x1 "zero
/// convolution" per skip and for the mid block. Its outputs, scaled, are added to the UNet's skips and mid
/// block output (`UNetResiduals`). Clean diffusers names; the original `control_model.*` layout is translated
/// in IO (`ControlNetCheckpoint`).
public final class ControlNetModel: @unchecked Sendable {
    public let config: ControlNetConfig
    public let origin: String
    public let backend: Backend
    let convIn: Conv2dLayer
    let timeLinear1: LinearLayer
    let timeLinear2: LinearLayer
    /// SDXL: add_embedding (text_time), as the UNet's.
    let addLinear1: LinearLayer?
    let addLinear2: LinearLayer?
    /// ControlNetConditioningEmbedding: conv_in, (conv, conv stride 2) per step, conv_out; SiLU between.
    let condIn: Conv2dLayer
    let condBlocks: [Conv2dLayer]
    let condOut: Conv2dLayer
    let downBlocks: [UNetDownBlock]
    let midBlock: UNetMidBlock
    let zeroConvs: [Conv2dLayer]
    let midOut: Conv2dLayer
    /// Channels of every skip (= every residual), in order.
    public let skipChannels: [Int]
    /// A clean tensor name as the file stores it (messages).
    let storedName: (String) -> String

    public init(config cfg: ControlNetConfig, weights: WeightSource, backend: Backend) throws {
        config = cfg
        origin = weights.origin
        self.backend = backend
        let refs = (weights as? MappedWeightSource)?.refs
        storedName = { n in refs?[n].map { $0.name == n ? n : "\($0.name) (\(n))" } ?? n }
        let c = cfg.unet
        try UNet2DConditionModel.checkConfig(c, origin: origin, upBlocks: false)
        let e = cfg.conditioning_embedding_out_channels
        guard !e.isEmpty, e.allSatisfy({ $0 > 0 }), cfg.conditioning_channels > 0 else {
            throw DiffEditError.model("\(origin): ControlNet config: conditioning_embedding_out_channels \(e) and conditioning_channels \(cfg.conditioning_channels) must be positive")
        }
        guard !cfg.global_pool_conditions else {
            throw DiffEditError.unsupported("\(origin): ControlNet config: global_pool_conditions (shuffle-style ControlNets) is not supported")
        }
        guard ["rgb", "bgr"].contains(cfg.controlnet_conditioning_channel_order) else {
            throw DiffEditError.unsupported("\(origin): ControlNet config: controlnet_conditioning_channel_order \"\(cfg.controlnet_conditioning_channel_order)\" is not supported (rgb, bgr)")
        }
        guard let mt = c.mid_block_type, mt == "UNetMidBlock2DCrossAttn" else {
            throw DiffEditError.unsupported("\(origin): ControlNet config: mid_block_type \(c.mid_block_type ?? "null") is not supported (UNetMidBlock2DCrossAttn)")
        }
        let w = WeightScope(weights, backend: backend)
        let c0 = c.block_out_channels[0], tembC = c0 * 4
        convIn = try Conv2dLayer(w.sub("conv_in"), inChannels: c.in_channels, outChannels: c0, kernel: 3)
        timeLinear1 = try LinearLayer(w.sub("time_embedding.linear_1"), inFeatures: c0, outFeatures: tembC)
        timeLinear2 = try LinearLayer(w.sub("time_embedding.linear_2"), inFeatures: tembC, outFeatures: tembC)
        (addLinear1, addLinear2) = try UNet2DConditionModel.addEmbedding(w, config: c, origin: origin, what: "ControlNet")

        let ce = w.sub("controlnet_cond_embedding")
        condIn = try Conv2dLayer(ce.sub("conv_in"), inChannels: cfg.conditioning_channels, outChannels: e[0], kernel: 3)
        var blocks: [Conv2dLayer] = []
        for i in 0..<(e.count - 1) {
            blocks.append(try Conv2dLayer(ce.sub("blocks", 2 * i), inChannels: e[i], outChannels: e[i], kernel: 3))
            blocks.append(try Conv2dLayer(ce.sub("blocks", 2 * i + 1), inChannels: e[i], outChannels: e[i + 1], kernel: 3, stride: 2))
        }
        condBlocks = blocks
        condOut = try Conv2dLayer(ce.sub("conv_out"), inChannels: e[e.count - 1], outChannels: c0, kernel: 3)

        let enc = try UNet2DConditionModel.encoderBlocks(w, config: c)
        downBlocks = enc.down
        midBlock = enc.mid!
        skipChannels = enc.skipChannels
        zeroConvs = try enc.skipChannels.enumerated().map { j, ch in
            try Conv2dLayer(w.sub("controlnet_down_blocks", j), inChannels: ch, outChannels: ch, kernel: 1)
        }
        let last = c.block_out_channels[c.block_out_channels.count - 1]
        midOut = try Conv2dLayer(w.sub("controlnet_mid_block"), inChannels: last, outChannels: last, kernel: 1)
    }

    /// The pixel-to-latent factor of the conditioning embedding (2 per stride-2 step).
    public var conditionFactor: Int { 1 << (config.conditioning_embedding_out_channels.count - 1) }

    /// ControlNetConditioningEmbedding: control images [N, 3, H, W] (values in [0, 1]; -1 marks inpaint's
    /// masked pixels; RGB, flipped here for a "bgr" net) -> [N, C0, H/f, W/f]. Constant over the steps, so the
    /// engine computes it once per edit.
    func embedCondition(_ image: Tensor) throws -> Tensor {
        let be = backend
        guard image.rank == 4, image.shape[1] == config.conditioning_channels else {
            throw DiffEditError.invalidArgument("\(origin): control image has shape \(image.shape), expected [N, \(config.conditioning_channels), H, W]")
        }
        var x = image
        if config.controlnet_conditioning_channel_order == "bgr" {
            let plane = x.shape[2] * x.shape[3], ch = x.shape[1]
            let y = try Tensor.allocate(x.shape, what: "\(origin): the control image in BGR order")
            for n in 0..<x.shape[0] {
                for c in 0..<ch {
                    (y.data + (n * ch + c) * plane).update(from: x.data + (n * ch + ch - 1 - c) * plane, count: plane)
                }
            }
            x = y
        }
        var h = try condIn(be, try be.onDevice(x))                      // [N, E0, H, W]
        _ = try be.silu(h, inPlace: true)
        for b in condBlocks {
            h = try b(be, h)                                             // [N, Ei, H / 2^k, W / 2^k]
            _ = try be.silu(h, inPlace: true)
        }
        return try condOut(be, h)                                        // [N, C0, H/f, W/f]
    }

    /// One ControlNet evaluation. sample [N, in_channels, h, w] (the UNet's scaled input), encoderHiddenStates
    /// [N, L, D], condition [N, C0, h, w] (`embedCondition`) -> residuals scaled by `scale` (guess mode: the
    /// k-th of n+1 outputs by scale * 10^(k/n - 1), diffusers' logspace(-1, 0), the mid block's last).
    func residuals(_ sample: Tensor, timestep t: Float, encoderHiddenStates ehs: Tensor, added: Tensor? = nil,
                   condition: Tensor, scale: Float, guessMode: Bool) throws -> (down: [Tensor], mid: Tensor) {
        let be = backend, c = config.unet
        let n = sample.shape[0]
        guard sample.rank == 4, sample.shape[1] == c.in_channels, ehs.rank == 3, ehs.shape[0] == n,
              ehs.shape[2] == c.cross_attention_dim, condition.shape == [n, c.block_out_channels[0], sample.shape[2], sample.shape[3]] else {
            throw DiffEditError.invalidArgument("\(origin): ControlNet inputs: sample \(sample.shape), encoder hidden states \(ehs.shape), embedded control image \(condition.shape) do not fit (in_channels \(c.in_channels), cross_attention_dim \(c.cross_attention_dim))")
        }
        let sample = try be.onDevice(sample), ehs = try be.onDevice(ehs)
        let temb = try UNet2DConditionModel.timeMLP(be, Array(repeating: t, count: n), config: c, timeLinear1, timeLinear2)
        try UNet2DConditionModel.addAugment(be, temb, added: added, addLinear1, addLinear2, what: "ControlNet")  // SDXL
        let tembAct = try be.silu(temb, inPlace: true)                   // [N, 4 C0]
        var h = try convIn(be, sample, residual: condition)              // [N, C0, h, w]  conv_in(x) + cond
        var skips: [Tensor] = [h]
        for block in downBlocks {
            h = try block(be, h, tembAct: tembAct, context: ehs, controller: nil, skips: &skips)
        }
        h = try midBlock(be, h, tembAct: tembAct, context: ehs, controller: nil)   // [N, Clast, h/f, w/f]
        let count = skips.count + 1
        func s(_ k: Int) -> Float {
            guessMode ? scale * Float(Glibc.pow(10.0, -1.0 + Double(k) / Double(count - 1))) : scale
        }
        var down: [Tensor] = []
        for (k, (x, zc)) in zip(skips, zeroConvs).enumerated() {
            down.append(try be.scale(try zc(be, x), s(k), inPlace: true))  // [N, C_k, h_k, w_k]
        }
        let mid = try be.scale(try midOut(be, h), s(count - 1), inPlace: true)   // [N, Clast, h/f, w/f]
        return (down, mid)
    }

    /// Throws `.model` naming the tensor when this ControlNet does not fit `unet` (a ControlNet made for another
    /// base: other channels, another text-encoder width, another input).
    public func checkFits(_ unet: UNetConfig, unetOrigin: String) throws {
        try Self.checkFits(config, origin: origin, storedName: storedName, unet: unet, unetOrigin: unetOrigin)
    }

    /// The same from a config alone (before the weights are loaded: `StableDiffusionModel.loadControlNet`).
    static func checkFits(_ cfg: ControlNetConfig, origin: String, storedName: (String) -> String,
                          unet: UNetConfig, unetOrigin: String) throws {
        let c = cfg.unet
        func bad(_ tensor: String, _ what: String) -> DiffEditError {
            DiffEditError.model("\(origin): tensor \(storedName(tensor)): \(what) — this ControlNet was made for another base model than \(unetOrigin)")
        }
        if c.cross_attention_dim != unet.cross_attention_dim {
            throw bad("mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight", "cross-attention width \(c.cross_attention_dim), the UNet's text conditioning is \(unet.cross_attention_dim) wide")
        }
        if (c.addition_embed_type == "text_time") != (unet.addition_embed_type == "text_time")
            || c.projection_class_embeddings_input_dim != unet.projection_class_embeddings_input_dim {
            throw bad("add_embedding.linear_1.weight", "added conditioning \(c.addition_embed_type ?? "none") (\(c.projection_class_embeddings_input_dim ?? 0) wide), the UNet's is \(unet.addition_embed_type ?? "none") (\(unet.projection_class_embeddings_input_dim ?? 0) wide)")
        }
        if c.in_channels != unet.out_channels {
            throw bad("conv_in.weight", "\(c.in_channels) input channels, the UNet's latents have \(unet.out_channels)")
        }
        func skips(_ u: UNetConfig) -> [Int] {
            var s = [u.block_out_channels.first ?? 0]
            for (i, ch) in u.block_out_channels.enumerated() {
                s += Array(repeating: ch, count: u.resnets(block: i) + (i == u.block_out_channels.count - 1 ? 0 : 1))
            }
            return s
        }
        let mine = skips(c), theirs = skips(unet)
        if mine.count != theirs.count {
            throw bad("controlnet_down_blocks.\(min(mine.count, theirs.count)).weight",
                      "\(mine.count) down-block residuals, the UNet has \(theirs.count) skips")
        }
        for (j, (a, b)) in zip(mine, theirs).enumerated() where a != b {
            throw bad("controlnet_down_blocks.\(j).weight", "\(a) channels, the UNet's skip \(j) has \(b)")
        }
        if c.block_out_channels.last != unet.block_out_channels.last {
            throw bad("controlnet_mid_block.weight", "\(c.block_out_channels.last ?? 0) channels, the UNet's mid block has \(unet.block_out_channels.last ?? 0)")
        }
    }
}
