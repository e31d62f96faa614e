/// Configurations of the three networks, decoded from diffusers' config.json files (the same keys),
/// or built by the single-file loader from tensor shapes. Defaults are diffusers' defaults.

/// Int or per-block list (attention_head_dim, num_attention_heads, transformer_layers_per_block, the UNet's
/// layers_per_block).
public enum IntOrList: Codable, Equatable, Sendable {
    case int(Int)
    case list([Int])
    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let v = try? c.decode(Int.self) { self = .int(v) } else { self = .list(try c.decode([Int].self)) }
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self { case .int(let v): try c.encode(v); case .list(let v): try c.encode(v) }
    }
    /// Value for block i of n (an empty list, which the config checks refuse, reads as 0).
    public func value(_ i: Int) -> Int {
        switch self { case .int(let v): return v; case .list(let v): return v.isEmpty ? 0 : v[min(max(i, 0), v.count - 1)] }
    }
    /// The one value every block has (an int, or a list of equal entries); nil for a list that varies.
    public var uniform: Int? {
        switch self {
        case .int(let v): return v
        case .list(let v): return v.first.flatMap { f in v.allSatisfy { $0 == f } ? f : nil }
        }
    }
    /// The largest value over `n` blocks (0 for an empty list).
    public func maximum(over n: Int) -> Int { (0..<max(n, 1)).map(value).max() ?? 0 }
    /// As config.json writes it: an Int or an [Int].
    public var jsonValue: Any {
        switch self { case .int(let v): return v; case .list(let v): return v }
    }
}

public struct UNetConfig: Codable, Equatable, Sendable {
    public var sample_size: Int = 64
    public var in_channels: Int = 4
    public var out_channels: Int = 4
    public var flip_sin_to_cos: Bool = true
    public var freq_shift: Int = 0
    public var down_block_types: [String] = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"]
    public var up_block_types: [String] = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]
    public var mid_block_type: String? = "UNetMidBlock2DCrossAttn"
    public var block_out_channels: [Int] = [320, 640, 1280, 1280]
    /// Resnets per down block (the up blocks have one more): one for every block, or one per block.
    public var layers_per_block: IntOrList = .int(2)
    public var downsample_padding: Int = 1
    public var mid_block_scale_factor: Float = 1
    public var act_fn: String = "silu"
    public var norm_num_groups: Int = 32
    public var norm_eps: Float = 1e-5
    public var cross_attention_dim: Int = 768
    public var attention_head_dim: IntOrList = .int(8)
    /// diffusers' naming quirk: when null, heads = attention_head_dim (which really is the head count).
    public var num_attention_heads: IntOrList? = nil
    public var use_linear_projection: Bool = false
    public var upcast_attention: Bool = false
    public var transformer_layers_per_block: IntOrList = .int(1)
    public var only_cross_attention: Bool = false
    public var dual_cross_attention: Bool = false
    public var class_embed_type: String? = nil
    public var resnet_time_scale_shift: String = "default"
    /// SDXL: "text_time" (pooled text embeds + sinusoidal time ids through add_embedding); nil for SD 1.x/2.x.
    public var addition_embed_type: String? = nil
    public var addition_time_embed_dim: Int? = nil
    public var projection_class_embeddings_input_dim: Int? = nil

    public init() {}

    /// Number of attention heads for down-block i (diffusers: num_attention_heads or attention_head_dim).
    public func heads(block i: Int) -> Int { (num_attention_heads ?? attention_head_dim).value(i) }

    /// Resnets in down block i (up block levels-1-i has one more).
    public func resnets(block i: Int) -> Int { layers_per_block.value(i) }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = UNetConfig()
        func get<T: Decodable>(_ k: CodingKeys, _ def: T) throws -> T { try c.decodeIfPresent(T.self, forKey: k) ?? def }
        sample_size = try get(.sample_size, d.sample_size)
        in_channels = try get(.in_channels, d.in_channels)
        out_channels = try get(.out_channels, d.out_channels)
        flip_sin_to_cos = try get(.flip_sin_to_cos, d.flip_sin_to_cos)
        freq_shift = try get(.freq_shift, d.freq_shift)
        down_block_types = try get(.down_block_types, d.down_block_types)
        up_block_types = try get(.up_block_types, d.up_block_types)
        mid_block_type = try c.decodeIfPresent(String.self, forKey: .mid_block_type) ?? (c.contains(.mid_block_type) ? nil : d.mid_block_type)
        block_out_channels = try get(.block_out_channels, d.block_out_channels)
        layers_per_block = try get(.layers_per_block, d.layers_per_block)
        downsample_padding = try get(.downsample_padding, d.downsample_padding)
        mid_block_scale_factor = try get(.mid_block_scale_factor, d.mid_block_scale_factor)
        act_fn = try get(.act_fn, d.act_fn)
        norm_num_groups = try get(.norm_num_groups, d.norm_num_groups)
        norm_eps = try get(.norm_eps, d.norm_eps)
        cross_attention_dim = try get(.cross_attention_dim, d.cross_attention_dim)
        attention_head_dim = try get(.attention_head_dim, d.attention_head_dim)
        num_attention_heads = try c.decodeIfPresent(IntOrList.self, forKey: .num_attention_heads)
        use_linear_projection = try get(.use_linear_projection, d.use_linear_projection)
        upcast_attention = try get(.upcast_attention, d.upcast_attention)
        transformer_layers_per_block = try get(.transformer_layers_per_block, d.transformer_layers_per_block)
        only_cross_attention = (try? c.decodeIfPresent(Bool.self, forKey: .only_cross_attention)) ?? false
        dual_cross_attention = try get(.dual_cross_attention, d.dual_cross_attention)
        class_embed_type = try c.decodeIfPresent(String.self, forKey: .class_embed_type)
        resnet_time_scale_shift = try get(.resnet_time_scale_shift, d.resnet_time_scale_shift)
        addition_embed_type = try c.decodeIfPresent(String.self, forKey: .addition_embed_type)
        addition_time_embed_dim = try c.decodeIfPresent(Int.self, forKey: .addition_time_embed_dim)
        projection_class_embeddings_input_dim = try c.decodeIfPresent(Int.self, forKey: .projection_class_embeddings_input_dim)
    }
}

public struct VAEConfig: Codable, Equatable, Sendable {
    public var in_channels: Int = 3
    public var out_channels: Int = 3
    public var down_block_types: [String] = ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"]
    public var up_block_types: [String] = ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"]
    public var block_out_channels: [Int] = [128, 256, 512, 512]
    public var layers_per_block: Int = 2
    public var act_fn: String = "silu"
    public var latent_channels: Int = 4
    public var norm_num_groups: Int = 32
    public var sample_size: Int = 512
    public var scaling_factor: Float = 0.18215
    public var shift_factor: Float? = nil
    public var force_upcast: Bool = true
    public var use_quant_conv: Bool = true
    public var use_post_quant_conv: Bool = true
    public var mid_block_add_attention: Bool = true

    public init() {}

    /// Spatial down-sampling factor: 2^(levels-1).
    public var downsampleFactor: Int { 1 << (block_out_channels.count - 1) }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = VAEConfig()
        func get<T: Decodable>(_ k: CodingKeys, _ def: T) throws -> T { try c.decodeIfPresent(T.self, forKey: k) ?? def }
        in_channels = try get(.in_channels, d.in_channels)
        out_channels = try get(.out_channels, d.out_channels)
        down_block_types = try get(.down_block_types, d.down_block_types)
        up_block_types = try get(.up_block_types, d.up_block_types)
        block_out_channels = try get(.block_out_channels, d.block_out_channels)
        layers_per_block = try get(.layers_per_block, d.layers_per_block)
        act_fn = try get(.act_fn, d.act_fn)
        latent_channels = try get(.latent_channels, d.latent_channels)
        norm_num_groups = try get(.norm_num_groups, d.norm_num_groups)
        sample_size = try get(.sample_size, d.sample_size)
        scaling_factor = try get(.scaling_factor, d.scaling_factor)
        shift_factor = try c.decodeIfPresent(Float.self, forKey: .shift_factor)
        force_upcast = try get(.force_upcast, d.force_upcast)
        use_quant_conv = try get(.use_quant_conv, d.use_quant_conv)
        use_post_quant_conv = try get(.use_post_quant_conv, d.use_post_quant_conv)
        mid_block_add_attention = try get(.mid_block_add_attention, d.mid_block_add_attention)
    }
}

public struct CLIPTextConfig: Codable, Equatable, Sendable {
    public var vocab_size: Int = 49408
    public var hidden_size: Int = 768
    public var intermediate_size: Int = 3072
    public var num_hidden_layers: Int = 12
    public var num_attention_heads: Int = 12
    public var max_position_embeddings: Int = 77
    public var hidden_act: String = "quick_gelu"   // SD2 OpenCLIP: "gelu"
    public var layer_norm_eps: Float = 1e-5
    public var projection_dim: Int = 768
    public var pad_token_id: Int = 1
    public var bos_token_id: Int = 49406
    public var eos_token_id: Int = 49407

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = CLIPTextConfig()
        func get<T: Decodable>(_ k: CodingKeys, _ def: T) throws -> T { try c.decodeIfPresent(T.self, forKey: k) ?? def }
        vocab_size = try get(.vocab_size, d.vocab_size)
        hidden_size = try get(.hidden_size, d.hidden_size)
        intermediate_size = try get(.intermediate_size, d.intermediate_size)
        num_hidden_layers = try get(.num_hidden_layers, d.num_hidden_layers)
        num_attention_heads = try get(.num_attention_heads, d.num_attention_heads)
        max_position_embeddings = try get(.max_position_embeddings, d.max_position_embeddings)
        hidden_act = try get(.hidden_act, d.hidden_act)
        layer_norm_eps = try get(.layer_norm_eps, d.layer_norm_eps)
        projection_dim = try get(.projection_dim, d.projection_dim)
        pad_token_id = try get(.pad_token_id, d.pad_token_id)
        bos_token_id = try get(.bos_token_id, d.bos_token_id)
        eos_token_id = try get(.eos_token_id, d.eos_token_id)
    }
}

/// diffusers scheduler_config.json (keys shared by DDIM, Euler, DPM-Solver++, PNDM configs).
public struct SchedulerConfig: Codable, Equatable, Sendable {
    public var _class_name: String = "DDIMScheduler"
    public var num_train_timesteps: Int = 1000
    public var beta_start: Float = 0.00085
    public var beta_end: Float = 0.012
    public var beta_schedule: String = "scaled_linear"
    public var prediction_type: String = "epsilon"
    public var timestep_spacing: String = "leading"
    public var steps_offset: Int = 1
    public var set_alpha_to_one: Bool = false
    public var clip_sample: Bool = false
    public var clip_sample_range: Float = 1
    public var rescale_betas_zero_snr: Bool = false
    public var final_sigmas_type: String = "zero"
    /// Euler and DPM-Solver++: run at Karras et al.'s noise levels (DPM++ 2M Karras).
    public var use_karras_sigmas: Bool = false
    /// EDMEulerScheduler (CosXL): the EDM noise range, data std, schedule shape.
    public var sigma_min: Float = 0.002
    public var sigma_max: Float = 80
    public var sigma_data: Float = 0.5
    public var sigma_schedule: String = "karras"
    public var rho: Float = 7

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = SchedulerConfig()
        // absent or null: diffusers' default; a value of the wrong type is an error naming the field
        // (it used to fall back to the default silently, so num_train_timesteps 1000.5 ran as 1000)
        func get<T: Decodable>(_ k: CodingKeys, _ def: T) throws -> T { try c.decodeIfPresent(T.self, forKey: k) ?? def }
        _class_name = try get(._class_name, d._class_name)
        num_train_timesteps = try get(.num_train_timesteps, d.num_train_timesteps)
        beta_start = try get(.beta_start, d.beta_start)
        beta_end = try get(.beta_end, d.beta_end)
        beta_schedule = try get(.beta_schedule, d.beta_schedule)
        prediction_type = try get(.prediction_type, d.prediction_type)
        timestep_spacing = try get(.timestep_spacing, d.timestep_spacing)
        steps_offset = try get(.steps_offset, d.steps_offset)
        // absent: diffusers' DDIMScheduler default (true), what DDIMScheduler.from_config gives for a config that
        // lacks the key (SDXL's EulerDiscreteScheduler config); the struct's own default (false) is SD 1.x/2.x's value
        set_alpha_to_one = try get(.set_alpha_to_one, true)
        clip_sample = try get(.clip_sample, true)                // absent: DDIMScheduler's default, as set_alpha_to_one
        clip_sample_range = try get(.clip_sample_range, d.clip_sample_range)
        rescale_betas_zero_snr = try get(.rescale_betas_zero_snr, d.rescale_betas_zero_snr)
        final_sigmas_type = try get(.final_sigmas_type, d.final_sigmas_type)
        use_karras_sigmas = try get(.use_karras_sigmas, d.use_karras_sigmas)
        sigma_min = try get(.sigma_min, d.sigma_min)
        sigma_max = try get(.sigma_max, d.sigma_max)
        sigma_data = try get(.sigma_data, d.sigma_data)
        sigma_schedule = try get(.sigma_schedule, d.sigma_schedule)
        rho = try get(.rho, d.rho)
    }
}

/// diffusers ControlNetModel config: the UNet encoder's fields (read into `unet`: block_out_channels,
/// down_block_types, heads, ...; the UNet decoder's fields do not exist here) and the ControlNet's own.
public struct ControlNetConfig: Codable, Equatable, Sendable {
    public var unet = UNetConfig()
    /// Channels of the control image (3, RGB in [0, 1]).
    public var conditioning_channels: Int = 3
    /// ControlNetConditioningEmbedding's convolutions: one stride-2 step between consecutive entries.
    public var conditioning_embedding_out_channels: [Int] = [16, 32, 96, 256]
    /// Shuffle-style ControlNets average their residuals over space (not supported).
    public var global_pool_conditions: Bool = false
    /// "rgb" or "bgr" (the control image's channels are flipped before the net).
    public var controlnet_conditioning_channel_order: String = "rgb"

    public init() {}

    enum Keys: String, CodingKey {
        case conditioning_channels, conditioning_embedding_out_channels, global_pool_conditions,
             controlnet_conditioning_channel_order
    }

    public init(from decoder: Decoder) throws {
        unet = try UNetConfig(from: decoder)
        unet.up_block_types = []
        let c = try decoder.container(keyedBy: Keys.self)
        let d = ControlNetConfig()
        conditioning_channels = try c.decodeIfPresent(Int.self, forKey: .conditioning_channels) ?? d.conditioning_channels
        conditioning_embedding_out_channels = try c.decodeIfPresent([Int].self, forKey: .conditioning_embedding_out_channels)
            ?? d.conditioning_embedding_out_channels
        global_pool_conditions = try c.decodeIfPresent(Bool.self, forKey: .global_pool_conditions) ?? false
        controlnet_conditioning_channel_order = try c.decodeIfPresent(String.self, forKey: .controlnet_conditioning_channel_order) ?? "rgb"
    }

    public func encode(to encoder: Encoder) throws {
        try unet.encode(to: encoder)
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(conditioning_channels, forKey: .conditioning_channels)
        try c.encode(conditioning_embedding_out_channels, forKey: .conditioning_embedding_out_channels)
        try c.encode(global_pool_conditions, forKey: .global_pool_conditions)
        try c.encode(controlnet_conditioning_channel_order, forKey: .controlnet_conditioning_channel_order)
    }
}
