/// The one denoising loop of the library: every editing method, the video method and text-to-image
/// generation are a `DenoisePlan` (their setup) run by `Denoiser.run`. Latents are a batch of slots (one per
/// frame of a video window; an image edit is one slot), each with `layout.branches` latent branches (source,
/// target); one step is:
///
///   x = scheduler.scaleModelInput(latents)                          [S * B, C, h, w]
///   batch = gather(x by layout.itemBranch) ++ imageCondition        [S * G, C (+ c'), h, w]
///   residuals = sum of the acting ControlNets on batch (ControlPlan)  (without imageCondition)
///   eps = UNet(batch, t, embeddings, controller, residuals)        [S * G, C, h, w]
///   e = layout.combine(eps)   (all guidance formulas: Guidance.swift) [S * B, C, h, w]
///   latents = scheduler.step(e, t, latents)
///   hooks, in this order: source branch := reference (sdedit's video source branch), direct-inversion
///   pinning, LocalBlend, user mask, token matching, trajectory recording.
/// DDIM inversion is a plan too (`invert`): the inverse scheduler, one unguided item, recording on.
///
/// All of it runs as backend ops: on a resident backend a step downloads nothing, except the attention maps
/// p2p's LocalBlend reads at its mask steps and, with `VideoOptions.tokenMatching` (off by default), the
/// latents the matcher copies on the host.
struct DenoisePlan {
    /// A scheduler whose timesteps are set; `timesteps` are the ones to run (img2img: a suffix).
    var scheduler: Scheduler
    var timesteps: [Float]
    var slots: Int
    var layout: BatchLayout
    /// Text conditioning per UNet item, [S * G, L, D].
    var embeddings: Tensor
    /// SDXL's added conditioning per UNet item (pooled text embeds + time ids), [S * G, P + 6 td]; nil for SD 1.x/2.x.
    var added: Tensor? = nil
    /// Channel-concatenated conditioning per UNet item (InstructPix2Pix image latents), [S * G, c', h, w].
    var imageCondition: Tensor? = nil
    /// ControlNets: residuals for the UNet from the nets acting at each step.
    var controls: ControlPlan? = nil
    /// Attention control; its `step` is set before each step.
    var controller: SteppedAttentionController? = nil
    /// The source latents after each step (user masks, direct inversion, sdedit's source branch).
    var source: SourceTrajectory? = nil
    /// Two-branch sdedit: the source branch is the input's latents noised to each level, not denoised.
    var sourceBranchIsReference = false
    /// p2p's direct inversion: the source branch is pinned to the source trajectory, the target follows.
    var directInversion = false
    /// p2p's LocalBlend per slot.
    var localBlends: [LocalBlend]? = nil
    /// A user mask at latent size ([1, 1, h, w], backend memory): outside it the target branch follows the
    /// source trajectory.
    var userMask: Tensor? = nil
    /// Video token matching: per slot matches, the window, and the steps it runs for.
    var tokenMatching: (matches: [VideoTokenMatch?], window: VideoWindow, end: Int)? = nil
    /// Keeps the latents after every step (DDIM inversion's trajectory).
    var record: TrajectoryRecorder? = nil
}

/// The source latents [S, C, h, w] at the level after each step.
struct SourceTrajectory {
    enum Kind {
        /// The DDIM-inverted trajectory [x_0, x_t1, ..., x_T] (ddim, p2p).
        case inverted([Tensor])
        /// The input's latents z0 noised with `noise` to each next timestep, z0 after the last (sdedit, instruct).
        case noised(z0: Tensor, noise: Tensor, timesteps: [Float], scheduler: Scheduler)
    }
    let kind: Kind

    func after(step i: Int) throws -> Tensor {
        switch kind {
        case .inverted(let traj):
            return traj[traj.count - 2 - i]
        case .noised(let z0, let noise, let ts, let sched):
            return i + 1 < ts.count ? try sched.addNoise(original: z0, noise: noise, timestep: ts[i + 1]) : z0
        }
    }
}

/// Where progress reports of a loop go: steps offset + 1 ... of total, tagged with a frame for video.
struct ProgressSpan {
    let reporter: ProgressReporter
    var offset = 0
    var total: Int
    var frame: Int? = nil
    var frames = 1

    func step(_ k: Int) throws {
        if let f = frame { try reporter.step(offset + k, of: total, frame: f, frames: frames) }
        else { try reporter.step(offset + k, of: total) }
    }
}

/// An attention controller that acts by denoising step (p2p's replacement windows, the video method's
/// propagation): the loop sets `step` before each UNet call.
protocol SteppedAttentionController: AttentionController {
    var step: Int { get set }
}

extension P2PController: SteppedAttentionController {}
extension VideoAttentionController: SteppedAttentionController {}

struct Denoiser {
    let unet: UNet2DConditionModel
    let backend: Backend

    /// Runs the plan from `latents` [S * B, C, h, w]; returns the final latents (all branches).
    func run(_ p: DenoisePlan, latents initial: Tensor, progress: ProgressSpan) throws -> Tensor {
        let be = backend
        p.scheduler.backend = be
        let B = p.layout.branches
        precondition(initial.shape[0] == p.slots * B, "Denoiser: latents \(initial.shape) for \(p.slots) slots of \(B) branches")
        var lat = initial
        for (i, t) in p.timesteps.enumerated() {
            try progress.reporter.check()
            p.controller?.step = i
            let x = try p.scheduler.scaleModelInput(lat, timestep: t)                            // [S * B, C, h, w]
            var batch = try LatentOps.gather(be, x, slots: p.slots, layout: p.layout)             // [S * G, C, h, w]
            let res = try p.controls?.residuals(step: i, of: p.timesteps.count, batch: batch, timestep: t, backend: be)
            if let c = p.imageCondition { batch = try be.catChannels(batch, c) }                  // [S * G, C + c', h, w]
            let eps = try unet.forward(batch, timesteps: [t], encoderHiddenStates: p.embeddings, added: p.added,
                                       controller: p.controller, residuals: res)                  // [S * G, C, h, w]
            let e = try p.layout.combine(eps, slots: p.slots, backend: be)                        // [S * B, C, h, w]
            lat = try p.scheduler.step(modelOutput: e, timestep: t, sample: lat)                  // [S * B, C, h, w]
            try afterStep(p, i, lat)
            try progress.step(i + 1)
        }
        return lat
    }

    private func afterStep(_ p: DenoisePlan, _ i: Int, _ lat: Tensor) throws {
        let be = backend, B = p.layout.branches
        let needsSource = p.sourceBranchIsReference || p.directInversion || p.userMask != nil
        let ref = needsSource ? try p.source?.after(step: i) : nil                                // [S, C, h, w]
        if p.sourceBranchIsReference, let r = ref { try LatentOps.setBranch(be, lat, 0, of: B, from: r) }
        if p.directInversion, let r = ref {
            for s in 0..<p.slots { try LatentOps.pinSource(be, lat.slice0(B * s, 2), to: r.slice0(s, 1)) }
        }
        if let lbs = p.localBlends {
            for (s, lb) in lbs.enumerated() { try lb.apply(lat.slice0(B * s, 2), backend: be) }
        }
        if let m = p.userMask, let r = ref {
            for s in 0..<p.slots { try LatentOps.blend(be, lat.slice0(B * s + B - 1, 1), source: r.slice0(s, 1), mask: m) }
        }
        if let tm = p.tokenMatching, i < tm.end {
            VideoEditor.applyMatches(tm.matches, window: tm.window, x: lat, stride: B, offset: B - 1)
        }
        p.record?.append(lat)
    }

    /// DDIM inversion (DDIMInverseScheduler, guidance 1) of z0 [S, C, h, w] with `cond` [S, L, D]:
    /// the trajectory [x_0, x_t1, ..., x_T], each [S, C, h, w]. It is a plan of `run` like every other
    /// (the scheduler runs the other way, one unguided branch, no hooks), recorded step by step.
    func invert(_ z0: Tensor, cond: Tensor, added: Tensor? = nil, steps: Int, schedulerConfig: SchedulerConfig,
                controller: SteppedAttentionController?, progress: ProgressSpan) throws -> [Tensor] {
        let inv = try DDIMInverseScheduler(config: schedulerConfig)
        try inv.setTimesteps(steps)
        let traj = TrajectoryRecorder(z0)
        var plan = DenoisePlan(scheduler: inv, timesteps: inv.timesteps, slots: z0.shape[0], layout: .cfg(1),
                               embeddings: cond)
        plan.added = added
        plan.controller = controller
        plan.record = traj
        _ = try run(plan, latents: z0, progress: progress)
        return traj.latents
    }
}

/// The latents after each step of a plan (the inversion's trajectory), starting with the initial ones.
final class TrajectoryRecorder {
    private(set) var latents: [Tensor]
    init(_ initial: Tensor) { latents = [initial] }
    func append(_ x: Tensor) { latents.append(x) }
}
