import FoundationEssentials

/// Opens a ControlNet the way users hold it:
///   - a diffusers ControlNetModel folder (config.json + diffusion_pytorch_model.safetensors);
///   - a single .safetensors in the original layout (lllyasviel's control_*.safetensors):
///     control_model.{time_embed, input_blocks, middle_block} named as the LDM UNet (translated by
///     `SingleFileCheckpoint.unetRefs`), plus
///       control_model.input_hint_block.{0, 2, ..., 2n}  -> controlnet_cond_embedding.{conv_in, blocks.0 .. blocks.(n-2), conv_out}
///       control_model.zero_convs.N.0                   -> controlnet_down_blocks.N
///       control_model.middle_block_out.0               -> controlnet_mid_block
///     (the same without the control_model. prefix is accepted);
///   - a single .safetensors with diffusers names (a ControlNetModel's weights file on its own).
/// Single files carry no config: the architecture comes from the shapes and what shapes cannot tell (head
/// counts, norm groups, time-embedding details) from the base UNet's config (`base`), as a ControlNet is a copy of
/// its base's encoder; without one, SD 1.x/2.x values (8 heads / head size 64, 32 norm groups).
public enum ControlNetCheckpoint {
    public static let prefix = "control_model."

    public static func load(path: String, base: UNetConfig?, backend: Backend) throws -> ControlNetModel {
        let (config, weights) = try open(path: path, base: base)
        return try ControlNetModel(config: config, weights: weights, backend: backend)
    }

    /// The config and the clean-named weights of the ControlNet at `path`.
    public static func open(path: String, base: UNetConfig?) throws -> (ControlNetConfig, MappedWeightSource) {
        guard !path.isEmpty else { throw DiffEditError.invalidArgument("ControlNet path is empty") }
        var isDir = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw DiffEditError.io("\(path): no such file or directory (ControlNet)")
        }
        if isDir {
            let cfgPath = CheckpointLoader.join(path, "config.json")
            guard CheckpointLoader.isFile(cfgPath) else {
                throw DiffEditError.model("\(cfgPath): missing — \(path) is not a diffusers ControlNetModel folder (config.json + diffusion_pytorch_model.safetensors)")
            }
            let obj = try ConfigFile.object(path: cfgPath)
            if let cls = obj["_class_name"] as? String, !cls.contains("ControlNet") {
                throw DiffEditError.model("\(cfgPath): _class_name is \(cls), not a ControlNetModel")
            }
            let config = try ConfigFile.load(ControlNetConfig.self, path: cfgPath)
            let (w, _) = try CheckpointLoader.componentWeights(path, rename: { $0 })
            return (config, w)
        }
        try CheckpointLoader.refuseIfPickle(path)
        let file = try SafetensorsFile(path: path)
        let names = file.names
        let refs: [String: MappedWeightSource.Ref]
        if names.contains("controlnet_cond_embedding.conv_in.weight") {
            refs = Dictionary(uniqueKeysWithValues: names.map { ($0, MappedWeightSource.Ref(file: file, name: $0)) })
        } else {
            let pre = names.contains { $0.hasPrefix(prefix + "input_hint_block.") } ? prefix
                    : names.contains { $0.hasPrefix("input_hint_block.") } ? "" : nil
            guard let pre else {
                if names.contains(where: { $0.hasPrefix(SingleFileCheckpoint.unetPrefix) }) {
                    throw DiffEditError.model("\(path): a Stable Diffusion checkpoint (model.diffusion_model.*), not a ControlNet (control_model.input_hint_block.* / controlnet_cond_embedding.*)")
                }
                throw DiffEditError.model("\(path): not a ControlNet: no tensors named \(prefix)input_hint_block.* (original layout) or controlnet_cond_embedding.* (diffusers)")
            }
            refs = try originalRefs(file, prefix: pre)
        }
        let src = MappedWeightSource(origin: path, refs: refs)
        return (try detect(src, path: path, base: base), src)
    }

    static func originalRefs(_ file: SafetensorsFile, prefix pre: String) throws -> [String: MappedWeightSource.Ref] {
        let path = file.path
        var refs = try SingleFileCheckpoint.unetRefs(file, prefix: pre)
        // the hint block: convolutions at even indices (SiLU modules between them hold no tensors)
        let hintIdx = Set(file.names.compactMap { n -> Int? in
            guard n.hasPrefix(pre + "input_hint_block.") else { return nil }
            return Int(n.dropFirst((pre + "input_hint_block.").count).prefix { $0 != "." })
        }).sorted()
        guard hintIdx.count >= 2, hintIdx.allSatisfy({ $0 % 2 == 0 }) else {
            throw DiffEditError.model("\(path): \(pre)input_hint_block has convolutions at \(hintIdx), expected at least 2 at even indices 0, 2, 4, ...")
        }
        func add(_ clean: String, _ stored: String) throws {
            if let prev = refs[clean] { throw DiffEditError.model("\(path): tensors \(prev.name) and \(stored) both map to \(clean)") }
            refs[clean] = MappedWeightSource.Ref(file: file, name: stored)
        }
        for n in file.names where n.hasPrefix(pre) {
            let p = SingleFileCheckpoint.parts(Substring(n.dropFirst(pre.count)))
            guard p.count >= 3 else { continue }
            let leaf = p[(p.count - 1)...].joined(separator: ".")
            switch p[0] {
            case "input_hint_block":
                guard p.count == 3, let i = Int(p[1]), let k = hintIdx.firstIndex(of: i) else { continue }
                let target = k == 0 ? "conv_in" : k == hintIdx.count - 1 ? "conv_out" : "blocks.\(k - 1)"
                try add("controlnet_cond_embedding.\(target).\(leaf)", n)
            case "zero_convs":
                guard p.count == 4, let i = Int(p[1]), p[2] == "0" else { continue }
                try add("controlnet_down_blocks.\(i).\(leaf)", n)
            case "middle_block_out":
                guard p.count == 3, p[1] == "0" else { continue }
                try add("controlnet_mid_block.\(leaf)", n)
            default: continue
            }
        }
        return refs
    }

    /// The config of a single file from its shapes (+ the base UNet's config for what shapes cannot tell).
    static func detect(_ src: MappedWeightSource, path: String, base: UNetConfig?) throws -> ControlNetConfig {
        var c = ControlNetConfig()
        let d = try SingleFileCheckpoint.detectEncoder(src, path: path, sd2: false)
        // the base's per-block settings only when it has as many blocks (else the shapes decide and
        // ControlNetModel.checkFits names the tensor that does not fit)
        let sameLevels = base.map { $0.block_out_channels.count == d.block_out_channels.count } ?? false
        var u = sameLevels ? base! : d
        if !sameLevels, d.cross_attention_dim == 1024 {
            u.attention_head_dim = .list(d.block_out_channels.map { max(1, $0 / 64) })
        }
        u.in_channels = d.in_channels
        u.block_out_channels = d.block_out_channels
        u.layers_per_block = d.layers_per_block
        u.down_block_types = d.down_block_types
        u.mid_block_type = d.mid_block_type
        u.transformer_layers_per_block = d.transformer_layers_per_block
        u.cross_attention_dim = d.cross_attention_dim
        u.use_linear_projection = d.use_linear_projection
        u.addition_embed_type = d.addition_embed_type
        u.projection_class_embeddings_input_dim = d.projection_class_embeddings_input_dim
        if d.addition_embed_type != nil, base?.addition_time_embed_dim == nil { u.addition_time_embed_dim = d.addition_time_embed_dim }
        u.up_block_types = []
        c.unet = u
        // the conditioning embedding: conv_in, blocks (pairs), conv_out
        let e0 = try SingleFileCheckpoint.shapeOrThrow(src, "controlnet_cond_embedding.conv_in.weight", path, rank: 4)
        c.conditioning_channels = e0[1]
        var e = [e0[0]]
        let blocks = SingleFileCheckpoint.count(src.names, "controlnet_cond_embedding.blocks.")
        guard blocks % 2 == 0 else {
            throw DiffEditError.model("\(path): the ControlNet's hint block has \(blocks) inner convolutions, expected pairs (conv, stride-2 conv)")
        }
        for i in 0..<(blocks / 2) {
            e.append(try SingleFileCheckpoint.shapeOrThrow(src, "controlnet_cond_embedding.blocks.\(2 * i + 1).weight", path, rank: 4)[0])
        }
        c.conditioning_embedding_out_channels = e
        return c
    }
}
