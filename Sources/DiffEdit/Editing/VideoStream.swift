/// Frame-at-a-time video editing with bounded lookahead (the engine of the C streaming API and of
/// `VideoEditor.edit`). Frames are pushed in order; edited frames come out in order through `pull`.
///
/// - consistent mode: frames are grouped into windows of `keyframeInterval` (see `VideoWindow`); a window
///   is edited when its last frame arrives (or at `finish`), so a frame comes out at most
///   `keyframeInterval - 1` frames after it went in. Memory: the anchor frame plus one window.
/// - per-frame mode: each frame is edited when pushed (no lookahead).
/// After a failed or cancelled window the stream is broken: further pushes throw; begin a new one.
public final class VideoStream {
    public let width: Int
    public let height: Int
    public let options: VideoOptions
    public let editor: VideoEditor
    /// Total frames, when known (progress reports only).
    public var totalFrames: Int?
    public private(set) var pushed = 0
    public private(set) var finished = false
    public private(set) var broken = false
    let resolved: ResolvedEdit
    let plan: NativeResolutionPlan
    private var anchor: RGBImage? = nil
    private var pending: [RGBImage] = []
    private var ready: [RGBImage] = []
    private var readHead = 0
    /// The last emitted frame's source and result (pixel fusion).
    private var lastSource: RGBImage? = nil
    private var lastOutput: RGBImage? = nil

    /// Frames a pushed frame may wait before it can be pulled.
    public var lookahead: Int { options.mode == .perFrame ? 0 : options.keyframeInterval - 1 }

    public init(editor: VideoEditor, options: VideoOptions, width: Int, height: Int) throws {
        try options.validate()
        let parts = editor.parts
        resolved = try ResolvedEdit(options: options.edit, unetInChannels: parts.unet.config.in_channels,
                                    imageWidth: width, imageHeight: height, defaults: parts.editDefaults)
        if options.mode == .consistent, options.edit.mask != nil, resolved.method != .inpaint {
            throw DiffEditError.unsupported("mask: the consistent video mode takes a mask only for method inpaint (the region to repaint); use the per-frame mode for masked \(resolved.method.rawValue) edits")
        }
        self.editor = editor; self.options = options; self.width = width; self.height = height
        plan = NativeResolutionPlan(width: width, height: height, native: parts.nativeSize, multiple: parts.sizeMultiple,
                                    fullResolution: options.edit.fullResolution)
        // a window is the anchor plus keyframeInterval frames, at most 4 UNet items each
        // and the window's frames at the input's size (each as an input and an output picture)
        let planes = HostMemory.product([options.keyframeInterval + 1,
                                         PixelPolicy.inputPlaneBytes(width: width, height: height, masked: options.edit.mask != nil, alpha: false)])
        try parts.checkWorkingSet?(plan.workWidth, plan.workHeight, 4 * (options.keyframeInterval + 1), planes,
                                   EditOptions.fullResolutionAdvice(options.edit.fullResolution))
    }

    /// Pixel-fusion margin in input pixels: half the VAE factor at input scale, at least 2.
    var fusionRadius: Int {
        max(2, Int((Double(editor.parts.vaeFactor) * Double(width) / Double(plan.workWidth) / 2).rounded()))
    }

    /// Adds the next frame; edits a window when it is complete (so this call may take long).
    public func push(_ frame: RGBImage, progress: ProgressReporter) throws {
        guard !finished else { throw DiffEditError.invalidArgument("stream: push after end (frame \(pushed))") }
        guard !broken else { throw DiffEditError.invalidArgument("stream: a previous call failed or was cancelled; end this stream and begin a new one") }
        guard frame.width == width && frame.height == height else {
            throw DiffEditError.invalidArgument("frame \(pushed): \(frame.width)x\(frame.height) differs from the stream's \(width)x\(height)")
        }
        let total = totalFrames ?? 0
        if options.mode == .perFrame {
            do {
                ready.append(try editor.editSingle(frame, index: pushed, total: total, options: options, progress: progress))
            } catch { broken = true; throw error }
            pushed += 1
            return
        }
        if pushed == 0 { anchor = frame }
        pending.append(frame)
        pushed += 1
        if pending.count == options.keyframeInterval { try editPending(progress: progress) }
    }

    /// The next edited frame, or nil when none is ready.
    public func pull() -> RGBImage? {
        guard readHead < ready.count else { return nil }
        let f = ready[readHead]
        readHead += 1
        if readHead == ready.count { ready.removeAll(keepingCapacity: true); readHead = 0 }
        return f
    }

    /// Frames edited but not pulled yet.
    public var readyCount: Int { ready.count - readHead }

    /// No more frames: edits the last, partial window. Frames stay pullable afterwards.
    public func finish(progress: ProgressReporter) throws {
        guard !finished else { return }
        finished = true
        if !broken && !pending.isEmpty { try editPending(progress: progress) }
    }

    private func editPending(progress: ProgressReporter) throws {
        let start = pushed - pending.count
        let w = VideoWindow(start: start, count: pending.count, interval: options.keyframeInterval)
        var images = pending
        if start > 0, let a = anchor { images.insert(a, at: 0) }
        do {
            let outs = try editor.runWindow(w, images: images, r: resolved, plan: plan, options: options,
                                            totalFrames: totalFrames ?? 0, progress: progress)
            for (src, out) in zip(pending, outs) {
                var o = out
                if options.pixelFusion, let ps = lastSource, let po = lastOutput {
                    o = VideoPixelFusion.fuse(source: src, previousSource: ps, edited: out, previousEdited: po,
                                              radius: fusionRadius)
                    // inpaint: outside the mask every frame is its input's bytes, whatever fusion carried over
                    if let m = options.edit.mask { o = PixelPolicy.composite(edited: o, input: src, mask: m) }
                }
                ready.append(o)
                lastSource = src
                lastOutput = o
            }
            pending.removeAll()
        } catch {
            broken = true
            pending.removeAll()
            throw error
        }
    }
}
