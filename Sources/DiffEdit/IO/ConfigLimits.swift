/// Bounds on the values of the model configs, checked when a config is read (`ConfigFile.decode`, so a
/// diffusers folder, a `--config-from` folder and a single file's `__metadata__` configs) and again when a
/// model is built from a checkpoint (`StableDiffusionModel(checkpoint:)`, for configs detected from tensor
/// shapes or made in code). A value out of range is `.model` naming the file (or checkpoint) and field,
/// before anything is allocated from it: a `layers_per_block` of 1e9 would otherwise make Swift trap on an
/// 8 GB array, and a `sample_size` of 4216 asks every edit for a 33728-pixel native image.
///
/// The maxima are far above every released Stable Diffusion 1.x/2.x/XL config (SDXL: 10 transformer layers,
/// 2 layers a block, 4 levels, 1280 channels, sample_size 128; CLIP: 32 layers, 77 positions).
public protocol LimitedConfig {
    /// Throws `.model` ("ORIGIN: field F: ...") when a value is outside its range.
    func checkLimits(origin: String) throws
}

public enum ConfigLimits {
    /// Largest UNet `sample_size`: native size = sample_size x the VAE factor (8) stays within 4096 px.
    public static let maxSampleSize = 512
    /// Largest native image size (UNet sample_size x VAE factor) a model may declare.
    public static let maxNativeSize = 4096
    public static let maxLayersPerBlock = 16
    public static let maxTransformerLayers = 64
    public static let maxTextLayers = 256
    public static let maxLevels = 8
    public static let maxChannels = 16384
    public static let maxIOChannels = 64
    public static let maxHeads = 4096
    public static let maxPositions = 8192
    public static let maxVocab = 1_000_000
    public static let maxTrainTimesteps = 100_000

    static func check(_ origin: String, _ field: String, _ v: Int, _ r: ClosedRange<Int>) throws {
        guard r.contains(v) else {
            throw DiffEditError.model("\(origin): field \(field): \(v) is out of range (expected \(r.lowerBound)...\(r.upperBound))")
        }
    }

    static func check(_ origin: String, _ field: String, _ v: IntOrList?, _ r: ClosedRange<Int>) throws {
        switch v {
        case .int(let x)?: try check(origin, field, x, r)
        case .list(let l)?:
            guard l.count <= maxLevels else {
                throw DiffEditError.model("\(origin): field \(field): \(l.count) entries (at most \(maxLevels) blocks)")
            }
            for (i, x) in l.enumerated() { try check(origin, "\(field)[\(i)]", x, r) }
        case nil: break
        }
    }

    static func check(_ origin: String, _ field: String, list l: [Int], _ r: ClosedRange<Int>) throws {
        guard (1...maxLevels).contains(l.count) else {
            throw DiffEditError.model("\(origin): field \(field): \(l.count) entries (expected 1...\(maxLevels))")
        }
        for (i, x) in l.enumerated() { try check(origin, "\(field)[\(i)]", x, r) }
    }

    static func check(_ origin: String, _ field: String, _ s: String, oneOf allowed: [String]) throws {
        guard allowed.contains(s) else {
            throw DiffEditError.model("\(origin): field \(field): \"\(s)\" is not supported (use \(allowed.joined(separator: ", ")))")
        }
    }

    /// The UNet's and the VAE's down/up block lists: at most `maxLevels` each.
    static func checkLevels(_ origin: String, down: [String], up: [String]) throws {
        guard down.count <= maxLevels, up.count <= maxLevels else {
            throw DiffEditError.model("\(origin): field down_block_types/up_block_types: more than \(maxLevels) blocks")
        }
    }

    static func checkFinite(_ origin: String, _ field: String, _ v: Float, _ ok: (Float) -> Bool, _ expected: String) throws {
        guard v.isFinite, ok(v) else {
            throw DiffEditError.model("\(origin): field \(field): \(v) is out of range (expected \(expected))")
        }
    }
}

extension UNetConfig: LimitedConfig {
    public func checkLimits(origin o: String) throws {
        typealias L = ConfigLimits
        try L.check(o, "sample_size", sample_size, 1...L.maxSampleSize)
        try L.check(o, "in_channels", in_channels, 1...L.maxIOChannels)
        try L.check(o, "out_channels", out_channels, 1...L.maxIOChannels)
        try L.check(o, "block_out_channels", list: block_out_channels, 1...L.maxChannels)
        try L.check(o, "layers_per_block", layers_per_block, 1...L.maxLayersPerBlock)
        try L.check(o, "transformer_layers_per_block", transformer_layers_per_block, 0...L.maxTransformerLayers)
        try L.check(o, "attention_head_dim", attention_head_dim, 1...L.maxHeads)
        try L.check(o, "num_attention_heads", num_attention_heads, 1...L.maxHeads)
        try L.check(o, "cross_attention_dim", cross_attention_dim, 1...L.maxChannels)
        try L.check(o, "norm_num_groups", norm_num_groups, 1...L.maxChannels)
        try L.checkLevels(o, down: down_block_types, up: up_block_types)
    }
}

extension VAEConfig: LimitedConfig {
    public func checkLimits(origin o: String) throws {
        typealias L = ConfigLimits
        try L.check(o, "in_channels", in_channels, 1...L.maxIOChannels)
        try L.check(o, "out_channels", out_channels, 1...L.maxIOChannels)
        try L.check(o, "latent_channels", latent_channels, 1...L.maxIOChannels)
        try L.check(o, "block_out_channels", list: block_out_channels, 1...L.maxChannels)
        try L.check(o, "layers_per_block", layers_per_block, 1...L.maxLayersPerBlock)
        try L.check(o, "norm_num_groups", norm_num_groups, 1...L.maxChannels)
        try L.check(o, "sample_size", sample_size, 1...65536)
        try L.checkFinite(o, "scaling_factor", scaling_factor, { $0 != 0 }, "a finite, non-zero number")
        if let s = shift_factor { try L.checkFinite(o, "shift_factor", s, { _ in true }, "a finite number") }
        try L.checkLevels(o, down: down_block_types, up: up_block_types)
    }
}

extension CLIPTextConfig: LimitedConfig {
    public func checkLimits(origin o: String) throws {
        typealias L = ConfigLimits
        try L.check(o, "num_hidden_layers", num_hidden_layers, 0...L.maxTextLayers)
        try L.check(o, "hidden_size", hidden_size, 1...L.maxChannels)
        try L.check(o, "intermediate_size", intermediate_size, 1...(4 * L.maxChannels))
        try L.check(o, "num_attention_heads", num_attention_heads, 1...L.maxHeads)
        try L.check(o, "max_position_embeddings", max_position_embeddings, 1...L.maxPositions)
        try L.check(o, "vocab_size", vocab_size, 1...L.maxVocab)
        try L.check(o, "projection_dim", projection_dim, 0...L.maxChannels)
    }
}

extension ControlNetConfig: LimitedConfig {
    /// The encoder copy's UNet fields and the conditioning embedding's (a ControlNet's config.json, or one
    /// detected from a single file's shapes).
    public func checkLimits(origin o: String) throws {
        typealias L = ConfigLimits
        try unet.checkLimits(origin: o)
        try L.check(o, "conditioning_channels", conditioning_channels, 1...L.maxIOChannels)
        try L.check(o, "conditioning_embedding_out_channels", list: conditioning_embedding_out_channels, 1...L.maxChannels)
    }
}

extension SchedulerConfig: LimitedConfig {
    /// Everything the schedulers would refuse at edit time, refused at load instead (diffusers' ranges).
    public func checkLimits(origin o: String) throws {
        typealias L = ConfigLimits
        try L.check(o, "num_train_timesteps", num_train_timesteps, 2...L.maxTrainTimesteps)
        try L.check(o, "beta_schedule", beta_schedule, oneOf: ["linear", "scaled_linear", "squaredcos_cap_v2"])
        try L.checkFinite(o, "beta_start", beta_start, { $0 >= 0 && $0 < 1 }, "0 <= beta_start < 1")
        try L.checkFinite(o, "beta_end", beta_end, { $0 >= 0 && $0 < 1 }, "0 <= beta_end < 1")
        try L.check(o, "prediction_type", prediction_type, oneOf: ["epsilon", "v_prediction", "sample"])
        try L.check(o, "timestep_spacing", timestep_spacing, oneOf: ["leading", "trailing", "linspace"])
        try L.check(o, "steps_offset", steps_offset, 0...(num_train_timesteps - 1))
        try L.check(o, "final_sigmas_type", final_sigmas_type, oneOf: ["zero", "sigma_min"])
        try L.checkFinite(o, "clip_sample_range", clip_sample_range, { $0 > 0 }, "a positive number")
        // the betas themselves (what the schedulers build at edit time): finite and in [0, 1)
        do {
            _ = try NoiseSchedule(config: self)
        } catch let e as DiffEditError {
            throw DiffEditError.model("\(o): \(e.message)")
        }
    }
}

extension LoadedCheckpoint {
    /// The limits of every config of the checkpoint, and the native size they give together.
    public func checkConfigLimits() throws {
        try unetConfig.checkLimits(origin: "\(origin) (unet config)")
        try vaeConfig.checkLimits(origin: "\(origin) (vae config)")
        try textConfig.checkLimits(origin: "\(origin) (text encoder config)")
        try textConfig2?.checkLimits(origin: "\(origin) (text_encoder_2 config)")
        try schedulerConfig.checkLimits(origin: "\(origin) (scheduler config)")
        let native = unetConfig.sample_size * vaeConfig.downsampleFactor
        guard native <= ConfigLimits.maxNativeSize else {
            throw DiffEditError.model("\(origin) (unet config): field sample_size: \(unetConfig.sample_size) x the VAE factor \(vaeConfig.downsampleFactor) = native size \(native) px, above the maximum \(ConfigLimits.maxNativeSize)")
        }
    }
}
