/// SDEdit (Meng et al., ICLR 2022) with diffusers' StableDiffusionImg2ImgPipeline semantics: the last
/// `strength` fraction of the DDIM timesteps run, starting from add_noise(z0, noise, t_start).
extension ImageEditor {
    func runSDEdit(_ r: ResolvedEdit, _ work: RGBImage, latentMask: [Float]?, options: EditOptions,
                   progress: ProgressReporter) throws -> MethodOutput {
        let unet = parts.unet
        let z0 = try encode(work)                                                    // [1, C, h, w]
        let sched = try DDIMScheduler(config: parts.schedulerConfig)
        try sched.setTimesteps(r.steps)
        let ts = try sched.img2imgTimesteps(strength: r.strength).timesteps
        guard let t0 = ts.first else {
            throw DiffEditError.invalidArgument("strength: \(r.strength) with \(r.steps) steps leaves no denoising step (raise strength or steps)")
        }
        let noise = try self.noise(options, shape: z0.shape)
        var lat = try sched.addNoise(original: z0, noise: noise, timestep: t0)      // [1, C, h, w]
        let cond = try parts.encodePrompt(r.prompt)                                  // [1, 77, D]
        let cfg = ClassifierFreeGuidance.isEnabled(r.guidance)
        let ehs = cfg ? Tensor.cat0([try parts.encodePrompt(r.negativePrompt ?? ""), cond]) : cond
        for (i, t) in ts.enumerated() {
            let x = try sched.scaleModelInput(lat, timestep: t)
            let inp = cfg ? EditTensorOps.repeat0(x, 2) : x                          // [2, C, h, w]
            let eps = try unet.forward(inp, timesteps: [t], encoderHiddenStates: ehs)
            let e = cfg ? try ClassifierFreeGuidance.combine(eps, guidance: r.guidance) : eps      // [1, C, h, w]
            lat = try sched.step(modelOutput: e, timestep: t, sample: lat)
            if let m = latentMask {
                let src = i + 1 < ts.count ? try sched.addNoise(original: z0, noise: noise, timestep: ts[i + 1]) : z0
                EditMask.blend(lat, source: src, mask: m)
            }
            try progress.step(i + 1, of: ts.count)
        }
        return MethodOutput(latents: lat, blendMask: nil)
    }
}
