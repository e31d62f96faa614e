/// DDIM inversion then DDIM sampling: the input's latents are inverted with the source prompt at
/// guidance 1 (DDIMInverseScheduler, same timesteps), then sampled with the target prompt under CFG
/// (uncond = the negative prompt, "" by default).
extension ImageEditor {
    func runDDIM(_ r: ResolvedEdit, _ work: RGBImage, latentMask: [Float]?, options: EditOptions,
                 progress: ProgressReporter) throws -> MethodOutput {
        let unet = parts.unet
        let z0 = try encode(work)                                                    // [1, C, h, w]
        let src = try parts.encodePrompt(r.sourcePrompt)                             // [1, 77, D]
        let traj = try invert(work, z0: z0, sourcePrompt: r.sourcePrompt, cond: src, steps: r.steps,
                              progress: progress, total: 2 * r.steps)
        let sched = try DDIMScheduler(config: parts.schedulerConfig)
        try sched.setTimesteps(r.steps)
        let ts = sched.timesteps
        let n = ts.count
        let cond = try parts.encodePrompt(r.prompt)
        let cfg = ClassifierFreeGuidance.isEnabled(r.guidance)
        let ehs = cfg ? Tensor.cat0([try parts.encodePrompt(r.negativePrompt ?? ""), cond]) : cond
        var lat = traj[traj.count - 1].copy()                                       // x_T [1, C, h, w]
        for (i, t) in ts.enumerated() {
            let inp = cfg ? EditTensorOps.repeat0(lat, 2) : lat                      // [2, C, h, w]
            let eps = try unet.forward(inp, timesteps: [t], encoderHiddenStates: ehs)
            let e = cfg ? try ClassifierFreeGuidance.combine(eps, guidance: r.guidance) : eps
            lat = try sched.step(modelOutput: e, timestep: t, sample: lat)
            if let m = latentMask, n - 1 - i >= 0, n - 1 - i < traj.count {
                EditMask.blend(lat, source: traj[n - 1 - i], mask: m)                // source trajectory
            }
            try progress.step(n + i + 1, of: 2 * n)
        }
        return MethodOutput(latents: lat, blendMask: nil)
    }
}
