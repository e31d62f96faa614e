import FoundationEssentials

/// Configs given alongside a single file, for what tensor shapes cannot tell (head counts,
/// norm groups, scaling factor, scheduler): a diffusers folder (`configFrom`, like diffusers'
/// `from_single_file(config=...)`) or JSON strings in the file's `__metadata__` under
/// "diffedit.unet_config", "diffedit.vae_config", "diffedit.text_config", "diffedit.scheduler_config".
/// Given configs must agree with the shapes in the file; a contradiction names the config and field.
extension SingleFileCheckpoint {
    public static let metadataKeys = (unet: "diffedit.unet_config", vae: "diffedit.vae_config",
                                      text: "diffedit.text_config", scheduler: "diffedit.scheduler_config",
                                      text2: "diffedit.text_config_2")

    struct GivenConfigs {
        var unet: (UNetConfig, String)?
        var vae: (VAEConfig, String)?
        var text: (CLIPTextConfig, String)?
        var text2: (CLIPTextConfig, String)?
        var scheduler: (SchedulerConfig, String)?
        var vocab: String?
        var merges: String?
        var padToken: String?
    }

    static func givenConfigs(file: SafetensorsFile, configFrom: String?) throws -> GivenConfigs {
        var g = GivenConfigs()
        func meta<T: Decodable>(_ t: T.Type, _ key: String) throws -> (T, String)? {
            guard let s = file.metadata[key] else { return nil }
            let origin = "\(file.path) (__metadata__ \(key))"
            return (try ConfigFile.decode(t, from: Data(s.utf8), origin: origin), origin)
        }
        g.unet = try meta(UNetConfig.self, metadataKeys.unet)
        g.vae = try meta(VAEConfig.self, metadataKeys.vae)
        g.text = try meta(CLIPTextConfig.self, metadataKeys.text)
        g.text2 = try meta(CLIPTextConfig.self, metadataKeys.text2)
        g.scheduler = try meta(SchedulerConfig.self, metadataKeys.scheduler)
        guard let folder = configFrom else { return g }
        var isDir = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDir), isDir else {
            throw DiffEditError.io("\(folder): config folder does not exist (expected a diffusers folder with unet/config.json, ...)")
        }
        func load<T: Decodable>(_ t: T.Type, _ rel: String, required: Bool) throws -> (T, String)? {
            let p = CheckpointLoader.join(folder, rel)
            if !CheckpointLoader.isFile(p) {
                if required { throw DiffEditError.model("\(p): missing — needed as the config for \(file.path)") }
                return nil
            }
            return (try ConfigFile.load(t, path: p), p)
        }
        g.unet = try load(UNetConfig.self, "unet/config.json", required: true)
        g.vae = try load(VAEConfig.self, "vae/config.json", required: true)
        g.text = try load(CLIPTextConfig.self, "text_encoder/config.json", required: true)
        g.text2 = try load(CLIPTextConfig.self, "text_encoder_2/config.json", required: false)
        g.scheduler = try load(SchedulerConfig.self, "scheduler/scheduler_config.json", required: false) ?? g.scheduler
        let tok = CheckpointLoader.join(folder, "tokenizer")
        let v = CheckpointLoader.join(tok, "vocab.json"), m = CheckpointLoader.join(tok, "merges.txt")
        if CheckpointLoader.isFile(v) && CheckpointLoader.isFile(m) { g.vocab = v; g.merges = m }
        g.padToken = try CheckpointLoader.padToken(tokenizerFolder: tok)
        return g
    }

    static func agree<T: Equatable>(_ given: T, _ detected: T, _ field: String, _ origin: String, _ file: String) throws {
        if given != detected {
            throw DiffEditError.model("\(origin): field \(field) is \(given), but the tensors in \(file) say \(detected)")
        }
    }

    /// The given UNet config after checking every field the shapes determine.
    static func reconcile(_ g: UNetConfig, detected d: UNetConfig, origin: String, file: String) throws -> UNetConfig {
        try agree(g.in_channels, d.in_channels, "in_channels", origin, file)
        try agree(g.out_channels, d.out_channels, "out_channels", origin, file)
        try agree(g.block_out_channels, d.block_out_channels, "block_out_channels", origin, file)
        let levels = d.block_out_channels.count  // per block: 2 and [2, 2, 2] agree
        try agree((0..<levels).map(g.resnets), (0..<levels).map(d.resnets), "layers_per_block", origin, file)
        try agree(g.down_block_types, d.down_block_types, "down_block_types", origin, file)
        try agree(g.up_block_types, d.up_block_types, "up_block_types", origin, file)
        try agree(g.cross_attention_dim, d.cross_attention_dim, "cross_attention_dim", origin, file)
        try agree(g.use_linear_projection, d.use_linear_projection, "use_linear_projection", origin, file)
        return g
    }

    static func reconcile(_ g: VAEConfig, detected d: VAEConfig, origin: String, file: String) throws -> VAEConfig {
        try agree(g.block_out_channels, d.block_out_channels, "block_out_channels", origin, file)
        try agree(g.layers_per_block, d.layers_per_block, "layers_per_block", origin, file)
        try agree(g.latent_channels, d.latent_channels, "latent_channels", origin, file)
        try agree(g.in_channels, d.in_channels, "in_channels", origin, file)
        try agree(g.out_channels, d.out_channels, "out_channels", origin, file)
        return g
    }

    static func reconcile(_ g: CLIPTextConfig, detected d: CLIPTextConfig, origin: String, file: String) throws -> CLIPTextConfig {
        try agree(g.hidden_size, d.hidden_size, "hidden_size", origin, file)
        try agree(g.num_hidden_layers, d.num_hidden_layers, "num_hidden_layers", origin, file)
        try agree(g.intermediate_size, d.intermediate_size, "intermediate_size", origin, file)
        try agree(g.vocab_size, d.vocab_size, "vocab_size", origin, file)
        try agree(g.max_position_embeddings, d.max_position_embeddings, "max_position_embeddings", origin, file)
        return g
    }
}
