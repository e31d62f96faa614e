import DiffEdit

/// Loads the model behind `diff_edit_model_load`.
enum EngineLoader {
    /// `path`: a diffusers folder or single-file .safetensors (already resolved, never empty).
    static func load(path: String, backend: Backend) throws -> EditEngine {
        StableDiffusionEngine(model: try StableDiffusionModel.load(path: path, backend: backend))
    }
}
