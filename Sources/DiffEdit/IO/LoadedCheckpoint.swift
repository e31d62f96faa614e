/// A model as found on disk: configs of the three networks plus weight sources that use the clean
/// diffusers/transformers names, whatever the file layout was.
/// UNet names: "conv_in.weight", "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight", ...
/// VAE names: "encoder.down_blocks.0.resnets.0.conv1.weight", "quant_conv.weight", ...
/// Text names: "text_model.embeddings.token_embedding.weight", "text_model.encoder.layers.0.self_attn.q_proj.weight",
/// ..., "text_model.final_layer_norm.weight".
public struct LoadedCheckpoint {
    /// The path the user gave (folder or file).
    public var origin: String
    public var unetConfig: UNetConfig
    public var vaeConfig: VAEConfig
    public var textConfig: CLIPTextConfig
    public var schedulerConfig: SchedulerConfig
    public var unet: WeightSource
    public var vae: WeightSource
    public var textEncoder: WeightSource
    /// tokenizer/vocab.json and merges.txt of a diffusers folder; nil for single files (use the
    /// embedded CLIP vocabulary).
    public var tokenizerVocabPath: String?
    public var tokenizerMergesPath: String?
    /// The padding token ("<|endoftext|>" for SD1's CLIP, "!" for SD2's OpenCLIP tokenizer).
    public var padToken: String?
    /// "sd1", "sd2", "instruct" (8 UNet input channels), "inpaint" (9).
    public var kind: String
    /// "folder" or "single-file".
    public var layout: String = "folder"
    /// The dtype most weights are stored in ("F16", "F32", "BF16").
    public var dtype: String = ""
    /// Editing settings the model recommends (diffedit.json / "diffedit.edit_defaults" metadata), if any.
    public var editDefaults: EditDefaults? = nil
    /// SDXL: the second text encoder (OpenCLIP ViT-bigG as transformers' CLIPTextModelWithProjection, clean
    /// `text_model.*` + `text_projection.weight` names), its config and tokenizer (nil: SD 1.x/2.x).
    public var textEncoder2: WeightSource? = nil
    public var textConfig2: CLIPTextConfig? = nil
    public var tokenizer2VocabPath: String? = nil
    public var tokenizer2MergesPath: String? = nil
    /// tokenizer_2's padding token ("!" for SDXL's OpenCLIP tokenizer).
    public var padToken2: String? = nil
    /// SDXL pipelines: no negative prompt = zero negative conditioning (model_index.json's
    /// force_zeros_for_empty_prompt, true by default).
    public var forceZerosForEmptyPrompt: Bool = true
    /// CosXL-Edit (model_index.json is_cosxl_edit): InstructPix2Pix image latents scaled by the VAE factor.
    public var isCosXLEdit: Bool = false
    public var isXL: Bool { textEncoder2 != nil }

    public init(origin: String, unetConfig: UNetConfig, vaeConfig: VAEConfig, textConfig: CLIPTextConfig,
                schedulerConfig: SchedulerConfig, unet: WeightSource, vae: WeightSource, textEncoder: WeightSource,
                tokenizerVocabPath: String? = nil, tokenizerMergesPath: String? = nil, padToken: String? = nil,
                kind: String, layout: String = "folder", dtype: String = "") {
        self.origin = origin; self.unetConfig = unetConfig; self.vaeConfig = vaeConfig; self.textConfig = textConfig
        self.schedulerConfig = schedulerConfig; self.unet = unet; self.vae = vae; self.textEncoder = textEncoder
        self.tokenizerVocabPath = tokenizerVocabPath; self.tokenizerMergesPath = tokenizerMergesPath
        self.padToken = padToken; self.kind = kind; self.layout = layout; self.dtype = dtype
    }
}
