/// A LoRA file and its strength: the CLI's `--lora PATH[:SCALE]`, an entry of the C ABI's
/// `diff_edit_model_set_loras`. Fused as diffusers' `load_lora_weights(path)` + `fuse_lora(lora_scale: scale)`.
public struct LoRASpec: Sendable, Equatable {
    public var path: String
    public var scale: Float

    public init(path: String, scale: Float = 1) { self.path = path; self.scale = scale }

    /// "PATH" or "PATH:SCALE" (the last ':' followed by a number splits; SCALE default 1).
    public init(parsing text: String) throws {
        if let colon = text.lastIndex(of: ":"), let s = Float(text[text.index(after: colon)...]) {
            path = String(text[..<colon]); scale = s
        } else {
            path = text; scale = 1
        }
        guard !path.isEmpty else { throw DiffEditError.invalidArgument("--lora \(text): the path is empty") }
        guard scale.isFinite else { throw DiffEditError.invalidArgument("--lora \(text): scale \(scale) is not finite") }
    }
}
