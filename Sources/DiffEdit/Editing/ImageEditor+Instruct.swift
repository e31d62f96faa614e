/// InstructPix2Pix (Brooks et al., CVPR 2023) as diffusers' StableDiffusionInstructPix2PixPipeline: the
/// image's (unscaled) posterior-mean latents are concatenated to the noisy latents on channels; batch
/// [text, image-only, uncond] with image latents [z, z, 0] and prompts [text, neg, neg];
/// eps = u + g (text - image) + g_img (image - u)  (Eq. 3). DDIM from the checkpoint's scheduler config.
extension ImageEditor {
    func runInstruct(_ r: ResolvedEdit, _ work: RGBImage, latentMask: [Float]?, options: EditOptions,
                     progress: ProgressReporter) throws -> MethodOutput {
        let unet = parts.unet
        let imageLatents = try parts.vae.encodeMean(work.tensor(range: .signed))   // [1, 4, h, w] unscaled
        let shape = [1, unet.config.out_channels, imageLatents.shape[2], imageLatents.shape[3]]
        let sched = try DDIMScheduler(config: parts.schedulerConfig)
        try sched.setTimesteps(r.steps)
        let ts = sched.timesteps
        let noise = try self.noise(options, shape: shape)
        var lat = noise.copy()
        if sched.initNoiseSigma != 1 { for i in 0..<lat.count { lat.data[i] *= sched.initNoiseSigma } }
        let text = try parts.encodePrompt(r.prompt)
        let cfg = r.guidance > 1 && r.imageGuidance >= 1
        let ehs: Tensor, cond: Tensor
        if cfg {
            let neg = try parts.encodePrompt(r.negativePrompt ?? "")
            ehs = Tensor.cat0([text, neg, neg])                                      // [3, 77, D]
            cond = Tensor.cat0([imageLatents, imageLatents, Tensor.zeros(imageLatents.shape)])   // [3, 4, h, w]
        } else {
            ehs = text
            cond = imageLatents
        }
        // the source trajectory for a user mask: the input's latents noised to each timestep
        let z0 = latentMask == nil ? nil : LatentScaling.scale(imageLatents, parts.vae.config)
        for (i, t) in ts.enumerated() {
            let x = try sched.scaleModelInput(cfg ? EditTensorOps.repeat0(lat, 3) : lat, timestep: t)
            let inp = EditTensorOps.catChannels(x, cond)                             // [3, 8, h, w]
            let eps = try unet.forward(inp, timesteps: [t], encoderHiddenStates: ehs)  // [3, 4, h, w]
            let e: Tensor
            if cfg {
                let per = eps.count / 3
                e = Tensor(shape: lat.shape, zeroed: false)
                let pt = eps.data, pi = eps.data + per, pu = eps.data + 2 * per
                let g = r.guidance, gi = r.imageGuidance
                for k in 0..<per { e.data[k] = pu[k] + g * (pt[k] - pi[k]) + gi * (pi[k] - pu[k]) }
            } else {
                e = eps
            }
            lat = try sched.step(modelOutput: e, timestep: t, sample: lat)
            if let m = latentMask, let z = z0 {
                let src = i + 1 < ts.count ? try sched.addNoise(original: z, noise: noise, timestep: ts[i + 1]) : z
                EditMask.blend(lat, source: src, mask: m)
            }
            try progress.step(i + 1, of: ts.count)
        }
        return MethodOutput(latents: lat, blendMask: nil)
    }
}
