/// What the editing methods need from a loaded model: the three networks, the scheduler configuration,
/// the tokenizer, prompt encoding and seeded noise. `ImageEditor` fills it from a `StableDiffusionModel`;
/// tests may build one directly from a checkpoint.
public struct EditModelParts {
    public let unet: UNet2DConditionModel
    public let vae: AutoencoderKL
    public let schedulerConfig: SchedulerConfig
    public let tokenizer: CLIPTokenizer
    /// text -> [1, 77, D] (the hidden states the UNet attends to).
    public let encodePrompt: (String) throws -> Tensor
    /// The whole conditioning of a prompt (nil = no prompt: SDXL's zero negative conditioning); nil: hidden states
    /// from `encodePrompt` only (SD 1.x/2.x). See StableDiffusionModel.encodeCondition.
    public var encodeCondition: ((String?) throws -> PromptEmbedding)? = nil
    /// CosXL-Edit (model_index.json is_cosxl_edit): instruct's image latents are scaled by the VAE factor.
    public var cosxlEdit = false

    /// `encodeCondition`, or `encodePrompt` (nil as "") when there is none.
    func condition(_ text: String?) throws -> PromptEmbedding {
        if let e = encodeCondition { return try e(text) }
        return PromptEmbedding(hidden: try encodePrompt(text ?? ""), pooled: nil)
    }
    /// (shape, seed) -> standard-normal noise.
    public let randomNormal: ([Int], UInt64) -> Tensor
    public let backend: Backend
    /// The model's recommended settings for unset options (nil: ResolvedEdit's defaults).
    public let editDefaults: EditDefaults?
    /// (work width, work height, UNet batch items, bytes held at the input's size (PixelPolicy.inputPlaneBytes),
    /// what the caller can change about the size or nil) -> throws `.outOfMemory` when the request could not fit
    /// (StableDiffusionModel.checkWorkingSet); nil: no check.
    public let checkWorkingSet: ((Int, Int, Int, Int, String?) throws -> Void)?
    /// Changes whenever the weights do (LoRA fused or unfused): part of every cache key.
    public let weightsGeneration: () -> Int

    public init(unet: UNet2DConditionModel, vae: AutoencoderKL, schedulerConfig: SchedulerConfig, tokenizer: CLIPTokenizer,
                encodePrompt: @escaping (String) throws -> Tensor, randomNormal: @escaping ([Int], UInt64) -> Tensor,
                backend: Backend, editDefaults: EditDefaults? = nil, checkWorkingSet: ((Int, Int, Int, Int, String?) throws -> Void)? = nil,
                weightsGeneration: @escaping () -> Int = { 0 }) {
        self.unet = unet; self.vae = vae; self.schedulerConfig = schedulerConfig; self.tokenizer = tokenizer
        self.encodePrompt = encodePrompt; self.randomNormal = randomNormal; self.backend = backend
        self.editDefaults = editDefaults
        self.checkWorkingSet = checkWorkingSet
        self.weightsGeneration = weightsGeneration
    }

    /// p2p's token alignment for a resolved edit: the caller's `reweight` plus the edited words'
    /// newWordWeight, and LocalBlend's words (with blendNextWord). Shared by the image and the video path.
    func p2pAlignment(_ r: ResolvedEdit, reweight: [String: Float]) throws -> PromptAlignment {
        let tok = tokenizer
        return try PromptAlignment(source: r.sourcePrompt, target: r.prompt, reweight: r.reweight(user: reweight),
                                   blendNextWord: r.blendNextWord, tokenize: { tok.tokenize($0).flatMap { $0 } })
    }

    /// VAE down-sampling factor.
    public var vaeFactor: Int { vae.config.downsampleFactor }
    /// Image sizes must be multiples of this (VAE factor times the UNet's down-sampling).
    public var sizeMultiple: Int { vaeFactor * (1 << max(unet.config.block_out_channels.count - 1, 0)) }
    /// The model's native image size: UNet sample_size x VAE factor.
    public var nativeSize: Int { unet.config.sample_size * vaeFactor }
}
