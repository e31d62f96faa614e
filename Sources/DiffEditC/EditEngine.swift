import DiffEdit

/// What the C ABI needs from a loaded model: a summary for the log and a way to start an editing session
/// per context. `EngineLoader` makes the real one. Method resolution and validation are the library's.
protocol EditEngine: AnyObject, Sendable {
    /// One line for the log, e.g. "sd1 (diffusers folder /x), backend cpu".
    var summary: String { get }
    /// A new editing session (one per context; sessions of one engine may run in parallel).
    func makeSession() throws -> EditSession
    /// Replaces the LoRA files fused into the weights (no call runs meanwhile: ModelHandle.changingWeights).
    func setLoRAs(_ specs: [LoRASpec]) throws
    /// A ControlNet for this model (diff_edit_controlnet_load), its weights on the model's backend.
    func loadControlNet(path: String) throws -> ControlNetModel
    /// The provenance record of an edit with these options (method and defaults resolved as the edit
    /// resolves them); the model's name and hash are filled in by the caller.
    func provenance(options: EditOptions, width: Int, height: Int, video: Bool, watermark: Bool) -> ProvenanceRecord
}

/// One editing session (owned by one context, used by one call at a time): every entry point of the C ABI
/// (image, whole-clip video, streams) goes through it, so the ABI needs no knowledge of the engine behind it.
protocol EditSession: AnyObject {
    func edit(_ image: RGBImage, options: EditOptions, progress: ProgressReporter) throws -> EditResult
    /// `.outOfMemory` when an edit of a width x height input could not fit (ImageEditor.checkRequest); called
    /// before the caller's pixels are converted, so a refused request allocates nothing at the input's size.
    func checkRequest(width: Int, height: Int, options: EditOptions, masked: Bool, alpha: Bool) throws
    /// A clip with the consistent video method, frames read from `next` and handed to `emit` as their windows
    /// are done.
    func editVideo(width: Int, height: Int, frameCount: Int, options: VideoOptions, progress: ProgressReporter,
                   next: () throws -> RGBImage?, emit: (RGBImage) throws -> Void) throws
    /// A stream (diff_edit_stream_*) with the consistent video method.
    func makeStream(options: VideoOptions, width: Int, height: Int) throws -> EditStream
}

/// An open stream of a session: frames pushed in order, edited frames pulled in order.
protocol EditStream: AnyObject {
    var pushed: Int { get }
    var broken: Bool { get }
    var readyCount: Int { get }
    func push(_ frame: RGBImage, progress: ProgressReporter) throws
    func pull() -> RGBImage?
    func finish(progress: ProgressReporter) throws
}
