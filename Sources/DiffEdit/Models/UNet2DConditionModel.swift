import FoundationEssentials
import Glibc

/// diffusers UNet2DConditionModel (SD 1.x / 2.x family), built from a `UNetConfig`: any number of
/// levels, CrossAttn/plain down and up blocks, cross-attention mid block, per-block heads and
/// transformer depth, linear or 1x1-conv projections, in_channels 4/8/9. f32 throughout
/// (upcast_attention is therefore a no-op).
public final class UNet2DConditionModel {
    public let config: UNetConfig
    public let backend: Backend
    /// Where the weights came from (messages).
    public let origin: String
    /// What the loaded parameters hold in memory (WeightsDType at work).
    public let weightTally: WeightTally
    let convIn: Conv2dLayer
    let timeLinear1: LinearLayer
    let timeLinear2: LinearLayer
    /// SDXL's add_embedding (addition_embed_type "text_time"): [text_embeds, time-id features] -> temb.
    let addLinear1: LinearLayer?
    let addLinear2: LinearLayer?
    let downBlocks: [UNetDownBlock]
    let midBlock: UNetMidBlock?
    let upBlocks: [UNetUpBlock]
    let convNormOut: GroupNormLayer
    let convOut: Conv2dLayer
    /// Every parameter by its clean name (what LoRA fusing changes).
    public let parameters = WeightRegistry()

    /// Loads and shape-checks every tensor (clean diffusers names) up front.
    public init(config c: UNetConfig, weights: WeightSource, backend: Backend, weightsDType: WeightsDType = .auto) throws {
        self.config = c
        self.backend = backend
        self.origin = weights.origin
        try Self.checkConfig(c, origin: weights.origin, upBlocks: true)
        let levels = c.block_out_channels.count

        let w = WeightScope(weights, backend: backend, registry: parameters, weightsDType: weightsDType)
        weightTally = w.tally
        let c0 = c.block_out_channels[0], tembC = c0 * 4
        convIn = try Conv2dLayer(w.sub("conv_in"), inChannels: c.in_channels, outChannels: c0, kernel: 3)
        timeLinear1 = try LinearLayer(w.sub("time_embedding.linear_1"), inFeatures: c0, outFeatures: tembC)
        timeLinear2 = try LinearLayer(w.sub("time_embedding.linear_2"), inFeatures: tembC, outFeatures: tembC)
        (addLinear1, addLinear2) = try Self.addEmbedding(w, config: c, origin: weights.origin, what: "UNet")

        let enc = try Self.encoderBlocks(w, config: c)
        downBlocks = enc.down
        midBlock = enc.mid
        var skipChannels = enc.skipChannels
        let last = c.block_out_channels[levels - 1]

        var up: [UNetUpBlock] = []
        var outC = last
        for i in 0..<levels {
            let prevC = outC
            let r = levels - 1 - i
            outC = c.block_out_channels[r]
            var consumed: [Int] = []
            for _ in 0...c.resnets(block: r) { consumed.append(skipChannels.removeLast()) }
            up.append(try UNetUpBlock(w.sub("up_blocks", i), index: i, type: c.up_block_types[i], config: c,
                                      prevOutputChannels: prevC, outChannels: outC, skipChannels: consumed,
                                      tembChannels: tembC, heads: c.heads(block: r),
                                      transformerLayers: c.transformer_layers_per_block.value(r),
                                      addUpsample: i != levels - 1))
        }
        upBlocks = up
        convNormOut = try GroupNormLayer(w.sub("conv_norm_out"), channels: c0, groups: c.norm_num_groups, eps: c.norm_eps)
        convOut = try Conv2dLayer(w.sub("conv_out"), inChannels: c0, outChannels: c.out_channels, kernel: 3)
    }

    /// The config checks the UNet and ControlNetModel share (`upBlocks`: the UNet's decoder half too).
    static func checkConfig(_ c: UNetConfig, origin: String, upBlocks: Bool) throws {
        func bad(_ m: String) -> DiffEditError { DiffEditError.model("\(origin): \(upBlocks ? "UNet" : "ControlNet") config: \(m)") }
        let levels = c.block_out_channels.count
        guard levels > 0, c.down_block_types.count == levels, !upBlocks || c.up_block_types.count == levels else {
            throw bad("block_out_channels (\(levels)), down_block_types (\(c.down_block_types.count))\(upBlocks ? " and up_block_types (\(c.up_block_types.count))" : "") must have the same non-zero length")
        }
        guard c.norm_num_groups > 0, c.block_out_channels.allSatisfy({ $0 > 0 && $0 % c.norm_num_groups == 0 }) else {
            throw bad("block_out_channels \(c.block_out_channels) must be positive multiples of norm_num_groups \(c.norm_num_groups)")
        }
        let perBlock: [(String, IntOrList?)] = [("layers_per_block", c.layers_per_block),
                                                ("attention_head_dim", c.attention_head_dim),
                                                ("num_attention_heads", c.num_attention_heads),
                                                ("transformer_layers_per_block", c.transformer_layers_per_block)]
        for (field, v) in perBlock {
            if case .list(let l)? = v, l.count != levels {
                throw bad("\(field) has \(l.count) entries for \(levels) blocks")
            }
        }
        guard (0..<levels).allSatisfy({ c.resnets(block: $0) > 0 }), c.in_channels > 0, c.out_channels > 0,
              c.cross_attention_dim > 0 else {
            throw bad("layers_per_block, in_channels, out_channels and cross_attention_dim must be positive")
        }
        guard (0..<levels).allSatisfy({ c.transformer_layers_per_block.value($0) >= 0 }) else {
            throw bad("transformer_layers_per_block must not be negative")
        }
        guard c.act_fn == "silu" else { throw DiffEditError.unsupported("\(origin): UNet act_fn \"\(c.act_fn)\" is not supported (silu)") }
        guard c.resnet_time_scale_shift == "default" else {
            throw DiffEditError.unsupported("\(origin): UNet resnet_time_scale_shift \"\(c.resnet_time_scale_shift)\" is not supported")
        }
        guard !c.only_cross_attention, !c.dual_cross_attention, c.class_embed_type == nil else {
            throw DiffEditError.unsupported("\(origin): UNet only_cross_attention / dual_cross_attention / class_embed_type are not supported")
        }
        if let a = c.addition_embed_type, a != "text_time" {
            throw DiffEditError.unsupported("\(origin): UNet addition_embed_type \"\(a)\" is not supported (text_time, as SDXL)")
        }
    }

    /// The down blocks and the mid block of a UNet config (shared with ControlNetModel, whose encoder is a copy of
    /// the UNet's), with the channels of every skip the down blocks emit, in order.
    static func encoderBlocks(_ w: WeightScope, config c: UNetConfig) throws
        -> (down: [UNetDownBlock], mid: UNetMidBlock?, skipChannels: [Int])
    {
        let levels = c.block_out_channels.count
        let c0 = c.block_out_channels[0], tembC = c0 * 4
        var skipChannels = [c0]
        var down: [UNetDownBlock] = []
        var outC = c0
        for i in 0..<levels {
            let inC = outC
            outC = c.block_out_channels[i]
            let final = i == levels - 1
            down.append(try UNetDownBlock(w.sub("down_blocks", i), index: i, type: c.down_block_types[i], config: c,
                                          inChannels: inC, outChannels: outC, tembChannels: tembC, heads: c.heads(block: i),
                                          transformerLayers: c.transformer_layers_per_block.value(i), addDownsample: !final))
            skipChannels += Array(repeating: outC, count: c.resnets(block: i) + (final ? 0 : 1))
        }
        let last = c.block_out_channels[levels - 1]
        var mid: UNetMidBlock? = nil
        if let mt = c.mid_block_type {
            mid = try UNetMidBlock(w.sub("mid_block"), type: mt, config: c, channels: last, tembChannels: tembC,
                                   heads: c.heads(block: levels - 1),
                                   transformerLayers: c.transformer_layers_per_block.value(levels - 1))
        }
        return (down, mid, skipChannels)
    }

    /// SDXL's add_embedding (addition_embed_type text_time; nil otherwise), shared with ControlNetModel.
    static func addEmbedding(_ w: WeightScope, config c: UNetConfig, origin: String, what: String) throws -> (LinearLayer?, LinearLayer?) {
        guard c.addition_embed_type == "text_time" else { return (nil, nil) }
        let tembC = c.block_out_channels[0] * 4
        guard let td = c.addition_time_embed_dim, td > 0, td % 2 == 0, let pin = c.projection_class_embeddings_input_dim,
              pin > 6 * td else {
            throw DiffEditError.model("\(origin): \(what) config: addition_embed_type text_time needs an even addition_time_embed_dim > 0 and projection_class_embeddings_input_dim > 6 x addition_time_embed_dim")
        }
        return (try LinearLayer(w.sub("add_embedding.linear_1"), inFeatures: pin, outFeatures: tembC),
                try LinearLayer(w.sub("add_embedding.linear_2"), inFeatures: tembC, outFeatures: tembC))
    }

    /// temb [B, 4 C0] += add_embedding(added) in place (SDXL: `added` [B, P] required when the layers exist).
    static func addAugment(_ be: Backend, _ temb: Tensor, added: Tensor?, _ l1: LinearLayer?, _ l2: LinearLayer?,
                           what: String) throws {
        guard let a1 = l1, let a2 = l2 else { return }
        let b = temb.shape[0]
        guard let add = added, add.rank == 2, add.shape[0] == b, add.shape[1] == a1.inFeatures else {
            throw DiffEditError.invalidArgument("\(what).forward: this SDXL \(what) needs the added conditioning [\(b), \(a1.inFeatures)] (pooled text embeds + time ids); got \(added.map { "\($0.shape)" } ?? "none")")
        }
        let e1 = try a1(be, try be.onDevice(add))                        // [B, 4 C0]
        _ = try be.silu(e1, inPlace: true)
        let aug = try a2(be, e1)                                         // [B, 4 C0]
        _ = try be.add(temb, aug, inPlace: true)                         // emb = emb + aug_emb
    }

    /// time_embedding(time_proj(t)) [B, 4 C0] (before the SiLU every resnet applies; shared with ControlNetModel).
    static func timeMLP(_ be: Backend, _ ts: [Float], config c: UNetConfig, _ l1: LinearLayer, _ l2: LinearLayer) throws -> Tensor {
        let tproj = try be.onDevice(sinusoidalEmbedding(ts, dim: c.block_out_channels[0], config: c))   // [B, C0]
        let t1 = try l1(be, tproj)                                       // [B, 4 C0]
        _ = try be.silu(t1, inPlace: true)                               // [B, 4 C0]
        return try l2(be, t1)                                            // [B, 4 C0]
    }

    /// SDXL: the width of the pooled text embedding add_embedding takes (nil: no added conditioning).
    public var pooledWidth: Int? {
        guard config.addition_embed_type == "text_time", let td = config.addition_time_embed_dim,
              let pin = config.projection_class_embeddings_input_dim else { return nil }
        return pin - 6 * td
    }

    /// SDXL's add_embedding input for each item: [text_embeds (pooled, [B, P]), sinusoidal features of the six
    /// time ids (original size, crop top-left, target size), 6 x addition_time_embed_dim] -> [B, P + 6 td]
    /// (diffusers: add_embeds = concat([text_embeds, add_time_proj(time_ids).reshape(B, -1)], -1)). Host tensor.
    public func addedConditioning(pooled: Tensor, timeIds: [[Float]]) throws -> Tensor {
        guard let pw = pooledWidth, let td = config.addition_time_embed_dim else {
            throw DiffEditError.invalidArgument("UNet: this UNet takes no added (pooled text + time id) conditioning")
        }
        let b = pooled.shape[0]
        guard pooled.rank == 2, pooled.shape[1] == pw, timeIds.count == b, timeIds.allSatisfy({ $0.count == 6 }) else {
            throw DiffEditError.invalidArgument("UNet: added conditioning pooled \(pooled.shape) / \(timeIds.count) time id rows, expected [B, \(pw)] and B rows of 6")
        }
        let w = pw + 6 * td
        let out = Tensor(shape: [b, w])
        let p = pooled.data
        for i in 0..<b {
            let row = out.data + i * w
            for j in 0..<pw { row[j] = p[i * pw + j] }
            let t = timestepEmbedding(timeIds[i], dim: td)                           // [6, td]
            for j in 0..<(6 * td) { row[pw + j] = t.data[j] }
        }
        return out
    }

    /// The added conditioning of a batch of prompt embeddings' `pooled` vectors ([1, P] each) for a width x height
    /// image, time ids (H, W, 0, 0, H, W) as SDXL's pipelines by default; nil when this UNet takes none.
    public func addedConditioning(pooled: [Tensor?], width: Int, height: Int) throws -> Tensor? {
        guard let pw = pooledWidth else { return nil }
        let rows = try pooled.map { p -> Tensor in
            guard let p, p.count == pw else {
                throw DiffEditError.invalidArgument("UNet: SDXL conditioning needs a pooled text embedding of width \(pw) per item")
            }
            return p.reshaped([1, pw])
        }
        let ids: [Float] = [Float(height), Float(width), 0, 0, Float(height), Float(width)]
        return try addedConditioning(pooled: Tensor.cat0(rows), timeIds: Array(repeating: ids, count: rows.count))
    }

    /// Sinusoidal timestep embedding exactly as diffusers' get_timestep_embedding in float32:
    /// [B] -> [B, dim] (cos first when flip_sin_to_cos).
    func timestepEmbedding(_ timesteps: [Float], dim: Int) -> Tensor { Self.sinusoidalEmbedding(timesteps, dim: dim, config: config) }

    static func sinusoidalEmbedding(_ timesteps: [Float], dim: Int, config: UNetConfig) -> Tensor {
        let half = dim / 2
        let t = Tensor(shape: [timesteps.count, dim])
        let logMax = Float(-Glibc.log(10000.0))
        let denom = Float(half) - Float(config.freq_shift)
        let freqs = (0..<half).map { Glibc.exp(logMax * Float($0) / denom) }
        for (b, ts) in timesteps.enumerated() {
            let row = t.data + b * dim
            for i in 0..<half {
                let a = ts * freqs[i]
                let s = Glibc.sin(a), co = Glibc.cos(a)
                if config.flip_sin_to_cos { row[i] = co; row[half + i] = s } else { row[i] = s; row[half + i] = co }
            }
        }
        return t
    }

    /// One denoising evaluation. sample [B, in_channels, h, w]; timesteps: one per item or one for all;
    /// encoderHiddenStates [B, L, cross_attention_dim]; `added` (SDXL, required there): `addedConditioning`'s
    /// [B, projection_class_embeddings_input_dim] -> [B, out_channels, h, w]. `residuals`: ControlNet residuals
    /// added to the down blocks' skips and the mid block's output (diffusers' down_block_additional_residuals /
    /// mid_block_additional_residual).
    public func forward(_ sample: Tensor, timesteps: [Float], encoderHiddenStates ehs: Tensor,
                        added: Tensor? = nil, controller: AttentionController? = nil,
                        residuals: UNetResiduals? = nil) throws -> Tensor {
        let be = backend, c = config
        guard sample.rank == 4, sample.shape[1] == c.in_channels, sample.shape[0] > 0, sample.shape[2] > 0, sample.shape[3] > 0 else {
            throw DiffEditError.invalidArgument("UNet.forward: sample has shape \(sample.shape), expected [B, \(c.in_channels), h, w]")
        }
        let b = sample.shape[0]
        guard ehs.rank == 3, ehs.shape[0] == b, ehs.shape[2] == c.cross_attention_dim, ehs.shape[1] > 0 else {
            throw DiffEditError.invalidArgument("UNet.forward: encoderHiddenStates has shape \(ehs.shape), expected [\(b), L, \(c.cross_attention_dim)]")
        }
        guard timesteps.count == 1 || timesteps.count == b else {
            throw DiffEditError.invalidArgument("UNet.forward: \(timesteps.count) timesteps for batch \(b) (give 1 or \(b))")
        }
        guard timesteps.allSatisfy({ $0.isFinite }) else {
            throw DiffEditError.invalidArgument("UNet.forward: timesteps \(timesteps) are not finite")
        }
        let ts = timesteps.count == b ? timesteps : Array(repeating: timesteps[0], count: b)

        // inputs made on the host go to the device once (a resident backend), not once per op that reads them
        let sample = try be.onDevice(sample), ehs = try be.onDevice(ehs)
        let temb = try Self.timeMLP(be, ts, config: c, timeLinear1, timeLinear2)   // [B, 4 C0]
        try Self.addAugment(be, temb, added: added, addLinear1, addLinear2, what: "UNet")   // emb += aug_emb (SDXL)
        let tembAct = try be.silu(temb, inPlace: true)                   // [B, 4 C0]  SiLU(temb), used by every resnet

        var h = try convIn(be, sample)                                   // [B, C0, h, w]
        var skips: [Tensor] = [h]
        for block in downBlocks {
            h = try block(be, h, tembAct: tembAct, context: ehs, controller: controller, skips: &skips)
        }
        if let mid = midBlock {
            h = try mid(be, h, tembAct: tembAct, context: ehs, controller: controller)   // [B, Clast, h/f, w/f]
        }
        // ControlNet: after the mid block (which read the last skip unchanged), as diffusers adds them
        if let r = residuals { try r.add(to: skips, mid: h, backend: be) }
        for (i, block) in upBlocks.enumerated() {
            let remaining = skips.count - block.resnets.count
            let size: (Int, Int)? = (i < upBlocks.count - 1 && remaining > 0)
                ? (skips[remaining - 1].shape[2], skips[remaining - 1].shape[3]) : nil
            h = try block(be, h, tembAct: tembAct, context: ehs, controller: controller, skips: &skips, upsampleSize: size)
        }
        _ = try convNormOut(be, h, silu: true, inPlace: true)           // [B, C0, h, w]
        return try convOut(be, h)                                        // [B, out_channels, h, w]
    }
}
