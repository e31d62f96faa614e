/// Plain 8-bit images exchanged between the editing layer, the CLI and the C ABI.

/// Interleaved RGB8 pixels, row-major, no padding: pixels.count == width * height * 3.
public struct RGBImage: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var pixels: [UInt8]
    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * 3, "RGBImage: \(pixels.count) bytes for \(width)x\(height)")
        self.width = width; self.height = height; self.pixels = pixels
    }
    public init(width: Int, height: Int, fill: UInt8 = 0) {
        self.init(width: width, height: height, pixels: [UInt8](repeating: fill, count: width * height * 3))
    }
}

/// GRAY8 pixels (masks: 255 = edit, 0 = keep).
public struct GrayImage: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var pixels: [UInt8]
    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height, "GrayImage: \(pixels.count) bytes for \(width)x\(height)")
        self.width = width; self.height = height; self.pixels = pixels
    }
}

public enum EditMethod: String, Sendable, CaseIterable {
    case auto, sdedit, ddim, p2p, instruct
    /// Inpainting checkpoints (UNet with 9 input channels): the user mask is the region to repaint.
    case inpaint
}

/// Everything an image edit needs besides the image. nil means "the method's default".
public struct EditOptions: Sendable {
    public var method: EditMethod = .auto
    public var prompt: String = ""
    public var sourcePrompt: String? = nil
    public var negativePrompt: String? = nil
    public var guidance: Float? = nil
    public var imageGuidance: Float? = nil
    public var strength: Float? = nil
    public var steps: Int? = nil
    public var seed: UInt64 = 0
    /// User mask (same size as the image): restricts the edit; for inpaint, the region to repaint (required).
    public var mask: GrayImage? = nil
    /// Initial noise override (tests / parity with diffusers): standard-normal latents.
    public var initNoise: Tensor? = nil
    /// P2P re-weighting: word -> factor.
    public var reweight: [String: Float] = [:]
    /// p2p: fractions of the steps with cross-attention replacement / self-attention injection (nil: the
    /// model's diffedit.json "cross_replace_steps" / "self_replace_steps", else the paper's 0.8 / 0.4).
    public var crossReplaceSteps: Float? = nil
    public var selfReplaceSteps: Float? = nil
    /// Use LocalBlend in p2p (automatic mask from cross-attention).
    public var localBlend: Bool = true
    /// p2p: LocalBlend keeps the edit where the edited words' attention, scaled to [0, 1] over the image,
    /// exceeds this (nil: the model's diffedit.json, else the paper's 0.3). Higher = a tighter mask.
    public var blendThreshold: Float? = nil
    /// p2p: LocalBlend's max-pool radius over its attention map, in map pixels (nil: the model's
    /// diffedit.json "blend_dilation", else the paper's 1, a 3x3 pool; 0 = no dilation).
    public var blendDilation: Int? = nil
    /// p2p: keep the source branch on the inverted trajectory at every step (direct inversion, Ju et al.
    /// 2024), so LocalBlend hands back the input's own latents outside its mask (nil: the model's
    /// diffedit.json "direct_inversion", else off, as in the paper's P2P).
    public var directInversion: Bool? = nil
    /// p2p without a negative prompt: the target branch's unconditional embedding is
    /// `uncondMix * emb("") + (1 - uncondMix) * emb(source prompt)` (nil: the model's diffedit.json
    /// "uncond_mix", else 0, plain negative-prompt inversion). The source branch keeps emb(source prompt), so it
    /// still reconstructs the input. Pure negative-prompt inversion pulls the target's guidance away from the
    /// source description, and on the toy model that overshoots colours; a partly empty unconditional branch
    /// tames it (docs/quality.md). Ignored when `negativePrompt` is set (that is the unconditional branch then).
    public var uncondMix: Float? = nil
    /// p2p: attention re-weighting factor for the edited words of the prompt ("blue" in "a red circle" ->
    /// "a blue circle"; ResolvedEdit.reweight(user:) says which). nil: the model's diffedit.json
    /// "new_word_weight", else 1 (off). A word given in `reweight` keeps its own factor.
    public var newWordWeight: Float? = nil
    /// p2p: LocalBlend also looks at the word after each swapped word when both prompts have it (the noun
    /// a recoloured adjective qualifies: "circle" in "a red circle" -> "a blue circle"; word swaps only).
    /// nil: the model's diffedit.json "blend_next_word", else off (the paper's LocalBlend words are the
    /// swapped words themselves).
    public var blendNextWord: Bool? = nil
    /// Process at the input's full size instead of the model's native size.
    public var fullResolution: Bool = false
    /// Report the mask the edit used (`EditResult.mask`). false: `EditResult.mask` is nil and no input-size mask
    /// is made (a 16384x16384 input's is 256 MB); the C ABI sets it only for params->mask_out, the CLI for
    /// --mask-out. The pixels are the same either way.
    public var reportMask: Bool = true
    /// ControlNets (sdedit: diffusers' StableDiffusionControlNetImg2ImgPipeline; several = MultiControlNet).
    /// ddim, p2p, instruct: residuals to the edited branch's UNet items in every step (ControlPlan). Maps are
    /// computed from the image the method works on (after NativeResolutionPlan.toWork); a `.image` must have
    /// the input's size (`ControlPreprocessor.fit`). Video: one map per frame.
    public var controls: [ControlSpec] = []
    /// diffusers' guess_mode (ControlPlan.items).
    public var controlGuessMode: Bool = false
    public init() {}
}

/// The result of an edit: the image at the input's size, the mask the method used (if any), and the
/// final latents (before VAE decoding) for `--save-latents`.
extension EditOptions {
    /// What a caller can change when an edit's working set does not fit (StableDiffusionModel.checkWorkingSet):
    /// at full resolution the work size is the input's; otherwise the model's size decides it (nil).
    static func fullResolutionAdvice(_ fullResolution: Bool) -> String? {
        fullResolution ? "edit without full resolution (--full-resolution) or use a smaller input" : nil
    }
}

public struct EditResult {
    public var image: RGBImage
    public var mask: GrayImage?
    public var latents: Tensor?
    /// The control map each ControlNet saw, at work size (`--control-out`), in order.
    public var controlMaps: [RGBImage] = []
    public init(image: RGBImage, mask: GrayImage? = nil, latents: Tensor? = nil) {
        self.image = image; self.mask = mask; self.latents = latents
    }
}
