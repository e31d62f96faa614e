import DiffEdit

/// The EditEngine over a loaded StableDiffusionModel; every context gets its own ImageEditor.
///
/// The kernel backend of a model is not re-entrant (one thread pool and scratch buffers per backend),
/// so the editors of one model take turns for the compute: contexts over one model may be called in
/// parallel (no BUSY between them), their edits run one after the other. Contexts over different
/// models (each has its own backend) run truly in parallel. The compute lock is never held while a user
/// callback runs (a progress callback may call diff_edit_image on another context of the same model; the
/// callback runs between denoising steps, when no op is in flight).
final class StableDiffusionEngine: EditEngine, @unchecked Sendable {
    let model: StableDiffusionModel
    let computeLock = NSLockLite()

    init(model: StableDiffusionModel) { self.model = model }

    var summary: String {
        "\(model.kind) model from \(model.origin) (\(model.layout), \(model.dtype)), backend \(model.backend.name)"
    }

    func makeSession() throws -> EditSession { Session(engine: self) }

    func setLoRAs(_ specs: [LoRASpec]) throws {
        computeLock.lock()
        defer { computeLock.unlock() }
        try model.setLoRAs(specs)
    }

    /// Under the compute lock: loading uploads constants to the backend the running edits use.
    func loadControlNet(path: String) throws -> ControlNetModel {
        try computeLock.withLock { try model.loadControlNet(path: path) }
    }

    func provenance(options: EditOptions, width: Int, height: Int, video: Bool, watermark: Bool) -> ProvenanceRecord {
        ProvenanceRecord.edit(model: model, modelName: "", modelSHA256: nil, options: options, width: width, height: height,
                              video: video, watermark: watermark)
    }

    /// Runs `body` holding the model's compute lock (cancellation is checked once the lock is held). `body`
    /// reports through the reporter it is given, which lets go of the lock while the caller's callback runs.
    func compute<T>(_ progress: ProgressReporter, _ body: (ProgressReporter) throws -> T) throws -> T {
        computeLock.lock()
        defer { computeLock.unlock() }
        try progress.check()   // cancelled while waiting for the backend
        let lock = computeLock
        let unlocked = ProgressReporter({ step, steps, frame, frames in
            lock.unlock()
            defer { lock.lock() }
            do { try progress.step(step, of: steps, frame: frame, frames: frames); return true } catch { return false }
        }, parent: progress)
        return try body(unlocked)
    }

    /// One ImageEditor (with its inversion cache) per context.
    final class Session: EditSession {
        let engine: StableDiffusionEngine
        let editor: ImageEditor

        init(engine: StableDiffusionEngine) {
            self.engine = engine
            self.editor = ImageEditor(parts: engine.model.editParts)
        }

        func edit(_ image: RGBImage, options: EditOptions, progress: ProgressReporter) throws -> EditResult {
            try engine.compute(progress) { try editor.edit(image, options: options, progress: $0) }
        }

        func checkRequest(width: Int, height: Int, options: EditOptions, masked: Bool, alpha: Bool) throws {
            try editor.checkRequest(width: width, height: height, options: options, masked: masked, alpha: alpha)
        }

        func editVideo(width: Int, height: Int, frameCount: Int, options: VideoOptions, progress: ProgressReporter,
                       next: () throws -> RGBImage?, emit: (RGBImage) throws -> Void) throws {
            try engine.compute(progress) {
                try VideoEditor(imageEditor: editor).edit(width: width, height: height, frameCount: frameCount,
                                                          options: options, progress: $0, next: next, emit: emit)
            }
        }

        func makeStream(options: VideoOptions, width: Int, height: Int) throws -> EditStream {
            Stream(engine: engine, stream: try VideoStream(editor: VideoEditor(imageEditor: editor), options: options,
                                                           width: width, height: height))
        }
    }

    /// A VideoStream whose window edits take the model's compute lock.
    final class Stream: EditStream {
        let engine: StableDiffusionEngine
        let stream: VideoStream
        init(engine: StableDiffusionEngine, stream: VideoStream) { self.engine = engine; self.stream = stream }
        var pushed: Int { stream.pushed }
        var broken: Bool { stream.broken }
        var readyCount: Int { stream.readyCount }
        func push(_ frame: RGBImage, progress: ProgressReporter) throws {
            try engine.compute(progress) { try stream.push(frame, progress: $0) }
        }
        func pull() -> RGBImage? { stream.pull() }
        func finish(progress: ProgressReporter) throws {
            try engine.compute(progress) { try stream.finish(progress: $0) }
        }
    }
}
