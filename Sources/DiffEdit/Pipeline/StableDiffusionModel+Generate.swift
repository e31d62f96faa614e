/// Text-to-image, step for step as diffusers' StableDiffusionPipeline.__call__, run by the editing engine's
/// one denoising loop (`Denoiser`, batch layout `BatchLayout.cfg`):
///   embeds = [negative; prompt] (only the prompt when guidance <= 1),
///   x = noise * init_noise_sigma,
///   for t in timesteps: eps = UNet(scale_model_input([x; x], t), t, embeds); eps = u + g (c - u);
///                       x = scheduler.step(eps, t, x),
///   image = VAE.decode(x / scaling_factor).
extension StableDiffusionModel {
    public func generate(_ o: GenerateOptions, progress: ProgressReporter = ProgressReporter()) throws -> GenerateResult {
        defer { backend.shrinkScratch() }
        // Validate everything before any heavy work.
        let width = o.width ?? nativeSize, height = o.height ?? nativeSize
        try checkImageSize(width: width, height: height)
        try ClassifierFreeGuidance.validate(o.guidance)
        try ControlPlan.validate(o.controls, unet: unet)
        for (i, c) in o.controls.enumerated() {
            guard case .image = c.source else {
                throw DiffEditError.invalidArgument("controls[\(i)]: generate takes only a control image (the preprocessors need an input image: use edit)")
            }
        }
        try checkWorkingSet(width: width, height: height, unetItems: BatchLayout.cfg(o.guidance).items, limit: o.maxMemory)
        guard unetConfig.in_channels == latentChannels else {
            throw DiffEditError.unsupported("\(origin): text-to-image needs a \(latentChannels)-channel UNet; this one takes \(unetConfig.in_channels) input channels (\(kind) checkpoint: use `diffedit edit`)")
        }
        let scheduler = try SchedulerFactory.make(name: o.scheduler, config: schedulerConfig)
        guard !(scheduler is DDIMInverseScheduler) else {
            throw DiffEditError.invalidArgument("scheduler: ddim-inverse inverts images; generate with ddim, euler, euler-a, dpmpp-2m or dpmpp-2m-karras")
        }
        try scheduler.setTimesteps(o.steps)
        let f = vaeFactor
        let shape = [1, latentChannels, height / f, width / f]
        let noise: Tensor
        // one generator for the initial noise and the steps' noise (Euler ancestral), as diffusers' pipelines
        var rng = RNG(seed: o.seed)
        if let n = o.initNoise {
            guard n.shape == shape else {
                throw DiffEditError.invalidArgument("init noise: shape \(n.shape) does not match the latents \(shape) of a \(width)x\(height) image")
            }
            guard n.buffer.allSatisfy({ $0.isFinite }) else {
                throw DiffEditError.invalidArgument("init noise: contains NaN or infinite values")
            }
            noise = n
        } else {
            noise = rng.normal(shape)
        }
        if let e = scheduler as? EulerDiscreteScheduler, e.ancestral { e.rng = rng }
        try progress.check()

        let layout = BatchLayout.cfg(o.guidance)
        let conds = layout.items == 2 ? [try encodeCondition(o.negativePrompt), try encodeCondition(o.prompt)]
                                      : [try encodeCondition(o.prompt)]
        let embeds = Tensor.cat0(conds.map(\.hidden))                                         // [G, 77, D]
        let sigma0 = scheduler.initNoiseSigma
        let x0 = try backend.lincomb([(sigma0, try backend.onDevice(noise))])                     // [1, C, h, w]
        var plan = DenoisePlan(scheduler: scheduler, timesteps: scheduler.timesteps, slots: 1, layout: layout,
                               embeddings: embeds)
        plan.added = try addedConditioning(pooled: conds.map(\.pooled), width: width, height: height)   // SDXL: [G, P + 6 td]
        let blank = RGBImage(width: width, height: height)
        let maps = try o.controls.enumerated().map { i, c in
            [try ControlPreprocessor.map(c.source, work: blank, mask: nil, field: "controls[\(i)]")]   // [1, 3, H, W]
        }
        if !o.controls.isEmpty {
            plan.controls = try ControlPlan(specs: o.controls, maps: maps, layout: layout, slots: 1, embeddings: embeds, added: plan.added,
                                            latentSize: (shape[2], shape[3]), guessMode: o.controlGuessMode, backend: backend)
        }
        let x = try Denoiser(unet: unet, backend: backend)
            .run(plan, latents: x0, progress: ProgressSpan(reporter: progress, total: scheduler.timesteps.count))
        let decoded = try decodeLatents(x)                                           // [1, 3, H, W]
        let image = try RGBImage(tensor: decoded, range: .signed)
        return GenerateResult(image: image, latents: x, decoded: decoded,
                              controlMaps: try maps.map { try ControlPreprocessor.picture($0[0]) })
    }

    /// The same with plain arguments; returns (image, final latents).
    public func generate(prompt: String, negativePrompt: String? = nil, width: Int? = nil, height: Int? = nil,
                         steps: Int = 30, guidance: Float = 7.5, scheduler: String? = nil, seed: UInt64 = 0,
                         initNoise: Tensor? = nil, progress: ProgressReporter = ProgressReporter())
        throws -> (image: RGBImage, latents: Tensor)
    {
        var o = GenerateOptions(prompt: prompt)
        o.negativePrompt = negativePrompt; o.width = width; o.height = height; o.steps = steps
        o.guidance = guidance; o.scheduler = scheduler; o.seed = seed; o.initNoise = initNoise
        let r = try generate(o, progress: progress)
        return (r.image, r.latents)
    }
}
