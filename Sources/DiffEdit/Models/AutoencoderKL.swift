import Synchronization

/// diffusers AutoencoderKL: encoder (+ quant_conv) giving the posterior mean, and (post_quant_conv +)
/// decoder. Latents here are unscaled: the pipeline applies scaling_factor / shift_factor.
/// Large images are decoded and encoded in tiles (`tiling`, VAETiling: diffusers' enable_tiling()).
public final class AutoencoderKL: @unchecked Sendable {
    public let config: VAEConfig
    public let backend: Backend
    /// What the loaded parameters hold in memory (WeightsDType at work).
    public let weightTally: WeightTally
    let encoder: VAEEncoder
    let decoder: VAEDecoder
    /// The mean half of quant_conv (a 1x1 conv: the mean needs only its first latent_channels outputs).
    let quantConvMean: Conv2dLayer?
    let postQuantConv: Conv2dLayer?
    private let tilingSetting = Mutex<VAETiling>(VAETiling())

    /// When decode and encode work in tiles (default auto: above 512x512 pixels).
    public var tiling: VAETiling {
        get { tilingSetting.withLock { $0 } }
        set { tilingSetting.withLock { $0 = newValue } }
    }

    /// Loads and shape-checks every tensor (clean diffusers names: encoder.*, decoder.*, quant_conv.*,
    /// post_quant_conv.*) up front.
    public init(config c: VAEConfig, weights: WeightSource, backend: Backend, weightsDType: WeightsDType = .auto) throws {
        self.config = c
        self.backend = backend
        let origin = weights.origin
        guard !c.block_out_channels.isEmpty, c.block_out_channels.allSatisfy({ $0 > 0 }),
              c.down_block_types.count == c.block_out_channels.count,
              c.up_block_types.count == c.block_out_channels.count else {
            throw DiffEditError.model("\(origin): VAE config: block_out_channels \(c.block_out_channels), down_block_types and up_block_types must have the same non-zero length")
        }
        guard c.latent_channels > 0, c.layers_per_block > 0, c.in_channels > 0, c.out_channels > 0, c.norm_num_groups > 0 else {
            throw DiffEditError.model("\(origin): VAE config: latent_channels, layers_per_block, in/out_channels and norm_num_groups must be positive")
        }
        for (i, t) in c.down_block_types.enumerated() where t != "DownEncoderBlock2D" {
            throw DiffEditError.unsupported("\(origin): VAE down_block_types[\(i)] \"\(t)\" is not supported (DownEncoderBlock2D)")
        }
        for (i, t) in c.up_block_types.enumerated() where t != "UpDecoderBlock2D" {
            throw DiffEditError.unsupported("\(origin): VAE up_block_types[\(i)] \"\(t)\" is not supported (UpDecoderBlock2D)")
        }
        guard c.act_fn == "silu" else { throw DiffEditError.unsupported("\(origin): VAE act_fn \"\(c.act_fn)\" is not supported (silu)") }
        let w = WeightScope(weights, backend: backend, weightsDType: weightsDType)
        weightTally = w.tally
        encoder = try VAEEncoder(w.sub("encoder"), config: c)
        decoder = try VAEDecoder(w.sub("decoder"), config: c)
        let l = c.latent_channels
        if c.use_quant_conv {
            let full = try Conv2dLayer(w.sub("quant_conv"), inChannels: 2 * l, outChannels: 2 * l, kernel: 1)
            quantConvMean = Conv2dLayer(weight: full.weight.slice0(0, l), bias: full.bias?.slice0(0, l), stride: 1, padding: (0, 0, 0, 0))
        } else {
            quantConvMean = nil
        }
        postQuantConv = c.use_post_quant_conv ? try Conv2dLayer(w.sub("post_quant_conv"), inChannels: l, outChannels: l, kernel: 1) : nil
    }

    /// image [B, in_channels, H, W] in [-1, 1] (H, W multiples of the downsample factor)
    /// -> posterior mean [B, latent_channels, H/f, W/f], unscaled.
    public func encodeMean(_ image: Tensor) throws -> Tensor {
        let c = config, f = c.downsampleFactor
        guard image.rank == 4, image.shape[0] > 0, image.shape[1] == c.in_channels,
              image.shape[2] > 0, image.shape[3] > 0 else {
            throw DiffEditError.invalidArgument("VAE.encodeMean: image has shape \(image.shape), expected [B, \(c.in_channels), H, W]")
        }
        guard image.shape[2] % f == 0, image.shape[3] % f == 0 else {
            throw DiffEditError.invalidArgument("VAE.encodeMean: image size \(image.shape[3])x\(image.shape[2]) is not a multiple of the VAE factor \(f)")
        }
        defer { weightTally.releaseMappedPages() }   // mapped weights leave the resident set until the next call
        if let plan = tiling.plan(width: image.shape[3], height: image.shape[2], config: c) {
            return try tiledEncodeMean(image, plan)                            // [B, L, h, w]
        }
        return try encodeMeanWhole(image)                                      // [B, L, h, w]
    }

    /// image [B, C, H, W] -> posterior mean [B, L, H/f, W/f] in one piece.
    private func encodeMeanWhole(_ image: Tensor) throws -> Tensor {
        let moments = try encoder(backend, image)                              // [B, 2L, h, w]
        if let q = quantConvMean { return try q(backend, moments) }            // [B, L, h, w]
        let l = config.latent_channels, (b, h, w) = (moments.shape[0], moments.shape[2], moments.shape[3])
        let mean = try backend.output([b, l, h, w])                            // [B, L, h, w]
        try backend.copyStrided(shape: [b, l * h * w], from: moments, fromStrides: [2 * l * h * w, 1],
                                to: mean, toStrides: [l * h * w, 1])
        return mean
    }

    /// diffusers AutoencoderKL._tiled_encode (the mean half of the moments: blending is per channel):
    /// tiles of plan.sample pixels every 3/4 tile, blended over a quarter tile of latents.
    private func tiledEncodeMean(_ image: Tensor, _ plan: VAETilePlan) throws -> Tensor {
        let (hh, ww) = (image.shape[2], image.shape[3])
        let f = config.downsampleFactor
        var grid = try tileGrid(image, size: plan.sample, step: plan.encodeStep, channels: config.latent_channels,
                                outSize: { $0 / f }, encodeMeanWhole)                // tiles [B, L, th/f, tw/f]
        guard let out = try grid.blendAndJoin(blend: plan.encodeBlend, keep: plan.encodeKeep, height: hh / f, width: ww / f) else {
            throw DiffEditError.invalidArgument("VAE.encodeMean: tiles of \(plan.sample) px do not cover \(ww)x\(hh) (tile size must be a multiple of \(4 * f))")
        }
        return out                                                             // [B, L, H/f, W/f]
    }

    /// latents [B, latent_channels, h, w], unscaled -> image [B, out_channels, h*f, w*f], about [-1, 1].
    public func decode(_ latents: Tensor) throws -> Tensor {
        let c = config
        guard latents.rank == 4, latents.shape[0] > 0, latents.shape[1] == c.latent_channels,
              latents.shape[2] > 0, latents.shape[3] > 0 else {
            throw DiffEditError.invalidArgument("VAE.decode: latents have shape \(latents.shape), expected [B, \(c.latent_channels), h, w]")
        }
        defer { weightTally.releaseMappedPages() }   // mapped weights leave the resident set until the next call
        let f = c.downsampleFactor
        let x: Tensor
        if let plan = tiling.plan(width: latents.shape[3] * f, height: latents.shape[2] * f, config: c) {
            x = try tiledDecode(latents, plan)                                 // [B, out, h*f, w*f]
        } else {
            x = try decodeWhole(latents)                                       // [B, out, h*f, w*f]
        }
        // NaN/Inf here (a VAE that overflows, weights that are finite but absurd) would be a black image
        try NumericHealth.requireFinite(x.data, x.count, shape: x.shape, "VAE decoder output (decoder.conv_out)",
                                        hint: "the VAE weights or the latents overflow (the model is broken; an f16-trained VAE needs force_upcast)")
        return x
    }

    /// latents [B, L, h, w] -> image [B, out, h*f, w*f] in one piece.
    private func decodeWhole(_ latents: Tensor) throws -> Tensor {
        let z = try postQuantConv.map { try $0(backend, latents) } ?? latents  // [B, L, h, w]
        return try decoder(backend, z)                                         // [B, out, h*f, w*f]
    }

    /// diffusers AutoencoderKL.tiled_decode: latent tiles of plan.latent every 3/4 tile, each decoded alone,
    /// blended over a quarter tile of pixels. Only one tile's decoder activations are alive at a time.
    private func tiledDecode(_ latents: Tensor, _ plan: VAETilePlan) throws -> Tensor {
        let (h, w) = (latents.shape[2], latents.shape[3])
        let f = config.downsampleFactor
        var grid = try tileGrid(latents, size: plan.latent, step: plan.decodeStep, channels: config.out_channels,
                                outSize: { $0 * f }, decodeWhole)                    // tiles [B, out, th*f, tw*f]
        guard let out = try grid.blendAndJoin(blend: plan.decodeBlend, keep: plan.decodeKeep, height: h * f, width: w * f) else {
            throw DiffEditError.invalidArgument("VAE.decode: tiles of \(plan.sample) px do not cover \(w * f)x\(h * f) (tile size must be a multiple of \(4 * f))")
        }
        return out                                                             // [B, out, h*f, w*f]
    }

    /// The tiles of x [B, C, H, W] (`size` x `size`, every `step`, row-major; edge tiles cut short), each run
    /// through `run` alone into [B, channels, outSize(th), outSize(tw)] and kept in a grid for blending.
    private func tileGrid(_ x: Tensor, size: Int, step: Int, channels: Int, outSize: (Int) -> Int,
                          _ run: (Tensor) throws -> Tensor) throws -> VAETileGrid {
        let (b, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        var grid = VAETileGrid(batch: b, channels: channels)
        for i in stride(from: 0, to: h, by: step) {
            var row: [VAETileGrid.Tile] = []
            for j in stride(from: 0, to: w, by: step) {
                let th = min(size, h - i), tw = min(size, w - j)
                let tile = try backend.output([b, c, th, tw])                  // [B, C, th, tw]
                try backend.copyStrided(shape: [b * c, th, tw], from: x, fromOffset: i * w + j,
                                        fromStrides: [h * w, w, 1], to: tile, toStrides: [th * tw, tw, 1])
                let y = try run(tile)                                          // [B, channels, outSize(th), outSize(tw)]
                row.append(VAETileGrid.Tile(data: Array(y.buffer), h: outSize(th), w: outSize(tw)))
            }
            grid.rows.append(row)
        }
        return grid
    }
}
