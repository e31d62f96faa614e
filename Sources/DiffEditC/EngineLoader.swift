import Glibc
import DiffEdit

/// Loads the model behind `diff_edit_model_load`.
enum EngineLoader {
    /// `path`: a diffusers folder or single-file .safetensors (already resolved, never empty).
    /// A path that is not valid UTF-8 arrives as "/proc/self/fd/N" (`BytePath`): the model's origin and
    /// every message show the path as given, escaped, instead.
    static func load(path: String, backend: Backend, maxMemory: Int? = nil, weightsDType: WeightsDType = .auto) throws -> EditEngine {
        guard let opened = BytePath.take(path) else {
            return StableDiffusionEngine(model: try StableDiffusionModel.load(path: path, backend: backend, maxMemory: maxMemory, weightsDType: weightsDType))
        }
        defer { close(opened.fd) }
        do {
            var ck = try CheckpointLoader.load(path: path)
            ck.origin = opened.shown
            return StableDiffusionEngine(model: try StableDiffusionModel(checkpoint: ck, backend: backend, maxMemory: maxMemory, weightsDType: weightsDType))
        } catch let e as DiffEditError {
            throw e.withMessage(e.message.replacing(path, with: opened.shown))
        }
    }
}
