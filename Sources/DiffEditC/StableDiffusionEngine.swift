import DiffEdit

/// The EditEngine over a loaded StableDiffusionModel; every context gets its own ImageEditor.
///
/// The kernel backend of a model is not re-entrant (one thread pool and scratch buffers per backend),
/// so the editors of one model take turns for the compute: contexts over one model may be called in
/// parallel (no BUSY between them), their edits run one after the other. Contexts over different
/// models (each has its own backend) run truly in parallel.
final class StableDiffusionEngine: EditEngine, @unchecked Sendable {
    let model: StableDiffusionModel
    let computeLock = NSLockLite()

    init(model: StableDiffusionModel) { self.model = model }

    var isInstruct: Bool { model.unetConfig.in_channels == 8 }

    var summary: String {
        "\(model.kind) model from \(model.origin) (\(model.layout), \(model.dtype)), backend \(model.backend.name)"
    }

    func makeSession() throws -> EditSession { Session(engine: self) }

    /// One ImageEditor (with its inversion cache) per context.
    final class Session: EditSession {
        let engine: StableDiffusionEngine
        let editor: ImageEditor

        init(engine: StableDiffusionEngine) {
            self.engine = engine
            self.editor = ImageEditor(parts: engine.model.editParts)
        }

        func edit(_ image: RGBImage, options: EditOptions, progress: ProgressReporter) throws -> EditResult {
            try engine.computeLock.withLock {
                try progress.check()   // cancelled while waiting for the backend
                return try editor.edit(image, options: options, progress: progress)
            }
        }
    }
}
