/// Text-to-image settings. nil fields take the model's defaults (size: the native size).
public struct GenerateOptions: Sendable {
    public var prompt: String = ""
    /// nil = none: "" (diffusers' default unconditional prompt); SDXL: zero negative conditioning (force_zeros_for_empty_prompt).
    public var negativePrompt: String? = nil
    public var width: Int? = nil
    public var height: Int? = nil
    public var steps: Int = 30
    public var guidance: Float = 7.5
    /// "ddim", "euler", "dpmpp-2m"; nil = the checkpoint's own scheduler config decides.
    public var scheduler: String? = nil
    public var seed: UInt64 = 0
    /// x_T as standard-normal latents [1, C, H/f, W/f] (diffusers' `latents=`); overrides `seed`.
    public var initNoise: Tensor? = nil
    /// Working-memory limit in bytes for this request (nil: the machine's physical memory); a request whose
    /// estimated working set is above it is refused with `.outOfMemory` before anything is allocated.
    public var maxMemory: Int? = nil
    /// ControlNets (diffusers' StableDiffusionControlNetPipeline; several = MultiControlNet); each takes a
    /// `.image` of the generated size (`ControlPreprocessor.fit`).
    public var controls: [ControlSpec] = []
    /// diffusers' guess_mode: the ControlNets see only the conditional item, residuals scaled by logspace(-1, 0).
    public var controlGuessMode: Bool = false
    public init(prompt: String = "") { self.prompt = prompt }
}
