/// Prompt-to-Prompt (Hertz et al., ICLR 2023) on DDIM-inverted latents with negative-prompt inversion
/// (Miyake et al. 2023): the source prompt's embedding is the unconditional branch, so the source branch
/// reconstructs the input. Batch [uncond src, uncond tgt, cond src, cond tgt]; P2PController edits the
/// conditional half; LocalBlend takes latents outside its mask from the source branch, a user mask from
/// the inverted trajectory (so an all-zero mask returns the VAE reconstruction of the input).
/// A negative prompt, when given, replaces the source prompt as the unconditional branch. Without one, the
/// target branch's unconditional embedding can be partly the empty prompt's (`uncondMix`), and the words the
/// source prompt lacks can be re-weighted (`newWordWeight`).
/// With `directInversion` (Ju et al., ICLR 2024) the source branch is set back on the inverted trajectory
/// after every step and the target moves by the same correction, so outside LocalBlend's mask the result is
/// the input's own latents.
extension ImageEditor {
    func runP2P(_ r: ResolvedEdit, _ work: RGBImage, latentMask: [Float]?, options: EditOptions,
                progress: ProgressReporter) throws -> MethodOutput {
        let unet = parts.unet
        let z0 = try encode(work)                                                    // [1, C, h, w]
        let src = try parts.encodePrompt(r.sourcePrompt)                             // [1, 77, D]
        let tgt = try parts.encodePrompt(r.prompt)                                   // [1, 77, D]
        let alignment = try parts.p2pAlignment(r, reweight: options.reweight)
        let traj = try invert(work, z0: z0, sourcePrompt: r.sourcePrompt, cond: src, steps: r.steps,
                              progress: progress, total: 2 * r.steps)
        let lh = z0.shape[2]
        // Negative-prompt inversion: the source branch's uncond and cond items are one computation, so the
        // batch is [uncond tgt, cond src, cond tgt]; with a negative prompt all four items run. The target's
        // uncond item is emb(source) mixed with emb("") by uncondMix (no extra UNet work).
        let npi = r.negativePrompt == nil
        let ctrl = P2PController(alignment: alignment, steps: r.steps, crossReplace: r.crossReplace,
                                 selfReplace: r.selfReplace,
                                 blendHeight: P2PController.blendHeight(unet: unet.config, latentHeight: lh),
                                 localBlend: options.localBlend, blendThreshold: r.blendThreshold,
                                 blendDilation: r.blendDilation,
                                 backend: parts.backend, layout: npi ? .three : .four)
        let sched = try DDIMScheduler(config: parts.schedulerConfig)
        try sched.setTimesteps(r.steps)
        let ts = sched.timesteps
        let ehs: Tensor
        if let neg = r.negativePrompt {
            let u = try parts.encodePrompt(neg)
            ehs = Tensor.cat0([u, u, src, tgt])                                      // [4, 77, D]
        } else {
            let uT = try r.targetUncond(source: src, empty: { try parts.encodePrompt("") })
            ehs = Tensor.cat0([uT, src, tgt])                                        // [3, 77, D]
        }
        let xT = traj[traj.count - 1]
        var lat = Tensor.cat0([xT, xT])                                              // [2, C, h, w] source, target
        for (i, t) in ts.enumerated() {
            ctrl.step = i
            let e: Tensor                                                            // [2, C, h, w]
            if npi {
                let inp = Tensor.cat0([lat.slice0(1, 1), lat.slice0(0, 1), lat.slice0(1, 1)])   // [3, C, h, w]
                let eps = try unet.forward(inp, timesteps: [t], encoderHiddenStates: ehs, controller: ctrl)
                // source: u = c (NPI) so u + g (c - u) = c; target: u + g (c - u), u from the mixed embedding
                let tgtEps = try ClassifierFreeGuidance.combine(Tensor.cat0([eps.slice0(0, 1), eps.slice0(2, 1)]),
                                                                guidance: r.guidance)
                e = Tensor.cat0([eps.slice0(1, 1), tgtEps])
            } else {
                let inp = EditTensorOps.repeat0(lat, 2)                              // [4, C, h, w]
                let eps = try unet.forward(inp, timesteps: [t], encoderHiddenStates: ehs, controller: ctrl)
                e = try ClassifierFreeGuidance.combine(eps, guidance: r.guidance)
            }
            lat = try sched.step(modelOutput: e, timestep: t, sample: lat)
            if r.directInversion {
                // Direct inversion (Ju et al., ICLR 2024): the source branch is put back on the inverted
                // trajectory, so its attention maps and LocalBlend's background come from the input itself;
                // the target moves by the same correction (the paper's code corrects the source only; on the
                // toy model shifting the target too edited 47 of 60 tuning cases instead of 44, docs/quality.md).
                ImageEditor.pinSource(lat, to: traj[ts.count - 1 - i])
            }
            ctrl.localBlend?.apply(lat)
            if let m = latentMask {
                // user mask: outside it the target follows the inverted trajectory (as in ddim)
                EditMask.blend(lat.slice0(1, 1), source: traj[ts.count - 1 - i], mask: m)
            }
            try progress.step(ts.count + i + 1, of: 2 * ts.count)
        }
        let blend = ctrl.localBlend?.lastMask.map { Array($0.buffer) }
        return MethodOutput(latents: lat.slice0(1, 1).copy(), blendMask: blend)
    }

    /// lat [2, C, h, w] (source, target): item 0 := ref, item 1 moves by the same amount.
    static func pinSource(_ lat: Tensor, to ref: Tensor) {
        let n = ref.count
        precondition(lat.count == 2 * n, "pinSource: \(lat.shape) vs \(ref.shape)")
        let p = lat.data, q = ref.data
        for k in 0..<n {
            let d = q[k] - p[k]
            p[k] = q[k]
            p[n + k] += d
        }
    }
}
