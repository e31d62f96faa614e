/// One consistent-mode window: encode, (invert), denoise all slots in one UNet batch, decode.
extension VideoEditor {
    /// Edits the slots of `window` (images at input size, one per slot) and returns the emitted slots'
    /// results at input size, in order.
    func runWindow(_ window: VideoWindow, images: [RGBImage], r: ResolvedEdit, plan: NativeResolutionPlan,
                   options: VideoOptions, totalFrames: Int, progress: ProgressReporter) throws -> [RGBImage] {
        precondition(images.count == window.frames.count, "runWindow: \(images.count) images for \(window.frames.count) slots")
        let works = images.map { plan.toWork($0) }
        var zs: [Tensor] = []
        for w in works {
            zs.append(try imageEditor.encode(w))                                      // [1, C, h, w]
            try progress.check()
        }
        let z0 = Tensor.cat0(zs)                                                       // [S, C, h, w]
        let label = window.frames.last ?? 0
        let lat: Tensor
        if r.method == .instruct {
            lat = try windowInstruct(window, z0: z0, r: r, options: options, label: label, total: totalFrames, progress: progress)
        } else {
            lat = try windowTwoBranch(window, z0: z0, r: r, options: options, label: label, total: totalFrames, progress: progress)
        }
        var outs: [RGBImage] = []
        for s in 0..<window.frames.count where window.emit[s] {
            let dec = try imageEditor.decode(lat.slice0(s, 1).copy())                 // work size
            var alpha: [Float]? = nil
            if plan.resized {
                alpha = plan.planeToInput(ImageEditor.changedRegion(dec, works[s], radius: parts.vaeFactor))
            }
            outs.append(plan.toInput(edited: dec, original: images[s], alpha: alpha))
        }
        return outs
    }

    /// Batched DDIM inversion of the window's latents z0 [S, C, h, w] with cross-frame attention: the
    /// trajectory [x_0, x_t1, ..., x_T], each [S, C, h, w].
    func invertWindow(_ window: VideoWindow, z0: Tensor, cond: Tensor, steps: Int, options: VideoOptions,
                      label: Int, total: Int, progress: ProgressReporter) throws -> [Tensor] {
        let s = z0.shape[0]
        let inv = try DDIMInverseScheduler(config: parts.schedulerConfig)
        try inv.setTimesteps(steps)
        let ctrl = VideoAttentionController(group: 1, window: window, sourceBranch: [:], propagationEnd: 0,
                                            crossFrame: options.crossFrameAttention, p2p: nil)
        let ehs = EditTensorOps.repeat0(cond, s)                                       // [S, 77, D]
        var lat = z0
        var traj = [z0]
        for (k, t) in inv.timesteps.enumerated() {
            let eps = try parts.unet.forward(lat, timesteps: [t], encoderHiddenStates: ehs, controller: ctrl)  // [S, C, h, w]
            lat = try inv.step(modelOutput: eps, timestep: t, sample: lat)             // x_{t+1}
            traj.append(lat)
            try progress.step(k + 1, of: 2 * steps, frame: label, frames: total)
        }
        return traj
    }

    /// sdedit, ddim, p2p: per slot a source and a target branch, batch per slot
    /// [uncond src, uncond tgt, cond src, cond tgt]. Returns the target latents [S, C, h, w].
    func windowTwoBranch(_ window: VideoWindow, z0: Tensor, r: ResolvedEdit, options: VideoOptions,
                         label: Int, total: Int, progress: ProgressReporter) throws -> Tensor {
        let unet = parts.unet
        let S = window.frames.count
        let item = z0.count / S
        let src = try parts.encodePrompt(r.sourcePrompt)                              // [1, 77, D]
        let tgt = try parts.encodePrompt(r.prompt)                                    // [1, 77, D]
        let sched = try DDIMScheduler(config: parts.schedulerConfig)
        try sched.setTimesteps(r.steps)
        let ts: [Float]
        let uncondSrc: Tensor, uncondTgt: Tensor
        var lat: Tensor                                                                // [2S, C, h, w] slot-major [src, tgt]
        var noise: Tensor? = nil                                                       // [S, C, h, w] (sdedit)
        var traj: [Tensor] = []                                                        // inversion (ddim, p2p)
        var done = 0, totalSteps = 0
        switch r.method {
        case .sdedit:
            ts = try sched.img2imgTimesteps(strength: r.strength).timesteps
            guard let t0 = ts.first else {
                throw DiffEditError.invalidArgument("strength: \(r.strength) with \(r.steps) steps leaves no denoising step (raise strength or steps)")
            }
            let n1 = parts.randomNormal([1] + Array(z0.shape.dropFirst()), options.edit.seed)   // one noise for all frames
            let nz = EditTensorOps.repeat0(n1, S)
            noise = nz
            let x = try sched.addNoise(original: z0, noise: nz, timestep: t0)         // [S, C, h, w]
            lat = VideoEditor.interleave(x, x)
            uncondSrc = src
            uncondTgt = try parts.encodePrompt(r.negativePrompt ?? "")
            totalSteps = ts.count
        case .ddim, .p2p:
            ts = sched.timesteps
            totalSteps = 2 * r.steps
            traj = try invertWindow(window, z0: z0, cond: src, steps: r.steps, options: options, label: label,
                                    total: total, progress: progress)
            let xT = traj[traj.count - 1]
            done = r.steps
            lat = VideoEditor.interleave(xT, xT)
            if r.method == .p2p {
                if let neg = r.negativePrompt {
                    uncondSrc = try parts.encodePrompt(neg)
                    uncondTgt = uncondSrc
                } else {                                                                // as ImageEditor.runP2P
                    uncondSrc = src
                    uncondTgt = try r.targetUncond(source: src, empty: { try parts.encodePrompt("") })
                }
            } else {
                uncondSrc = src                                                         // source branch: eps(src)
                uncondTgt = try parts.encodePrompt(r.negativePrompt ?? "")
            }
        default:
            preconditionFailure("windowTwoBranch: method \(r.method)")
        }
        var p2p: [P2PController]? = nil
        if r.method == .p2p {
            let alignment = try parts.p2pAlignment(r, reweight: options.edit.reweight)
            let bh = P2PController.blendHeight(unet: unet.config, latentHeight: z0.shape[2])
            p2p = (0..<S).map { _ in
                P2PController(alignment: alignment, steps: r.steps, crossReplace: r.crossReplace, selfReplace: r.selfReplace,
                              blendHeight: bh, localBlend: options.edit.localBlend, blendThreshold: r.blendThreshold,
                              blendDilation: r.blendDilation, backend: parts.backend)
            }
        }
        let n = ts.count
        let propEnd = Int((Double(options.propagation) * Double(n)).rounded())
        let ctrl = VideoAttentionController(group: 4, window: window, sourceBranch: [1: 0, 3: 2], propagationEnd: propEnd,
                                            crossFrame: options.crossFrameAttention, p2p: p2p)
        let ehs = EditTensorOps.repeat0(Tensor.cat0([uncondSrc, uncondTgt, src, tgt]), S)   // [4S, 77, D]
        let matches = tokenMatches(window, z0: z0, options: options)
        let g = r.guidance
        for (i, t) in ts.enumerated() {
            ctrl.step = i
            let inp = Tensor(shape: [4 * S] + Array(z0.shape.dropFirst()), zeroed: false)   // [4S, C, h, w]
            for s in 0..<S {
                for b in 0..<4 { (inp.data + (4 * s + b) * item).update(from: lat.data + (2 * s + b % 2) * item, count: item) }
            }
            let eps = try unet.forward(inp, timesteps: [t], encoderHiddenStates: ehs, controller: ctrl)   // [4S, C, h, w]
            let e = Tensor(shape: lat.shape, zeroed: false)                            // [2S, C, h, w]
            for s in 0..<S {
                for b in 0..<2 {
                    let u = eps.data + (4 * s + b) * item, c = eps.data + (4 * s + 2 + b) * item
                    let y = e.data + (2 * s + b) * item
                    for k in 0..<item { y[k] = u[k] + g * (c[k] - u[k]) }
                }
            }
            lat = try sched.step(modelOutput: e, timestep: t, sample: lat)
            if let nz = noise {
                // sdedit: the source branch is the source latents noised to the next timestep (shared noise)
                let srcNext = i + 1 < n ? try sched.addNoise(original: z0, noise: nz, timestep: ts[i + 1]) : z0
                for s in 0..<S { (lat.data + 2 * s * item).update(from: srcNext.data + s * item, count: item) }
            }
            if let ctrls = p2p {
                if r.directInversion {                                                 // as ImageEditor.runP2P, per slot
                    let ref = traj[n - 1 - i]                                          // [S, C, h, w]
                    for s in 0..<S { ImageEditor.pinSource(lat.slice0(2 * s, 2), to: ref.slice0(s, 1)) }
                }
                for (s, c) in ctrls.enumerated() { c.localBlend?.apply(lat.slice0(2 * s, 2)) }
            }
            if i < propEnd { VideoEditor.applyMatches(matches, window: window, x: lat, stride: 2, offset: 1) }
            try progress.step(done + i + 1, of: totalSteps, frame: label, frames: total)
        }
        let out = Tensor(shape: z0.shape, zeroed: false)                               // [S, C, h, w]
        for s in 0..<S { (out.data + s * item).update(from: lat.data + (2 * s + 1) * item, count: item) }
        return out
    }

    /// InstructPix2Pix per slot with shared noise and cross-frame attention; batch per slot
    /// [text, image-only, uncond] as in ImageEditor.runInstruct. Returns latents [S, C, h, w].
    func windowInstruct(_ window: VideoWindow, z0: Tensor, r: ResolvedEdit, options: VideoOptions,
                        label: Int, total: Int, progress: ProgressReporter) throws -> Tensor {
        let unet = parts.unet
        let S = window.frames.count
        let imageLatents = LatentScaling.unscale(z0, parts.vae.config)                 // [S, 4, h, w]
        let shape = [1, unet.config.out_channels, z0.shape[2], z0.shape[3]]
        let item = shape.reduce(1, *)
        let sched = try DDIMScheduler(config: parts.schedulerConfig)
        try sched.setTimesteps(r.steps)
        let ts = sched.timesteps
        let n1 = parts.randomNormal(shape, options.edit.seed)                          // one noise for all frames
        var lat = EditTensorOps.repeat0(n1, S)                                         // [S, C, h, w]
        if sched.initNoiseSigma != 1 { for i in 0..<lat.count { lat.data[i] *= sched.initNoiseSigma } }
        let text = try parts.encodePrompt(r.prompt)
        let cfg = r.guidance > 1 && r.imageGuidance >= 1
        let group = cfg ? 3 : 1
        let ehs: Tensor, cond: Tensor
        let ci = imageLatents.count / S
        if cfg {
            let neg = try parts.encodePrompt(r.negativePrompt ?? "")
            ehs = EditTensorOps.repeat0(Tensor.cat0([text, neg, neg]), S)              // [3S, 77, D]
            cond = Tensor(shape: [3 * S] + Array(imageLatents.shape.dropFirst()))      // [3S, 4, h, w]; uncond image = 0
            for s in 0..<S {
                for b in 0..<2 { (cond.data + (3 * s + b) * ci).update(from: imageLatents.data + s * ci, count: ci) }
            }
        } else {
            ehs = EditTensorOps.repeat0(text, S)
            cond = imageLatents
        }
        let ctrl = VideoAttentionController(group: group, window: window, sourceBranch: [:], propagationEnd: 0,
                                            crossFrame: options.crossFrameAttention, p2p: nil)
        let matches = tokenMatches(window, z0: z0, options: options)
        let propEnd = Int((Double(options.propagation) * Double(ts.count)).rounded())
        for (i, t) in ts.enumerated() {
            let x = try sched.scaleModelInput(lat, timestep: t)                        // [S, C, h, w]
            let xs = Tensor(shape: [group * S] + Array(x.shape.dropFirst()), zeroed: false)
            for s in 0..<S {
                for b in 0..<group { (xs.data + (group * s + b) * item).update(from: x.data + s * item, count: item) }
            }
            let inp = EditTensorOps.catChannels(xs, cond)                              // [3S, 8, h, w]
            let eps = try unet.forward(inp, timesteps: [t], encoderHiddenStates: ehs, controller: ctrl)   // [3S, 4, h, w]
            let e: Tensor
            if cfg {
                e = Tensor(shape: lat.shape, zeroed: false)
                let g = r.guidance, gi = r.imageGuidance
                for s in 0..<S {
                    let pt = eps.data + 3 * s * item, pi = pt + item, pu = pt + 2 * item, y = e.data + s * item
                    for k in 0..<item { y[k] = pu[k] + g * (pt[k] - pi[k]) + gi * (pi[k] - pu[k]) }
                }
            } else {
                e = eps
            }
            lat = try sched.step(modelOutput: e, timestep: t, sample: lat)
            if i < propEnd { VideoEditor.applyMatches(matches, window: window, x: lat, stride: 1, offset: 0) }
            try progress.step(i + 1, of: ts.count, frame: label, frames: total)
        }
        return lat
    }

    /// Per slot, the token correspondences to its reference slot from the source latents z0 [S, C, h, w]
    /// (nil: anchor, or matching off).
    func tokenMatches(_ window: VideoWindow, z0: Tensor, options: VideoOptions) -> [VideoTokenMatch?] {
        let (c, h, w) = (z0.shape[1], z0.shape[2], z0.shape[3])
        let item = c * h * w
        return window.reference.enumerated().map { s, ref in
            guard options.tokenMatching, options.propagation > 0, let r = ref else { return nil }
            return VideoTokenMatch(a: z0.data + s * item, b: z0.data + r * item, channels: c, height: h, width: w,
                                   radius: max(2, min(h, w) / 4))
        }
    }

    /// Copies matched tokens of slot s from its reference slot, slots in order (references come first).
    /// Slot s's latents are item `stride * s + offset` of x.
    static func applyMatches(_ matches: [VideoTokenMatch?], window: VideoWindow, x: Tensor, stride: Int, offset: Int) {
        let item = x.count / x.shape[0], c = x.shape[1]
        for (s, m) in matches.enumerated() {
            guard let m = m, let r = window.reference[s] else { continue }
            m.apply(to: x.data + (stride * s + offset) * item, from: x.data + (stride * r + offset) * item, channels: c)
        }
    }

    /// [a0, b0, a1, b1, ...] from a [S, ...] and b [S, ...].
    static func interleave(_ a: Tensor, _ b: Tensor) -> Tensor {
        precondition(a.shape == b.shape, "interleave: \(a.shape) vs \(b.shape)")
        let s = a.shape[0], item = a.count / s
        let y = Tensor(shape: [2 * s] + Array(a.shape.dropFirst()), zeroed: false)
        for i in 0..<s {
            (y.data + 2 * i * item).update(from: a.data + i * item, count: item)
            (y.data + (2 * i + 1) * item).update(from: b.data + i * item, count: item)
        }
        return y
    }
}
