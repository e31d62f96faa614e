/// Prompt encoding, latent <-> image conversion and classifier-free guidance: the pieces the
/// text-to-image pipeline and the editing methods share.
extension StableDiffusionModel {
    /// Token ids of `text`: start, BPE ids (truncated), end, padding to `maxTokens` (as diffusers'
    /// tokenizer(padding="max_length", truncation=True)).
    public func tokenize(_ text: String) -> [Int32] { tokenizer.encode(text, maxLength: maxTokens) }

    /// text -> [1, 77, D]: what the UNet attends to (SD 1.x/2.x: the text encoder's last_hidden_state; SDXL:
    /// both encoders' penultimate hidden states concatenated, see `encodeCondition`).
    public func encodePrompt(_ text: String) throws -> Tensor {
        if isXL { return try encodeCondition(text).hidden }
        return try textEncoder.encode(ids: [tokenize(text)])
    }

    /// A prompt's whole conditioning. `text` nil = "no prompt" (a negative prompt not given): SD 1.x/2.x encode
    /// "", SDXL gives zeros when the model says force_zeros_for_empty_prompt (diffusers' encode_prompt with
    /// negative_prompt=None), else encodes "". SDXL (StableDiffusionXLPipeline.encode_prompt, clip_skip None):
    /// hidden = [text_encoder's hidden_states[-2] ++ text_encoder_2's hidden_states[-2]] on the feature axis
    /// [1, 77, D1 + D2], pooled = text_encoder_2's text_embeds [1, P]; each encoder with its own tokenizer.
    public func encodeCondition(_ text: String?) throws -> PromptEmbedding {
        guard let te2 = textEncoder2, let tok2 = tokenizer2 else {
            return PromptEmbedding(hidden: try textEncoder.encode(ids: [tokenize(text ?? "")]), pooled: nil)
        }
        let d = unetConfig.cross_attention_dim, l = maxTokens
        if text == nil && forceZerosForEmptyPrompt {
            return PromptEmbedding(hidden: Tensor(shape: [1, l, d]), pooled: Tensor(shape: [1, te2.config.projection_dim]))
        }
        let t = text ?? ""
        let (h1, _) = try textEncoder.encodeForSDXL(ids: [tokenize(t)])                   // [1, L, D1]
        let (h2, pooled) = try te2.encodeForSDXL(ids: [tok2.encode(t, maxLength: te2.config.max_position_embeddings)])  // [1, L, D2], [1, P]
        guard h1.shape[1] == h2.shape[1] else {
            throw DiffEditError.model("\(origin): the two text encoders give \(h1.shape[1]) and \(h2.shape[1]) tokens")
        }
        let (d1, d2) = (h1.shape[2], h2.shape[2])
        let h = Tensor(shape: [1, h1.shape[1], d1 + d2], zeroed: false)
        for i in 0..<h1.shape[1] {
            (h.data + i * (d1 + d2)).update(from: h1.data + i * d1, count: d1)
            (h.data + i * (d1 + d2) + d1).update(from: h2.data + i * d2, count: d2)
        }
        return PromptEmbedding(hidden: h, pooled: pooled)
    }

    /// SDXL's added conditioning for `pooled` [N, P] at a width x height image: time ids (original size,
    /// crop top-left, target size) = (H, W, 0, 0, H, W), as StableDiffusionXLPipeline with its defaults;
    /// [N, P + 6 td] (nil for SD 1.x/2.x).
    public func addedConditioning(pooled: [Tensor?], width: Int, height: Int) throws -> Tensor? {
        try unet.addedConditioning(pooled: pooled, width: width, height: height)
    }

    /// Several prompts in one batch -> [N, 77, D].
    public func encodePrompts(_ texts: [String]) throws -> Tensor {
        guard !texts.isEmpty else { throw DiffEditError.invalidArgument("prompts: no prompt given") }
        return try textEncoder.encode(ids: texts.map { tokenize($0) })
    }

    /// Image -> scaled latents [1, C, H/f, W/f]: (posterior mean - shift_factor) * scaling_factor.
    /// Width and height must be multiples of the VAE factor.
    public func encodeImage(_ image: RGBImage) throws -> Tensor {
        try checkImageSize(width: image.width, height: image.height)
        let mean = try vae.encodeMean(try image.tensor(range: .signed))         // [1, C, h, w]
        return LatentScaling.scale(mean, vaeConfig)
    }

    /// Scaled latents [B, C, h, w] -> decoded images [B, 3, H, W] in about [-1, 1] (not clamped).
    public func decodeLatents(_ latents: Tensor) throws -> Tensor {
        // the denoising is done: the UNet's mapped pages, the provider's large op buffers and the free heap make room for the VAE
        unet.weightTally.releaseMappedPages()
        backend.shrinkScratch()
        HeapTrim.releaseFreePages()
        return try vae.decode(LatentScaling.unscale(latents, vaeConfig))     // [B, 3, H, W]
    }

    /// Scaled latents -> an 8-bit image (item `batch`), as diffusers' postprocess: ((x / 2 + 0.5)
    /// clamped to [0, 1] * 255).round().
    public func latentsToImage(_ latents: Tensor, batch: Int = 0) throws -> RGBImage {
        let x = try decodeLatents(latents.slice0(batch, 1))
        return try RGBImage(tensor: x, range: .signed)
    }

    /// Throws `.invalidArgument` naming width/height unless both are positive multiples of the VAE factor.
    public func checkImageSize(width: Int, height: Int) throws {
        let f = vaeFactor
        for (name, v) in [("width", width), ("height", height)] {
            guard v > 0, v % f == 0 else {
                throw DiffEditError.invalidArgument("\(name): \(v) must be a positive multiple of the VAE factor \(f)")
            }
            guard v <= 16384 else {
                throw DiffEditError.invalidArgument("\(name): \(v) is too large (at most 16384)")
            }
        }
    }

    /// Standard-normal noise from `seed` (identical to torch.randn with a CPU generator seeded so).
    public func randomNormal(_ shape: [Int], seed: UInt64) -> Tensor {
        var rng = RNG(seed: seed)
        return rng.normal(shape)
    }
}

/// VAE latent scaling (diffusers: latents = (mean - shift_factor) * scaling_factor; decode at
/// latents / scaling_factor + shift_factor; shift_factor is absent, i.e. 0, for SD 1.x/2.x).
public enum LatentScaling {
    public static func scale(_ mean: Tensor, _ vae: VAEConfig) -> Tensor {
        let s = vae.scaling_factor, sh = vae.shift_factor ?? 0
        let y = Tensor(shape: mean.shape, zeroed: false)
        let src = mean.data, dst = y.data
        if sh == 0 { for i in 0..<y.count { dst[i] = src[i] * s } } else { for i in 0..<y.count { dst[i] = (src[i] - sh) * s } }
        return y
    }

    public static func unscale(_ z: Tensor, _ vae: VAEConfig) -> Tensor {
        let s = vae.scaling_factor, sh = vae.shift_factor ?? 0
        let y = Tensor(shape: z.shape, zeroed: false)
        let src = z.data, dst = y.data
        if sh == 0 { for i in 0..<y.count { dst[i] = src[i] / s } } else { for i in 0..<y.count { dst[i] = src[i] / s + sh } }
        return y
    }
}
