/// Prompt-to-Prompt (Hertz et al., ICLR 2023) on DDIM-inverted latents with negative-prompt inversion
/// (Miyake et al. 2023): the source prompt's embedding is the unconditional branch, so the source branch
/// reconstructs the input. Batch [uncond src, uncond tgt, cond src, cond tgt]; P2PController edits the
/// conditional half; LocalBlend takes latents outside its mask from the source branch, a user mask from
/// the inverted trajectory (so an all-zero mask returns the VAE reconstruction of the input).
/// A negative prompt, when given, replaces the source prompt as the unconditional branch.
extension ImageEditor {
    func runP2P(_ r: ResolvedEdit, _ work: RGBImage, latentMask: [Float]?, options: EditOptions,
                progress: ProgressReporter) throws -> MethodOutput {
        let unet = parts.unet
        let z0 = try encode(work)                                                    // [1, C, h, w]
        let src = try parts.encodePrompt(r.sourcePrompt)                             // [1, 77, D]
        let tgt = try parts.encodePrompt(r.prompt)                                   // [1, 77, D]
        let tok = parts.tokenizer
        let alignment = try PromptAlignment(source: r.sourcePrompt, target: r.prompt, reweight: options.reweight,
                                            tokenize: { tok.tokenize($0).flatMap { $0 } })
        let traj = try invert(work, z0: z0, sourcePrompt: r.sourcePrompt, cond: src, steps: r.steps,
                              progress: progress, total: 2 * r.steps)
        let lh = z0.shape[2]
        let ctrl = P2PController(alignment: alignment, steps: r.steps, crossReplace: r.crossReplace,
                                 selfReplace: r.selfReplace,
                                 blendHeight: P2PController.blendHeight(unet: unet.config, latentHeight: lh),
                                 localBlend: options.localBlend, backend: parts.backend)
        let sched = try DDIMScheduler(config: parts.schedulerConfig)
        try sched.setTimesteps(r.steps)
        let ts = sched.timesteps
        let uncond = try r.negativePrompt.map { try parts.encodePrompt($0) } ?? src
        let ehs = Tensor.cat0([uncond, uncond, src, tgt])                            // [4, 77, D]
        let xT = traj[traj.count - 1]
        var lat = Tensor.cat0([xT, xT])                                              // [2, C, h, w] source, target
        for (i, t) in ts.enumerated() {
            ctrl.step = i
            let inp = EditTensorOps.repeat0(lat, 2)                                  // [4, C, h, w]
            let eps = try unet.forward(inp, timesteps: [t], encoderHiddenStates: ehs, controller: ctrl)
            let e = try ClassifierFreeGuidance.combine(eps, guidance: r.guidance)                  // [2, C, h, w]
            lat = try sched.step(modelOutput: e, timestep: t, sample: lat)
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
}
