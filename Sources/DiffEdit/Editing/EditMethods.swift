/// Every editing method as a setup of the one denoising loop (`Denoiser`), for a window of slots: an image
/// edit is a window of one slot with no cross-frame control; the consistent video method a `VideoWindow`
/// with `VideoAttentionController`.
///
/// - sdedit (Meng et al., ICLR 2022; diffusers' StableDiffusionImg2ImgPipeline): the last `strength`
///   fraction of the DDIM timesteps from add_noise(z0, noise, t_start); one noise for every frame.
/// - ddim: DDIM inversion with the source prompt at guidance 1, then DDIM sampling with the prompt under CFG.
/// - p2p (Hertz et al., ICLR 2023) on inverted latents with negative-prompt inversion (Miyake et al. 2023):
///   source and target branches, P2PController on the conditional items, LocalBlend, optional direct
///   inversion (Ju et al., ICLR 2024), the target's unconditional embedding mixed with the empty prompt's.
/// - instruct (Brooks et al., CVPR 2023; diffusers' StableDiffusionInstructPix2PixPipeline): unscaled image
///   latents concatenated on channels, [z, z, 0] under guidance.
/// - inpaint (diffusers' StableDiffusionInpaintPipeline, 9-channel UNets): sdedit's timesteps and noise (pure
///   noise at strength 1), the mask and the masked image's latents concatenated on channels (`InpaintCondition`).
/// Video adds a source branch to sdedit and ddim (its attention maps carry the edited keyframes' features to
/// the other frames) and the same batch layouts as the image path (3 items per slot under negative-prompt
/// inversion, 4 with a negative prompt for p2p).
struct WindowEdit {
    let r: ResolvedEdit
    let options: EditOptions
    /// nil: an image edit (one slot, inversion cache, user mask); else the video method's settings.
    let video: VideoOptions?
    let window: VideoWindow
    /// The slots' inputs at work size (the inversion cache key of an image edit).
    let works: [RGBImage]
    /// Scaled posterior-mean latents of `works`, [S, C, h, w].
    let z0: Tensor
    /// The user mask at latent size (image edits).
    let latentMask: [Float]?
    let progress: ProgressReporter
    /// Video: the frame progress reports carry, and the clip's length.
    let frame: Int?
    let frames: Int
    /// inpaint: the mask and masked-image latents of every slot.
    var inpaint: InpaintCondition? = nil
    /// The user mask at work size, unfeathered (the inpaint preprocessor).
    var controlMask: [Float]? = nil
}

struct WindowResult {
    /// The edited (target) latents [S, C, h, w].
    var latents: Tensor
    /// Per slot, LocalBlend's last mask at latent size (p2p), else nil.
    var blendMasks: [[Float]?]
    /// Per ControlNet, slot 0's control map [1, 3, H, W].
    var controlMaps: [Tensor] = []
}

extension ImageEditor {
    func denoise(_ w: WindowEdit) throws -> WindowResult {
        let be = parts.backend, r = w.r, unet = parts.unet
        let S = w.window.frames.count
        try ControlPlan.validate(w.options.controls, unet: unet)
        let (lh, lw) = (w.z0.shape[2], w.z0.shape[3])
        let twoBranch = r.method == .p2p || (w.video != nil && r.method != .instruct && r.method != .inpaint)
        let inverts = r.method == .ddim || r.method == .p2p
        // DDIM on the checkpoint's betas; an EDM checkpoint (CosXL: EDMEulerScheduler) samples with its own schedule,
        // which has no DDIM inversion
        let edm = parts.schedulerConfig._class_name == "EDMEulerScheduler"
        if edm && (inverts || twoBranch) {
            throw DiffEditError.unsupported("method: \(r.method.rawValue)\(w.video != nil ? " video" : "") needs DDIM inversion or a noised source branch; this checkpoint samples with an EDM schedule (EDMEulerScheduler, CosXL): use \(w.video != nil ? "instruct or inpaint" : "sdedit, instruct or inpaint")")
        }
        let sched: Scheduler = edm ? try EDMEulerScheduler(config: parts.schedulerConfig) : try DDIMScheduler(config: parts.schedulerConfig)
        sched.backend = be
        try sched.setTimesteps(r.steps)
        let denoiser = Denoiser(unet: unet, backend: be)
        var span = ProgressSpan(reporter: w.progress, total: inverts ? 2 * r.steps : r.steps, frame: w.frame, frames: w.frames)

        // Prompt embeddings (computed once per edit): hidden [1, L, D], SDXL also pooled [1, P].
        let tgt = try parts.condition(r.prompt)
        let src = inverts || twoBranch ? try parts.condition(r.sourcePrompt) : tgt
        let neg = { try self.parts.condition(r.negativePrompt) }                        // nil: "" (SDXL: zeros)
        // SDXL's added conditioning of a list of items, per slot: time ids at the work size
        let (workW, workH) = (lw * parts.vaeFactor, lh * parts.vaeFactor)
        let added = { (items: [PromptEmbedding]) -> Tensor? in
            try unet.addedConditioning(pooled: items.map(\.pooled), width: workW, height: workH)   // [G, P + 6 td]
        }

        // Starting latents, timesteps, the source trajectory.
        var timesteps = sched.timesteps
        var start: Tensor                                                               // [S, C, h, w]
        var source: SourceTrajectory? = nil
        var traj: [Tensor] = []
        switch r.method {
        case .sdedit, .instruct, .inpaint:
            let shape = [1, unet.config.out_channels, lh, lw]
            let n1 = try be.onDevice(try noise(w.options, shape: shape))                // one noise for all frames
            let nz = S == 1 ? n1 : try LatentOps.repeat0(be, n1, S)                       // [S, C, h, w]
            if r.method == .sdedit || r.method == .inpaint {
                timesteps = try sched.img2imgTimesteps(strength: r.strength).timesteps
                if r.method == .inpaint && r.strength == 1 {                             // diffusers: pure noise at strength 1
                    start = sched.initNoiseSigma == 1 ? nz : try be.lincomb([(sched.initNoiseSigma, nz)])
                } else if let t0 = timesteps.first {
                    start = try sched.addNoise(original: w.z0, noise: nz, timestep: t0)
                } else {
                    // strength below 1/steps (1e-30 is inside (0, 1]) leaves no step: no noise is added and the
                    // result is the input's VAE round trip, the limit of SDEdit as strength goes to 0
                    start = w.z0
                }
                span.total = timesteps.count
            } else {
                start = sched.initNoiseSigma == 1 ? nz : try be.lincomb([(sched.initNoiseSigma, nz)])
            }
            source = SourceTrajectory(kind: .noised(z0: w.z0, noise: nz, timesteps: timesteps, scheduler: sched))
        case .ddim, .p2p:
            traj = try invertWindow(w, cond: src.hidden, added: try added([src]), span: span)
            start = traj[traj.count - 1]                                                // x_T
            source = SourceTrajectory(kind: .inverted(traj))
            span.offset = r.steps
        case .auto:
            preconditionFailure("method auto is resolved by ResolvedEdit")
        }

        // The batch layout and each item's conditioning.
        let layout: BatchLayout
        let items: [PromptEmbedding]                                                    // per item [1, L, D] (+ [1, P])
        var imageCondition: Tensor? = nil
        switch r.method {
        case .instruct:
            layout = .instruct(r.guidance, image: r.imageGuidance)
            if layout.items == 3 { let u = try neg(); items = [tgt, u, u] } else { items = [tgt] }
            imageCondition = try instructCondition(w.z0, items: layout.items)
        case .p2p where r.negativePrompt != nil:
            layout = .twoBranchFull(r.guidance)
            let u = try neg()
            items = [u, u, src, tgt]
        case .p2p:
            layout = .twoBranchNPI(r.guidance)
            let empty = { try self.parts.condition("") }
            let u = PromptEmbedding(hidden: try r.targetUncond(source: src.hidden, empty: { try empty().hidden }),
                                    pooled: try src.pooled.map { p in try r.targetUncond(source: p, empty: { try empty().pooled ?? p }) })
            items = [u, src, tgt]
        default:
            layout = twoBranch ? .twoBranchNPI(r.guidance) : .cfg(r.guidance)
            items = twoBranch ? [try neg(), src, tgt] : (layout.items == 2 ? [try neg(), tgt] : [tgt])
        }
        if r.method == .inpaint {
            guard let ic = w.inpaint else { preconditionFailure("inpaint without its InpaintCondition") }
            imageCondition = try ic.perItem(layout.items, backend: be)                  // [S * G, 1 + C, h, w]
        }
        let perSlot = Tensor.cat0(items.map(\.hidden))                                  // [G, L, D] (host, once per edit)
        var plan = DenoisePlan(scheduler: sched, timesteps: timesteps, slots: S, layout: layout,
                               embeddings: S == 1 ? try be.onDevice(perSlot) : try LatentOps.repeat0(be, perSlot, S))
        if let a = try added(items) { plan.added = S == 1 ? try be.onDevice(a) : try LatentOps.repeat0(be, a, S) }  // [S * G, P + 6 td]
        plan.imageCondition = imageCondition
        plan.source = source
        plan.sourceBranchIsReference = twoBranch && r.method == .sdedit

        // Attention control: p2p per slot, the video method's cross-frame attention and propagation.
        var p2p: [P2PController]? = nil
        if r.method == .p2p {
            let alignment = try parts.p2pAlignment(r, reweight: w.options.reweight)
            let bh = P2PController.blendHeight(unet: unet.config, latentHeight: lh)
            p2p = (0..<S).map { _ in
                P2PController(alignment: alignment, steps: r.steps, crossReplace: r.crossReplace, selfReplace: r.selfReplace,
                              blendHeight: bh, localBlend: w.options.localBlend, blendThreshold: r.blendThreshold,
                              blendDilation: r.blendDilation, backend: be, layout: layout.p2pLayout!)
            }
            plan.directInversion = r.directInversion
            if p2p!.contains(where: { $0.localBlend != nil }) { plan.localBlends = p2p!.compactMap { $0.localBlend } }
        }
        if let v = w.video {
            let propEnd = Int((Double(v.propagation) * Double(timesteps.count)).rounded())
            let ctrl = VideoAttentionController(group: layout.items, window: w.window, sourceBranch: layout.propagationSources,
                                                propagationEnd: propEnd, crossFrame: v.crossFrameAttention, p2p: p2p)
            plan.controller = ctrl
            if v.tokenMatching, v.propagation > 0 {
                plan.tokenMatching = (VideoEditor.tokenMatches(w.window, z0: w.z0), w.window, propEnd)
            }
        } else {
            plan.controller = p2p?.first
        }
        if let m = w.latentMask, r.method != .inpaint { plan.userMask = try LatentOps.plane(be, m, height: lh, width: lw) }
        var maps: [[Tensor]] = []                                                       // per net, per slot [1, 3, H, W]
        if !w.options.controls.isEmpty {
            maps = try w.options.controls.enumerated().map { i, c in
                try w.works.map { try ControlPreprocessor.map(c.source, work: $0, mask: w.controlMask, field: "controls[\(i)]") }
            }
            plan.controls = try ControlPlan(specs: w.options.controls, maps: maps, layout: layout, slots: S,
                                            embeddings: plan.embeddings, added: plan.added, latentSize: (lh, lw),
                                            guessMode: w.options.controlGuessMode, backend: be)
        }

        let initial = twoBranch ? try interleave(start, S) : start                       // [S * B, C, h, w]
        let lat = try denoiser.run(plan, latents: initial, progress: span)
        let out = try LatentOps.branch(be, lat, layout.branches - 1, of: layout.branches)  // [S, C, h, w]
        let masks: [[Float]?] = (0..<S).map { s in p2p?[s].localBlend?.lastMask.map { Array($0.buffer) } }
        return WindowResult(latents: out, blendMasks: masks, controlMaps: maps.map { $0[0] })
    }

    /// The inversion of a window (one inverter for image and video); image edits are cached.
    func invertWindow(_ w: WindowEdit, cond: Tensor, added: Tensor? = nil, span: ProgressSpan) throws -> [Tensor] {
        let S = w.window.frames.count
        let denoiser = Denoiser(unet: parts.unet, backend: parts.backend)
        var s = span
        s.offset = 0
        if let v = w.video {
            let ctrl = VideoAttentionController(group: 1, window: w.window, sourceBranch: [:], propagationEnd: 0,
                                                crossFrame: v.crossFrameAttention, p2p: nil)
            return try denoiser.invert(w.z0, cond: try LatentOps.repeat0(parts.backend, cond, S),
                                       added: try added.map { try LatentOps.repeat0(parts.backend, $0, S) }, steps: w.r.steps,
                                       schedulerConfig: parts.schedulerConfig, controller: ctrl, progress: s)
        }
        let key = InversionCache.Key(imageHash: InversionCache.hash(w.works[0]), width: w.works[0].width,
                                     height: w.works[0].height, steps: w.r.steps, sourcePrompt: w.r.sourcePrompt,
                                     scheduler: "\(parts.schedulerConfig)", weights: parts.weightsGeneration())
        if let t = inversionCache.get(key) { return t }
        let traj = try denoiser.invert(w.z0, cond: cond, added: added, steps: w.r.steps, schedulerConfig: parts.schedulerConfig,
                                       controller: nil, progress: s)
        inversionCache.put(key, traj)
        return traj
    }

    /// [a0, a0, a1, a1, ...]: both branches of every slot start from the same latents.
    private func interleave(_ x: Tensor, _ slots: Int) throws -> Tensor {
        let be = parts.backend, item = x.count / slots
        let y = try be.output([2 * slots] + Array(x.shape.dropFirst()))
        try be.copyStrided(shape: [slots, 2, item], from: x, fromStrides: [item, 0, 1], to: y, toStrides: [2 * item, item, 1])
        return y
    }

    /// InstructPix2Pix's image conditioning per UNet item: the unscaled latents of each slot, [z, z, 0]
    /// under guidance (else [z]), [S * G, C, h, w].
    private func instructCondition(_ z0: Tensor, items: Int) throws -> Tensor {
        let be = parts.backend
        // InstructPix2Pix conditions on unscaled latents; CosXL-Edit (is_cosxl_edit) on scaled ones
        let z = parts.cosxlEdit ? z0 : try be.onDevice(LatentScaling.unscale(z0, parts.vae.config))   // [S, C, h, w]
        if items == 1 { return z }
        let S = z.shape[0], item = z.count / S
        let y = try be.onDevice(Tensor.allocate([S * items] + Array(z.shape.dropFirst()), zeroed: true, what: "instruct's image latents"))  // zeros: the uncond item
        try be.copyStrided(shape: [S, 2, item], from: z, fromStrides: [item, 0, 1], to: y, toStrides: [items * item, item, 1])
        return y
    }
}
