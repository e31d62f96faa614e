/// The conditioning of an inpainting UNet (9 input channels = 4 latent + 1 mask + 4 masked-image latents), as
/// diffusers' StableDiffusionInpaintPipeline builds it:
///   mask      = the work-size mask binarized at 0.5, resized to the latent grid by nearest neighbour (torch's
///               F.interpolate default: latent (i, j) takes pixel (f*i, f*j))               [S, 1, h, w]
///   masked    = VAE(image * (mask < 0.5)) x scaling factor (posterior mean)                 [S, C, h, w]
/// and every UNet item of a slot gets [mask, masked] after its latents on the channel axis (`Denoiser`'s
/// imageCondition). The pipeline's strength, timesteps and starting latents are the sdedit ones, except that at
/// strength 1 the start is pure noise (x init_noise_sigma), not the input noised.
struct InpaintCondition {
    /// [S, 1 + C, h, w] in backend memory: the mask and the masked image's latents of every slot.
    let perSlot: Tensor

    /// `works`: the slots' inputs at work size; `mask`: the repaint region at work size, [0, 1] (one for every slot).
    init(editor: ImageEditor, works: [RGBImage], mask: [Float]) throws {
        let parts = editor.parts, be = parts.backend, f = parts.vaeFactor
        var slots: [Tensor] = []
        for w in works {
            precondition(mask.count == w.width * w.height, "InpaintCondition: mask \(mask.count) for \(w.width)x\(w.height)")
            let (W, H) = (w.width, w.height), (lw, lh) = (W / f, H / f)
            let keep = mask.map { $0 < 0.5 ? Float(1) : 0 }                                   // [H, W]
            let x = try w.tensor(range: .signed)                                                 // [1, 3, H, W]
            for c in 0..<3 { for i in 0..<(W * H) { x.buffer[c * W * H + i] *= keep[i] } }   // masked pixels -> 0
            let z = try be.onDevice(LatentScaling.scale(try parts.vae.encodeMean(x), parts.vae.config))  // [1, C, h, w]
            let m = Tensor(shape: [1, 1, lh, lw])
            for i in 0..<lh { for j in 0..<lw { m.buffer[i * lw + j] = 1 - keep[(f * i) * W + f * j] } }
            slots.append(try be.catChannels(try be.onDevice(m), z))                          // [1, 1 + C, h, w]
        }
        if slots.count == 1 { perSlot = slots[0]; return }
        let item = slots[0].count
        perSlot = try be.output([slots.count] + Array(slots[0].shape.dropFirst()))
        for (s, t) in slots.enumerated() {
            try be.copyStrided(shape: [item], from: t, fromStrides: [1], to: perSlot, toOffset: s * item, toStrides: [1])
        }
    }

    /// Each slot's conditioning repeated for its `items` UNet items (slot-major), [S * items, 1 + C, h, w].
    func perItem(_ items: Int, backend be: Backend) throws -> Tensor {
        if items == 1 { return perSlot }
        let S = perSlot.shape[0], item = perSlot.count / S
        let y = try be.output([S * items] + Array(perSlot.shape.dropFirst()))
        try be.copyStrided(shape: [S, items, item], from: perSlot, fromStrides: [item, 0, 1], to: y,
                           toStrides: [items * item, item, 1])
        return y
    }
}
