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

    /// Edits `image` as `options` say. The result has the input's size; its pixels follow `PixelPolicy`.
    public func edit(_ image: RGBImage, options: EditOptions, progress: ProgressReporter) throws -> EditResult {
        defer { parts.backend.shrinkScratch() }
        let r = try ResolvedEdit(options: options, unetInChannels: parts.unet.config.in_channels,
                                 imageWidth: image.width, imageHeight: image.height, defaults: parts.editDefaults)
        try checkRequest(width: image.width, height: image.height, options: options, masked: options.mask != nil, alpha: false)
        // inpaint on a large image with a small selection: the selection and its surroundings, at the model's size
        if r.method == .inpaint, !options.fullResolution, let m = options.mask,
           let crop = SelectionCrop(mask: m, native: parts.nativeSize) {
            var o = options
            o.mask = crop.cut(m)
            let inner = try editWhole(crop.cut(image), options: o, r: r, progress: progress)
            return EditResult(image: crop.paste(inner.image, into: image),
                              mask: inner.mask.map { crop.paste($0, width: image.width, height: image.height) },
                              latents: inner.latents)
        }
        return try editWhole(image, options: options, r: r, progress: progress)
    }

    /// The working-set check of `edit` for a width x height input, before anything is allocated (the C ABI calls it
    /// before it converts the caller's pixels): the diffusion at the work size (4 UNet items at most: p2p with a
    /// negative prompt; the work size is the caller's choice only at full resolution, else the model's) plus the
    /// pictures held at the input's size (`PixelPolicy.inputPlaneBytes`). An inpaint of a selection works on a crop
    /// at the model's size, never more than this.
    public func checkRequest(width: Int, height: Int, options: EditOptions, masked: Bool, alpha: Bool) throws {
        let plan = NativeResolutionPlan(width: width, height: height, native: parts.nativeSize,
                                        multiple: parts.sizeMultiple, fullResolution: options.fullResolution)
        try parts.checkWorkingSet?(plan.workWidth, plan.workHeight, 4,
                                   PixelPolicy.inputPlaneBytes(width: width, height: height, masked: masked, alpha: alpha),
                                   EditOptions.fullResolutionAdvice(options.fullResolution))
    }

    private func editWhole(_ image: RGBImage, options: EditOptions, r: ResolvedEdit, progress: ProgressReporter) throws -> EditResult {
        let f = parts.vaeFactor
        let plan = NativeResolutionPlan(width: image.width, height: image.height, native: parts.nativeSize,
                                        multiple: parts.sizeMultiple, fullResolution: options.fullResolution)
        try ControlPlan.validate(options.controls, unet: parts.unet)
        var controlOptions = options
        controlOptions.controls = try ControlPreprocessor.toWork(options.controls, plan: plan)
        // the inpaint preprocessor's mask at work size: only for ControlNets (an input-size float plane on the way)
        let controlMask = options.controls.isEmpty ? nil : options.mask.map { plan.maskToWork($0.pixels.map { Float($0) / 255 }) }
        let work = plan.toWork(image)
        // inpaint composites through the mask as given (the model saw exactly it); the other methods feather it
        let inpaint = r.method == .inpaint
        let feathered = options.mask.map { inpaint ? $0.pixels.map { Float($0) / 255 } : PixelPolicy.feather($0) }
        try progress.check()
        let z0 = try encode(work)                                                       // [1, C, h, w]
        let latentMask = feathered.map { PixelPolicy.latentMask($0, plan: plan, factor: f) }
        var we = WindowEdit(r: r, options: controlOptions, video: nil, window: VideoWindow(start: 0, count: 1, interval: 1),
                            works: [work], z0: z0, latentMask: latentMask, progress: progress, frame: nil, frames: 1,
                            controlMask: controlMask)
        if inpaint, let fm = feathered {
            we.inpaint = try InpaintCondition(editor: self, works: [work], mask: plan.maskToWork(fm))
        }
        let out = try denoise(we)
        let (result, mask) = try PixelPolicy.compose(decoded: try decode(out.latents), original: image, plan: plan,
                                                     userMask: options.mask, feathered: feathered, blendMask: out.blendMasks[0],
                                                     factor: f, reportMask: options.reportMask, reconstruction: { try self.decode(z0) })
        var res = EditResult(image: result, mask: mask, latents: out.latents)
        res.controlMaps = try out.controlMaps.map(ControlPreprocessor.picture)
        return res
    }

    /// Direct inversion's update on host tensors (tests): lat [2, C, h, w] = (source, target); the source is
    /// set to `ref` and the target moves by the same amount.
    static func pinSource(_ lat: Tensor, to ref: Tensor) {
        do { try LatentOps.pinSource(.cpu, lat, to: ref) } catch { preconditionFailure("pinSource: \(error)") }
    }

    // MARK: shared steps

    /// image -> scaled posterior-mean latents [1, C, h, w] (in backend memory: the engine's steps read them).
    func encode(_ image: RGBImage) throws -> Tensor {
        try parts.backend.onDevice(LatentScaling.scale(try parts.vae.encodeMean(try image.tensor(range: .signed)), parts.vae.config))
    }

    /// scaled latents [1, C, h, w] -> image.
    func decode(_ latents: Tensor) throws -> RGBImage {
        // the UNet's mapped pages, the provider's large op buffers and the free heap make room for the VAE decode
        parts.unet.weightTally.releaseMappedPages()
        parts.backend.shrinkScratch()
        HeapTrim.releaseFreePages()
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

    /// DDIM inversion of one image (the engine's inverter, cached): [x_0, x_t1, ..., x_T].
    func invert(_ work: RGBImage, z0: Tensor, sourcePrompt: String, cond: Tensor, steps: Int,
                progress: ProgressReporter, total: Int) throws -> [Tensor] {
        var o = EditOptions()
        o.method = .ddim; o.prompt = sourcePrompt; o.sourcePrompt = sourcePrompt; o.steps = steps
        let r = try ResolvedEdit(options: o, unetInChannels: parts.unet.config.in_channels, imageWidth: work.width,
                                 imageHeight: work.height, defaults: parts.editDefaults)
        let w = WindowEdit(r: r, options: o, video: nil, window: VideoWindow(start: 0, count: 1, interval: 1), works: [work],
                           z0: z0, latentMask: nil, progress: progress, frame: nil, frames: 1)
        return try invertWindow(w, cond: cond, span: ProgressSpan(reporter: progress, total: total))
    }
}
