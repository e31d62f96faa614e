import FoundationEssentials

/// Text-guided image editing (issue 4): SDEdit, DDIM inversion, Prompt-to-Prompt with LocalBlend,
/// InstructPix2Pix; user masks; native-resolution processing; an inversion cache.
///
/// One editor serves one editing session at a time (the C ABI's context); the model may be shared.
public final class ImageEditor {
    public let parts: EditModelParts
    /// Inverted trajectories of recent edits (ddim, p2p).
    public let inversionCache = InversionCache()

    /// The model the parts come from (kept alive: the parts' prompt encoder refers to it).
    public let model: StableDiffusionModel?

    public init(parts: EditModelParts) {
        self.parts = parts
        self.model = nil
    }

    public init(model: StableDiffusionModel) {
        self.parts = model.editParts
        self.model = model
    }

    /// What a method run returns at the work size.
    struct MethodOutput {
        var latents: Tensor          // [1, C, h, w] final latents (scaled, before decoding)
        var blendMask: [Float]?      // LocalBlend mask at latent size (0/1), p2p only
    }

    /// Edits `image` as `options` say. The result has the input's size.
    public func edit(_ image: RGBImage, options: EditOptions, progress: ProgressReporter) throws -> EditResult {
        let r = try ResolvedEdit(options: options, unetInChannels: parts.unet.config.in_channels,
                                 imageWidth: image.width, imageHeight: image.height, defaults: parts.editDefaults)
        let (W, H) = (image.width, image.height)
        let f = parts.vaeFactor
        let plan = NativeResolutionPlan(width: W, height: H, native: parts.nativeSize, multiple: parts.sizeMultiple,
                                        fullResolution: options.fullResolution)
        let work = plan.toWork(image)
        let fullMask = options.mask.map { EditMask.feathered($0, radius: EditMask.featherRadius(width: W, height: H)) }
        let latentMask = fullMask.map {
            EditMask.areaDownsample(plan.maskToWork($0), width: plan.workWidth, height: plan.workHeight, factor: f)
        }
        try progress.check()

        let out: MethodOutput
        switch r.method {
        case .sdedit: out = try runSDEdit(r, work, latentMask: latentMask, options: options, progress: progress)
        case .ddim: out = try runDDIM(r, work, latentMask: latentMask, options: options, progress: progress)
        case .p2p: out = try runP2P(r, work, latentMask: latentMask, options: options, progress: progress)
        case .instruct: out = try runInstruct(r, work, latentMask: latentMask, options: options, progress: progress)
        case .auto: preconditionFailure("method auto is resolved by ResolvedEdit")
        }
        let decoded = try decode(out.latents)

        // the region the edit may change, at work size (nil: everywhere)
        var region: [Float]? = nil
        var maskOut: [Float]? = fullMask
        if fullMask == nil, let bm = out.blendMask {
            let (lw, lh) = (plan.workWidth / f, plan.workHeight / f)
            let px = EditMask.upsampleNearest(bm, width: lw, height: lh, factor: f)
            maskOut = plan.planeToInput(px)
            region = EditMask.boxBlur(EditMask.dilate(px, width: plan.workWidth, height: plan.workHeight, radius: f),
                                      width: plan.workWidth, height: plan.workHeight, radius: max(f / 2, 1))
        }
        var alpha: [Float]? = nil
        if plan.resized {
            if let fm = fullMask {
                alpha = fm
            } else {
                // where the edit differs from the VAE's reconstruction of the input (so the VAE's own
                // error does not count as a change and unchanged areas keep their original pixels)
                let rg = try region ?? ImageEditor.changedRegion(decoded, decode(encode(work)), radius: f)
                alpha = plan.planeToInput(rg)
            }
        }
        let result = plan.toInput(edited: decoded, original: image, alpha: alpha)
        let maskImage = EditMask.gray(maskOut ?? [Float](repeating: 1, count: W * H), width: W, height: H)
        return EditResult(image: result, mask: maskImage, latents: out.latents)
    }

    /// Where two images differ by more than 10/255 in any channel, dilated and softened.
    static func changedRegion(_ a: RGBImage, _ b: RGBImage, radius: Int) -> [Float] {
        let n = a.width * a.height
        var d = [Float](repeating: 0, count: n)
        for i in 0..<n {
            for c in 0..<3 where abs(Int(a.pixels[3 * i + c]) - Int(b.pixels[3 * i + c])) > 10 { d[i] = 1 }
        }
        let dil = EditMask.dilate(d, width: a.width, height: a.height, radius: radius)
        return EditMask.boxBlur(dil, width: a.width, height: a.height, radius: max(radius / 2, 1))
    }

    // MARK: shared steps

    /// image -> scaled posterior-mean latents [1, C, h, w].
    func encode(_ image: RGBImage) throws -> Tensor {
        LatentScaling.scale(try parts.vae.encodeMean(image.tensor(range: .signed)), parts.vae.config)
    }

    /// scaled latents [1, C, h, w] -> image.
    func decode(_ latents: Tensor) throws -> RGBImage {
        let x = try parts.vae.decode(LatentScaling.unscale(latents, parts.vae.config))   // [1, 3, H, W]
        return try RGBImage(tensor: x, range: .signed)
    }

    /// The user's noise (checked against `shape`) or seeded standard-normal noise.
    func noise(_ options: EditOptions, shape: [Int]) throws -> Tensor {
        if let n = options.initNoise {
            guard n.shape == shape || (n.count == shape.reduce(1, *) && n.shape.last == shape.last) else {
                throw DiffEditError.invalidArgument("initNoise: shape \(n.shape) does not match the latents \(shape)")
            }
            return n.reshaped(shape)
        }
        return parts.randomNormal(shape, options.seed)
    }

    /// DDIM inversion (DDIMInverseScheduler, condition `cond`, guidance 1): [x_0, x_t1, ..., x_T], cached.
    func invert(_ work: RGBImage, z0: Tensor, sourcePrompt: String, cond: Tensor, steps: Int,
                progress: ProgressReporter, total: Int) throws -> [Tensor] {
        let key = InversionCache.Key(imageHash: InversionCache.hash(work), width: work.width, height: work.height,
                                     steps: steps, sourcePrompt: sourcePrompt, scheduler: "\(parts.schedulerConfig)")
        if let t = inversionCache.get(key) { return t }
        let inv = try DDIMInverseScheduler(config: parts.schedulerConfig)
        try inv.setTimesteps(steps)
        var lat = z0
        var traj = [z0]
        for (k, t) in inv.timesteps.enumerated() {
            let eps = try parts.unet.forward(lat, timesteps: [t], encoderHiddenStates: cond)   // [1, C, h, w]
            lat = try inv.step(modelOutput: eps, timestep: t, sample: lat)                      // x_{t+1}
            traj.append(lat)
            try progress.step(k + 1, of: total)
        }
        inversionCache.put(key, traj)
        return traj
    }
}
