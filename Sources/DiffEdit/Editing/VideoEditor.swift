/// Text-guided video editing (issue 7).
///
/// Two modes (`VideoOptions.mode`):
/// - per-frame (baseline): each frame is edited by `ImageEditor` on its own, same options, same seed.
/// - consistent (zero-shot, no per-video training), frames processed in windows of `keyframeInterval`
///   (see `VideoWindow`), each window one UNet batch:
///   1. One shared noise: sdedit and instruct noise every frame with the same seeded tensor; ddim and p2p
///      invert every frame (DDIM inversion, source prompt, guidance 1, the same timesteps), which is
///      deterministic.
///   2. Cross-frame self-attention during inversion and editing: each frame attends to the keys/values of
///      the anchor (frame 0), its window's keyframe, its previous frame and itself
///      (`VideoAttentionController`). Keyframes attend to [anchor, itself]: keyframes are edited jointly
///      with the anchor, and never depend on where a window starts, so memory is bounded by the window.
///   3. Propagation (sdedit, ddim, p2p): every frame also runs a source branch that reconstructs the
///      source video (ddim/p2p: the inverted latents denoised with the source prompt; sdedit: the source
///      latents noised to each timestep with the shared noise). The edited branch of every frame but the
///      anchor takes its self-attention maps from the source branch, applied to edited values: the edited
///      anchor/keyframe/previous-frame features are carried to where the source video's own features
///      correspond (a soft, attention-weighted form of TokenFlow's nearest-neighbour propagation; no
///      extra network). Instruct has no source branch: it gets 1 and 2 only.
///   4. Optional (off by default) latent nearest-neighbour propagation (`VideoTokenMatch`, `tokenMatching`): each latent token of
///      a frame is matched to its reference frame (keyframe; for keyframes the anchor) by the source
///      latents' 3x3 descriptors; after every step matched tokens copy the reference's edited latents.
///   5. Source-static pixel fusion (`VideoPixelFusion`, `pixelFusion`): where the source does not change
///      around a pixel since the previous frame, the previous edited frame's pixel is kept.
///   6. Per-frame attention control: p2p runs one P2PController per frame (word swap / refinement /
///      re-weighting and its own LocalBlend mask from that frame's cross-attention).
/// docs/video_quality.md describes the method in full and measures each part.
/// Streaming (`VideoStream`) and the whole-clip calls give the same frames up to float rounding of
/// different batch sizes (frames are grouped into the same windows either way).
public final class VideoEditor {
    public let imageEditor: ImageEditor
    public var parts: EditModelParts { imageEditor.parts }

    public init(imageEditor: ImageEditor) { self.imageEditor = imageEditor }
    public convenience init(model: StableDiffusionModel) { self.init(imageEditor: ImageEditor(model: model)) }
    public convenience init(parts: EditModelParts) { self.init(imageEditor: ImageEditor(parts: parts)) }

    /// Edits a whole clip held in memory. All frames must have the same size.
    public func edit(_ frames: [RGBImage], options: VideoOptions, progress: ProgressReporter) throws -> [RGBImage] {
        guard let first = frames.first else { throw DiffEditError.invalidArgument("frames: the clip has no frames") }
        var out: [RGBImage] = []
        out.reserveCapacity(frames.count)
        var i = 0
        try edit(width: first.width, height: first.height, frameCount: frames.count, options: options, progress: progress,
                 next: { () -> RGBImage? in
                     guard i < frames.count else { return nil }
                     defer { i += 1 }
                     return frames[i]
                 },
                 emit: { out.append($0) })
        return out
    }

    /// Edits a clip frame by frame with bounded memory: frames are read from `next` until it returns nil
    /// and handed to `emit` in order as soon as their window is done. `frameCount` (when known) is only
    /// used for progress reports.
    public func edit(width: Int, height: Int, frameCount: Int?, options: VideoOptions, progress: ProgressReporter,
                     next: () throws -> RGBImage?, emit: (RGBImage) throws -> Void) throws {
        let stream = try VideoStream(editor: self, options: options, width: width, height: height)
        stream.totalFrames = frameCount
        while let f = try next() {
            try stream.push(f, progress: progress)
            while let o = stream.pull() { try emit(o) }
        }
        guard stream.pushed > 0 else { throw DiffEditError.invalidArgument("frames: the clip has no frames") }
        try stream.finish(progress: progress)
        while let o = stream.pull() { try emit(o) }
    }

    /// The per-frame baseline for one frame: ImageEditor with the clip's options, progress tagged with the frame.
    func editSingle(_ frame: RGBImage, index: Int, total: Int, options: VideoOptions,
                    progress: ProgressReporter) throws -> RGBImage {
        let inner = ProgressReporter { step, steps, _, _ in
            do { try progress.step(step, of: steps, frame: index, frames: total); return true } catch { return false }
        }
        return try imageEditor.edit(frame, options: options.edit, progress: inner).image
    }

    /// Edits the slots of `window` (images at input size, one per slot) as one batch of the editing engine and
    /// returns the emitted slots' results at input size, in order (pixels by `PixelPolicy`, as for an image).
    func runWindow(_ window: VideoWindow, images: [RGBImage], r: ResolvedEdit, plan: NativeResolutionPlan,
                   options: VideoOptions, totalFrames: Int, progress: ProgressReporter) throws -> [RGBImage] {
        precondition(images.count == window.frames.count, "runWindow: \(images.count) images for \(window.frames.count) slots")
        let works = images.map { plan.toWork($0) }
        var zs: [Tensor] = []
        for w in works {
            zs.append(try imageEditor.encode(w))                                      // [1, C, h, w]
            try progress.check()
        }
        let z0 = try parts.backend.onDevice(Tensor.cat0(zs))                           // [S, C, h, w]
        var edit = options.edit
        edit.controls = try ControlPreprocessor.toWork(edit.controls, plan: plan)     // one map per frame, from each frame
        var we = WindowEdit(r: r, options: edit, video: options, window: window, works: works,
                            z0: z0, latentMask: nil, progress: progress, frame: window.frames.last ?? 0, frames: totalFrames,
                            controlMask: options.edit.controls.isEmpty ? nil
                                : options.edit.mask.map { plan.maskToWork($0.pixels.map { Float($0) / 255 }) })
        // inpaint: the one mask, as given, for every frame (no other method takes a mask here: VideoStream)
        let plain = r.method == .inpaint ? options.edit.mask.map { $0.pixels.map { Float($0) / 255 } } : nil
        if let p = plain { we.inpaint = try InpaintCondition(editor: imageEditor, works: works, mask: plan.maskToWork(p)) }
        let out = try imageEditor.denoise(we)
        var outs: [RGBImage] = []
        for s in 0..<window.frames.count where window.emit[s] {
            let dec = try imageEditor.decode(out.latents.slice0(s, 1).copy())          // work size
            outs.append(try PixelPolicy.compose(decoded: dec, original: images[s], plan: plan,
                                                userMask: plain == nil ? nil : options.edit.mask, feathered: plain,
                                                blendMask: out.blendMasks[s], factor: parts.vaeFactor, reportMask: false,
                                                reconstruction: { try self.imageEditor.decode(zs[s]) }).0)
        }
        return outs
    }

    /// Per slot, the token correspondences to its reference slot from the source latents z0 [S, C, h, w]
    /// (nil for the anchor).
    static func tokenMatches(_ window: VideoWindow, z0: Tensor) -> [VideoTokenMatch?] {
        let (c, h, w) = (z0.shape[1], z0.shape[2], z0.shape[3])
        let item = c * h * w
        return window.reference.enumerated().map { s, ref in
            guard let r = ref else { return nil }
            return VideoTokenMatch(a: z0.data + s * item, b: z0.data + r * item, channels: c, height: h, width: w,
                                   radius: max(2, min(h, w) / 4))
        }
    }

    /// Copies matched tokens of slot s from its reference slot, slots in order (references come first).
    /// Slot s's latents are item `stride * s + offset` of x. Host memory (token matching is off by default).
    static func applyMatches(_ matches: [VideoTokenMatch?], window: VideoWindow, x: Tensor, stride: Int, offset: Int) {
        let item = x.count / x.shape[0], c = x.shape[1]
        for (s, m) in matches.enumerated() {
            guard let m = m, let r = window.reference[s] else { continue }
            m.apply(to: x.data + (stride * s + offset) * item, from: x.data + (stride * r + offset) * item, channels: c)
        }
    }
}
