import FoundationEssentials

/// A loaded Stable Diffusion 1.x/2.x model: tokenizer, CLIP text encoder, UNet, VAE and the scheduler
/// configuration, from a diffusers folder or a single-file .safetensors (see `CheckpointLoader`).
/// Weights are shared read-only; a model can serve several pipelines/contexts at once.
public final class StableDiffusionModel: @unchecked Sendable {
    public let tokenizer: CLIPTokenizer
    public let textEncoder: CLIPTextModel
    /// SDXL's second tokenizer and text encoder (nil for SD 1.x/2.x).
    public let tokenizer2: CLIPTokenizer?
    public let textEncoder2: CLIPTextModel?
    /// SDXL: no negative prompt means zero negative conditioning (model_index.json's force_zeros_for_empty_prompt).
    public let forceZerosForEmptyPrompt: Bool
    /// CosXL-Edit checkpoints (model_index.json is_cosxl_edit): instruct's image latents are scaled.
    public let isCosXLEdit: Bool
    public var isXL: Bool { textEncoder2 != nil }
    public let unet: UNet2DConditionModel
    public let vae: AutoencoderKL
    public let schedulerConfig: SchedulerConfig
    public let unetConfig: UNetConfig
    public let vaeConfig: VAEConfig
    public let textConfig: CLIPTextConfig
    /// "sd1", "sd2", "sdxl", "instruct" (8 UNet input channels) or "inpaint" (9).
    public let kind: String
    /// The path it was loaded from.
    public let origin: String
    /// "folder" or "single-file".
    public let layout: String
    /// The dtype most weights were stored in ("F16", "F32", "BF16").
    public let dtype: String
    public let backend: Backend
    /// How linear and conv weights are kept in memory (WeightsDType; reduced only on a backend that
    /// reads them in place, see Backend.keepsReducedWeights).
    public let weightsDType: WeightsDType
    /// Editing settings the model recommends (EditDefaults), used where the caller leaves them unset.
    public let editDefaults: EditDefaults?
    /// The LoRA files fused into the weights now, and what undoes them (StableDiffusionModel+LoRA).
    let loraState = LoRAState()
    /// The caller's memory limit for weights + a request's working set (nil: available / physical memory).
    public let maxMemory: Int?
    /// The weights' size estimated from the configs (`ModelSizeEstimate`), in bytes of f32.
    public let estimatedWeightBytes: Int
    /// The ControlNets loaded for this model and still alive, with their estimated sizes (within maxMemory too).
    let controlNets = ControlNetTally()

    /// Builds the networks from a checkpoint (every tensor loaded and shape-checked).
    public init(checkpoint ck: LoadedCheckpoint, backend: Backend, maxMemory: Int? = nil,
                weightsDType: WeightsDType = .auto) throws {
        try ck.checkConfigLimits()   // before any array is sized from a config value
        estimatedWeightBytes = try Self.checkModelSize(ck, limit: maxMemory)   // before any tensor is read
        self.maxMemory = maxMemory
        if let v = ck.tokenizerVocabPath, let m = ck.tokenizerMergesPath {
            tokenizer = try CLIPTokenizer(vocabPath: v, mergesPath: m, padToken: ck.padToken)
        } else {
            tokenizer = try CLIPTokenizer.embedded(padToken: ck.padToken)
        }
        textEncoder = try CLIPTextModel(config: ck.textConfig, weights: ck.textEncoder, backend: backend, weightsDType: weightsDType)
        if let w2 = ck.textEncoder2, let c2 = ck.textConfig2 {
            if let v = ck.tokenizer2VocabPath, let m = ck.tokenizer2MergesPath {
                tokenizer2 = try CLIPTokenizer(vocabPath: v, mergesPath: m, padToken: ck.padToken2)
            } else {
                tokenizer2 = try CLIPTokenizer.embedded(padToken: ck.padToken2 ?? "!")
            }
            let te2 = try CLIPTextModel(config: c2, weights: w2, backend: backend, weightsDType: weightsDType)
            guard te2.textProjection != nil else {
                throw DiffEditError.model("\(ck.origin): text_encoder_2 has no text_projection.weight (SDXL's second encoder is a CLIPTextModelWithProjection)")
            }
            textEncoder2 = te2
        } else {
            tokenizer2 = nil; textEncoder2 = nil
        }
        forceZerosForEmptyPrompt = ck.forceZerosForEmptyPrompt
        isCosXLEdit = ck.isCosXLEdit
        unet = try UNet2DConditionModel(config: ck.unetConfig, weights: ck.unet, backend: backend, weightsDType: weightsDType)
        vae = try AutoencoderKL(config: ck.vaeConfig, weights: ck.vae, backend: backend, weightsDType: weightsDType)
        let contextWidth = ck.textConfig.hidden_size + (ck.textConfig2?.hidden_size ?? 0)
        guard ck.unetConfig.cross_attention_dim == contextWidth else {
            throw DiffEditError.model("\(ck.origin): UNet cross_attention_dim \(ck.unetConfig.cross_attention_dim) does not match the text encoder\(ck.isXL ? "s' hidden sizes \(ck.textConfig.hidden_size) + \(ck.textConfig2!.hidden_size)" : "'s hidden_size \(ck.textConfig.hidden_size)")")
        }
        if let pw = unet.pooledWidth {
            guard let c2 = ck.textConfig2, c2.projection_dim == pw else {
                throw DiffEditError.model("\(ck.origin): the UNet's add_embedding takes pooled text embeds of width \(pw) (projection_class_embeddings_input_dim - 6 x addition_time_embed_dim), but \(ck.textConfig2.map { "text_encoder_2's projection_dim is \($0.projection_dim)" } ?? "there is no second text encoder")")
            }
        } else if ck.isXL {
            throw DiffEditError.model("\(ck.origin): two text encoders but the UNet has no addition_embed_type text_time (an SDXL UNet needs it)")
        }
        guard ck.vaeConfig.latent_channels == ck.unetConfig.out_channels else {
            throw DiffEditError.model("\(ck.origin): VAE latent_channels \(ck.vaeConfig.latent_channels) does not match UNet out_channels \(ck.unetConfig.out_channels)")
        }
        schedulerConfig = ck.schedulerConfig
        unetConfig = ck.unetConfig
        vaeConfig = ck.vaeConfig
        textConfig = ck.textConfig
        kind = ck.kind
        origin = ck.origin
        editDefaults = ck.editDefaults
        layout = ck.layout
        dtype = ck.dtype
        self.backend = backend
        self.weightsDType = weightsDType
    }

    /// Loads `path` (a diffusers folder or .safetensors file; nil or "" = the embedded default model
    /// `defaultName`: toy-instruct for editing, toy-sd for text-to-image).
    /// `configFrom`: for a single file, a diffusers folder whose configs supply what tensor shapes cannot
    /// tell (norm groups, heads, sample size), like diffusers' from_single_file(config=...).
    public static func load(path: String?, backend: Backend, predictionType: String? = nil,
                            configFrom: String? = nil,
                            defaultName: String = DefaultModel.name, maxMemory: Int? = nil,
                            weightsDType: WeightsDType = .auto) throws -> StableDiffusionModel {
        let p: String
        if let path, !path.isEmpty { p = path } else { p = try DefaultModel.resolve(name: defaultName) }
        let ck = try CheckpointLoader.load(path: p, predictionType: predictionType, configFrom: configFrom)
        return try StableDiffusionModel(checkpoint: ck, backend: backend, maxMemory: maxMemory, weightsDType: weightsDType)
    }

    /// VAE spatial factor (8 for SD).
    public var vaeFactor: Int { vaeConfig.downsampleFactor }
    /// Latent channels (4 for SD).
    public var latentChannels: Int { vaeConfig.latent_channels }
    /// What the weights of the three networks hold in memory, by element type (WeightTally).
    public var weightMemory: WeightTally.Summary {
        unet.weightTally.summary + vae.weightTally.summary + textEncoder.weightTally.summary
            + (textEncoder2?.weightTally.summary ?? WeightTally.Summary())
    }

    /// Native image size: UNet sample_size x VAE factor (512 for SD 1.5, 768 for SD 2.x-v).
    public var nativeSize: Int { unetConfig.sample_size * vaeFactor }
    /// Token sequence length (77).
    public var maxTokens: Int { textConfig.max_position_embeddings }
}
