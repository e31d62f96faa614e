import FoundationEssentials

/// The original (CompVis / Stability) single-file layout: translation of its tensor names to the
/// clean diffusers/transformers names, and architecture detection from tensor shapes.
///   UNet: model.diffusion_model.{time_embed, input_blocks.N.M, middle_block.M, output_blocks.N.M, out}
///   VAE:  first_stage_model.{encoder,decoder}.{conv_in, down.N.block.M, mid.block_1/attn_1/block_2, up.N..., norm_out}
///   Text: cond_stage_model.transformer[.text_model].* (SD1 CLIP) or cond_stage_model.model.* (SD2 OpenCLIP);
///   SDXL: conditioner.embedders.0.transformer.text_model.* (CLIP ViT-L) and conditioner.embedders.1.model.*
///   (OpenCLIP ViT-bigG, every resblock kept, text_projection [D, P]), the UNet's label_emb.0.{0,2} = add_embedding
/// Not detectable from shapes, and so fixed as in SD 1.x/2.x: norm_num_groups 32, SD1 UNet 8 heads,
/// SD2 UNet head size 64, text encoder head size 64, VAE scaling factor 0.18215.
public enum SingleFileCheckpoint {
    public static let unetPrefix = "model.diffusion_model."
    public static let vaePrefix = "first_stage_model."
    public static let clipPrefix = "cond_stage_model.transformer."
    public static let openClipPrefix = "cond_stage_model.model."
    public static let xlClipPrefix = "conditioner.embedders.0.transformer."
    public static let xlOpenClipPrefix = "conditioner.embedders.1.model."

    typealias Ref = MappedWeightSource.Ref

    /// - Parameters:
    ///   - predictionType: overrides the scheduler's prediction type (default: v_prediction for SD2
    ///     OpenCLIP files, epsilon otherwise; a given scheduler config or ModelSpec metadata decides first).
    ///   - configFrom: a diffusers folder whose configs (and tokenizer) to use, checked against the shapes.
    public static func load(path: String, predictionType: String? = nil, configFrom: String? = nil) throws -> LoadedCheckpoint {
        let file = try SafetensorsFile(path: path)
        let names = file.names
        let xl = names.contains(where: { $0.hasPrefix("conditioner.embedders.") })
        if xl && !names.contains(where: { $0.hasPrefix(xlClipPrefix) }) {
            throw DiffEditError.unsupported("\(path): an SDXL refiner (conditioner.embedders.0 is the OpenCLIP encoder, aesthetic-score conditioning) is not supported; use an SDXL base checkpoint")
        }
        guard names.contains(where: { $0.hasPrefix(unetPrefix) }) else {
            throw DiffEditError.model("\(path): no tensors named \(unetPrefix)* — not a single-file Stable Diffusion checkpoint in the original layout (for diffusers-named weights use the diffusers folder)")
        }
        guard names.contains(where: { $0.hasPrefix(vaePrefix) }) else {
            throw DiffEditError.model("\(path): no VAE tensors (\(vaePrefix)*) in the checkpoint")
        }
        let openClip = !xl && names.contains { $0.hasPrefix(openClipPrefix) }
        if xl {
            guard names.contains(where: { $0.hasPrefix(xlOpenClipPrefix) }) else {
                throw DiffEditError.model("\(path): an SDXL checkpoint without its second text encoder (\(xlOpenClipPrefix)*)")
            }
        }
        guard xl || openClip || names.contains(where: { $0.hasPrefix(clipPrefix) }) else {
            throw DiffEditError.model("\(path): no text-encoder tensors (\(clipPrefix)* or \(openClipPrefix)*) in the checkpoint")
        }
        let given = try givenConfigs(file: file, configFrom: configFrom)

        let text = try xl ? clipText(file, prefix: xlClipPrefix) : openClip ? openClipText(file) : clipText(file)
        let text2 = xl ? try openClipText(file, prefix: xlOpenClipPrefix, penultimate: false) : nil
        let textSource = MappedWeightSource(origin: "\(path) (text encoder)", refs: text.refs)
        let unetSource = MappedWeightSource(origin: "\(path) (unet)", refs: try unetRefs(file))
        let vaeSource = MappedWeightSource(origin: "\(path) (vae)", refs: try vaeRefs(file))
        var unetConfig = try detectUNet(unetSource, path: path, sd2: openClip || xl)
        var vaeConfig = try detectVAE(vaeSource, path: path)
        var textConfig = text.config
        var textConfig2 = text2?.config
        if xl {
            unetConfig.sample_size = 128; vaeConfig.sample_size = 1024; vaeConfig.scaling_factor = 0.13025
            vaeConfig.force_upcast = true
        }

        // Scheduler: given config, else ModelSpec metadata, else SD1 epsilon / SD2 v-prediction.
        var sched = given.scheduler?.0 ?? SchedulerConfig()
        if given.scheduler == nil && xl {
            // SDXL base's scheduler (EulerDiscreteScheduler, leading, steps_offset 1); DDIM built from it takes
            // DDIMScheduler's defaults, as diffusers' from_config does
            sched._class_name = "EulerDiscreteScheduler"; sched.set_alpha_to_one = true; sched.clip_sample = true
        }
        if given.scheduler == nil {
            switch file.metadata["modelspec.prediction_type"] {
            case "v", "v_prediction": sched.prediction_type = "v_prediction"
            case "epsilon": sched.prediction_type = "epsilon"
            default: sched.prediction_type = openClip ? "v_prediction" : "epsilon"
            }
        }
        if let p = predictionType { sched.prediction_type = p }
        // 768-px SD2 (v-prediction) models use 96x96 latents; the rest 64x64.
        if openClip && sched.prediction_type == "v_prediction" {
            unetConfig.sample_size = 96; vaeConfig.sample_size = 768; unetConfig.upcast_attention = true
        }
        if let (g, origin) = given.unet { unetConfig = try reconcile(g, detected: unetConfig, origin: origin, file: path) }
        if let (g, origin) = given.vae { vaeConfig = try reconcile(g, detected: vaeConfig, origin: origin, file: path) }
        if let (g, origin) = given.text { textConfig = try reconcile(g, detected: textConfig, origin: origin, file: path) }
        if let (g, origin) = given.text2, let d = textConfig2 { textConfig2 = try reconcile(g, detected: d, origin: origin, file: path) }

        var kind = CheckpointLoader.detectKind(className: "", unet: unetConfig, text: textConfig)
        if xl && (kind == "sd1" || kind == "sd2") { kind = "sdxl" }
        var ck = LoadedCheckpoint(origin: path, unetConfig: unetConfig, vaeConfig: vaeConfig, textConfig: textConfig,
                                  schedulerConfig: sched, unet: unetSource, vae: vaeSource, textEncoder: textSource,
                                  tokenizerVocabPath: given.vocab, tokenizerMergesPath: given.merges,
                                  padToken: given.padToken ?? (openClip ? "!" : "<|endoftext|>"), kind: kind,
                                  layout: "single-file", dtype: file.mainDType)
        if let t2 = text2, let c2 = textConfig2 {
            ck.textEncoder2 = MappedWeightSource(origin: "\(path) (text encoder 2)", refs: t2.refs)
            ck.textConfig2 = c2
            ck.padToken2 = "!"                       // SDXL's OpenCLIP tokenizer pads with "!" (id 0)
            ck.padToken = given.padToken ?? "<|endoftext|>"
        }
        if let s = file.metadata[EditDefaults.metadataKey] {
            ck.editDefaults = try EditDefaults.decode(Data(s.utf8), origin: "\(path) (__metadata__ \(EditDefaults.metadataKey))")
        } else if let folder = configFrom {
            ck.editDefaults = try EditDefaults.load(folder: folder)
        }
        return ck
    }

    // MARK: helpers

    /// "a.b.c" split into components.
    static func parts(_ s: Substring) -> [Substring] { s.split(separator: ".", omittingEmptySubsequences: false) }

    /// The shape of a clean-named tensor, which must have `rank` dimensions (conv 4, linear 2).
    static func shapeOrThrow(_ src: WeightSource, _ name: String, _ path: String, rank: Int) throws -> [Int] {
        guard let s = src.shape(of: name) else {
            throw DiffEditError.model("\(path): missing tensor \(name) (clean name) needed to detect the architecture")
        }
        guard s.count == rank, s.allSatisfy({ $0 > 0 }) else {
            throw DiffEditError.model("\(path): tensor \(name) (clean name) has shape \(s), expected \(rank) non-zero dimensions")
        }
        return s
    }

    // MARK: UNet

    static let resnetRenames: [(String, String)] = [
        ("in_layers.0.", "norm1."), ("in_layers.2.", "conv1."), ("emb_layers.1.", "time_emb_proj."),
        ("out_layers.0.", "norm2."), ("out_layers.3.", "conv2."), ("skip_connection.", "conv_shortcut."),
    ]

    static func renameResnet(_ rest: String) -> String? {
        for (a, b) in resnetRenames where rest.hasPrefix(a) { return b + rest.dropFirst(a.count) }
        return nil
    }

    /// Bounds on an original-layout UNet's block numbering (SD 1.x/2.x: 4 levels, input blocks 0...11, SDXL 3).
    static let maxLevels = 16, maxBlockIndex = 4096

    static func unetRefs(_ file: SafetensorsFile, prefix unetPrefix: String = SingleFileCheckpoint.unetPrefix) throws -> [String: Ref] {
        let path = file.path
        // Group input_blocks by index: which indices are downsamplers (".0.op.").
        var inputIdx = Set<Int>(), downIdx = Set<Int>(), outputIdx = Set<Int>()
        var keys: [(String, String)] = []  // (stored name, name without prefix)
        for n in file.names where n.hasPrefix(unetPrefix) {
            let r = String(n.dropFirst(unetPrefix.count))
            keys.append((n, r))
            let p = parts(Substring(r))
            if p.count > 2, p[0] == "input_blocks", let i = Int(p[1]) {
                inputIdx.insert(i)
                if p.count > 3, p[2] == "0", p[3] == "op" { downIdx.insert(i) }
            }
            if p.count > 2, p[0] == "output_blocks", let i = Int(p[1]) { outputIdx.insert(i) }
        }
        // Resnets per level from the numbering: level b's resnets sit between its first index and its
        // downsampler (every level but the last ends in one), the last level's run to the largest index.
        for (what, idx) in [("input_blocks", inputIdx), ("output_blocks", outputIdx)] {
            if let m = idx.max(), m > maxBlockIndex {
                throw DiffEditError.model("\(path): \(unetPrefix)\(what).\(m).*: block index \(m) is not plausible (at most \(maxBlockIndex))")
            }
        }
        guard downIdx.count < maxLevels else {
            throw DiffEditError.model("\(path): the UNet's input_blocks have \(downIdx.count) downsamplers (\(unetPrefix)input_blocks.N.0.op.*); at most \(maxLevels - 1) are supported")
        }
        let downs = downIdx.sorted()
        var resnets: [Int] = [], start = 1
        for d in downs { resnets.append(d - start); start = d + 1 }
        resnets.append((inputIdx.max() ?? 0) - start + 1)
        guard inputIdx.contains(where: { $0 >= 1 }) else {
            throw DiffEditError.model("\(path): cannot find the UNet's input_blocks (\(unetPrefix)input_blocks.N.*)")
        }
        guard resnets.allSatisfy({ $0 > 0 }) else {
            throw DiffEditError.model("\(path): the UNet's input_blocks have a level without resnets (downsamplers at \(unetPrefix)input_blocks.\(downs.map(String.init).joined(separator: ", ")); resnets per level \(resnets))")
        }
        let layout = LDMBlockLayout(resnets: resnets)
        var refs: [String: Ref] = [:]
        func add(_ clean: String, _ stored: String) throws {
            if let prev = refs[clean] {
                throw DiffEditError.model("\(path): tensors \(prev.name) and \(stored) both map to \(clean)")
            }
            refs[clean] = Ref(file: file, name: stored)
        }
        for (stored, r) in keys {
            switch ldmUNetName(parts(Substring(r)), layout: layout) {
            case .clean(let clean): try add(clean, stored)
            case .skip: continue
            case .unexpected: throw DiffEditError.model("\(path): unexpected UNet tensor \(stored)")
            }
        }
        return refs
    }

    /// Where an LDM input_blocks index sits in the diffusers UNet: level, layer within it, downsampler or not.
    public typealias InputPosition = (level: Int, layer: Int, down: Bool)

    /// The LDM block numbering of a UNet whose level b has `resnets[b]` resnets (each with its attention, if
    /// any) in its down block and `resnets[b] + 1` in the mirrored up block, as the original UNetModel numbers
    /// them with `num_res_blocks` one count or one per level (diffusers' `layers_per_block` int or list):
    ///   input_blocks.0 = conv_in; then per level its resnets, and a downsampler after every level but the last
    ///   output_blocks: the up blocks deepest level first, resnets[b] + 1 each, the upsampler inside the last one
    public struct LDMBlockLayout: Equatable, Sendable {
        public let resnets: [Int]
        public init(resnets: [Int]) { self.resnets = resnets }

        /// input_blocks.i (i >= 1) -> level, layer, downsampler or not; nil past the last level.
        public func input(_ i: Int) -> InputPosition? {
            guard i >= 1 else { return nil }
            var start = 1
            for (b, l) in resnets.enumerated() {
                let last = b == resnets.count - 1
                if i < start + l { return (b, i - start, false) }
                if !last && i == start + l { return (b, 0, true) }
                start += l + 1
            }
            return nil
        }

        /// output_blocks.i -> up block, layer; nil past the last block.
        public func output(_ i: Int) -> (block: Int, layer: Int)? {
            guard i >= 0 else { return nil }
            var start = 0
            for (u, l) in resnets.reversed().enumerated() {
                if i < start + l + 1 { return (u, i - start) }
                start += l + 1
            }
            return nil
        }
    }

    public enum LDMName: Equatable { case clean(String), skip, unexpected }

    /// The clean diffusers name of an original-layout UNet name (without `model.diffusion_model.`, split at
    /// dots): `input_blocks.1.1.proj_in.weight` -> `down_blocks.0.attentions.0.proj_in.weight`. `.skip` for
    /// names the model does not use, `.unexpected` for a resnet name it cannot place. Shared by the
    /// single-file loader and the LoRA loader (kohya's LDM-named files).
    public static func ldmUNetName(_ p: [Substring], layout: LDMBlockLayout) -> LDMName {
        func rest(_ from: Int) -> String { p[from...].joined(separator: ".") }
        guard let head = p.first else { return .skip }
        switch head {
        case "time_embed":
            guard p.count >= 3 else { return .skip }
            if p[1] == "0" { return .clean("time_embedding.linear_1." + rest(2)) }
            if p[1] == "2" { return .clean("time_embedding.linear_2." + rest(2)) }
            return .skip
        case "label_emb":
            // SDXL's add_embedding: label_emb.0.0 = linear_1, label_emb.0.2 = linear_2 (others: not supported, ignored)
            guard p.count == 4, p[1] == "0" else { return .skip }
            if p[2] == "0" { return .clean("add_embedding.linear_1." + rest(3)) }
            if p[2] == "2" { return .clean("add_embedding.linear_2." + rest(3)) }
            return .skip
        case "out":
            guard p.count >= 3 else { return .skip }
            if p[1] == "0" { return .clean("conv_norm_out." + rest(2)) }
            if p[1] == "2" { return .clean("conv_out." + rest(2)) }
            return .skip
        case "input_blocks":
            guard p.count >= 4, let i = Int(p[1]) else { return .skip }
            if i == 0 { return .clean("conv_in." + rest(3)) }
            guard let pos = layout.input(i) else { return .skip }
            if pos.down {
                // input_blocks.i.0.op.weight
                guard p.count >= 5 else { return .skip }
                return .clean("down_blocks.\(pos.level).downsamplers.0.conv." + rest(4))
            } else if p[2] == "0" {
                guard let rn = renameResnet(rest(3)) else { return .unexpected }
                return .clean("down_blocks.\(pos.level).resnets.\(pos.layer)." + rn)
            } else if p[2] == "1" {
                return .clean("down_blocks.\(pos.level).attentions.\(pos.layer)." + rest(3))
            }
            return .skip
        case "middle_block":
            guard p.count >= 3 else { return .skip }
            switch p[1] {
            case "0", "2":
                guard let rn = renameResnet(rest(2)) else { return .unexpected }
                return .clean("mid_block.resnets.\(p[1] == "0" ? 0 : 1)." + rn)
            case "1": return .clean("mid_block.attentions.0." + rest(2))
            default: return .skip
            }
        case "output_blocks":
            guard p.count >= 4, let i = Int(p[1]), let (blk, lay) = layout.output(i) else { return .skip }
            if p[2] == "0" {
                guard let rn = renameResnet(rest(3)) else { return .unexpected }
                return .clean("up_blocks.\(blk).resnets.\(lay)." + rn)
            } else if p[3] == "conv" && p.count == 5 {
                // output_blocks.i.{1|2}.conv.{weight,bias}: the upsampler
                return .clean("up_blocks.\(blk).upsamplers.0.conv." + rest(4))
            } else if p[2] == "1" {
                return .clean("up_blocks.\(blk).attentions.\(lay)." + rest(3))
            }
            return .skip
        default:
            return .skip
        }
    }

    static func detectUNet(_ src: MappedWeightSource, path: String, sd2: Bool) throws -> UNetConfig {
        var c = try detectEncoder(src, path: path, sd2: sd2)
        let convOut = try shapeOrThrow(src, "conv_out.weight", path, rank: 4)
        c.out_channels = convOut[0]
        let levels = c.block_out_channels.count
        let upLevels = count(src.names, "up_blocks.")
        guard upLevels == levels else {
            throw DiffEditError.model("\(path): UNet has \(levels) input levels but \(upLevels) output levels")
        }
        c.up_block_types = (0..<levels).map { count(src.names, "up_blocks.\($0).attentions.") > 0 ? "CrossAttnUpBlock2D" : "UpBlock2D" }
        return c
    }

    /// 1 + the largest index N among names "prefix N.*" (0 when none).
    static func count(_ names: [String], _ prefix: String) -> Int {
        var m = -1
        for n in names where n.hasPrefix(prefix) {
            if let i = Int(n.dropFirst(prefix.count).prefix { $0 != "." }) { m = max(m, i) }
        }
        return m + 1
    }

    /// The encoder half of a UNet config from clean-named shapes (conv_in, down blocks, mid block, attention
    /// widths): the UNet's and a ControlNet's (whose encoder is a copy of its base UNet's).
    static func detectEncoder(_ src: MappedWeightSource, path: String, sd2: Bool) throws -> UNetConfig {
        var c = UNetConfig()
        let names = src.names
        let convIn = try shapeOrThrow(src, "conv_in.weight", path, rank: 4)
        c.in_channels = convIn[1]
        func count(_ prefix: String) -> Int { SingleFileCheckpoint.count(names, prefix) }
        let levels = count("down_blocks.")
        guard levels > 0 else { throw DiffEditError.model("\(path): UNet has no down blocks") }
        var channels: [Int] = [], downTypes: [String] = [], tlayers: [Int] = [], resnets: [Int] = []
        for l in 0..<levels {
            resnets.append(count("down_blocks.\(l).resnets."))
            let s = try shapeOrThrow(src, "down_blocks.\(l).resnets.0.conv1.weight", path, rank: 4)
            channels.append(s[0])
            let attn = count("down_blocks.\(l).attentions.") > 0
            downTypes.append(attn ? "CrossAttnDownBlock2D" : "DownBlock2D")
            tlayers.append(attn ? count("down_blocks.\(l).attentions.0.transformer_blocks.") : 1)
        }
        c.block_out_channels = channels
        c.down_block_types = downTypes
        c.mid_block_type = count("mid_block.attentions.") > 0 ? "UNetMidBlock2DCrossAttn" : (count("mid_block.resnets.") > 0 ? "UNetMidBlock2D" : nil)
        if let tl = tlayers.first { c.transformer_layers_per_block = Set(tlayers).count == 1 ? .int(tl) : .list(tlayers) }
        if let r = resnets.first { c.layers_per_block = Set(resnets).count == 1 ? .int(r) : .list(resnets) }
        if let a1 = src.shape(of: "add_embedding.linear_1.weight"), a1.count == 2 {
            // SDXL: pooled text embeds (1280) + 6 time ids x 256 = 2816
            c.addition_embed_type = "text_time"
            c.addition_time_embed_dim = 256
            c.projection_class_embeddings_input_dim = a1[1]
        }
        if let k = names.first(where: { $0.hasSuffix("attn2.to_k.weight") }), let s = src.shape(of: k), s.count == 2 {
            c.cross_attention_dim = s[1]
        }
        if let pi = names.first(where: { $0.hasSuffix(".proj_in.weight") }), let s = src.shape(of: pi) {
            c.use_linear_projection = s.count == 2
        }
        if sd2 || c.cross_attention_dim == 1024 {
            c.attention_head_dim = .list(channels.map { max(1, $0 / 64) })
        } else {
            c.attention_head_dim = .int(8)
        }
        c.sample_size = 64
        return c
    }

    // MARK: VAE

    static func vaeRefs(_ file: SafetensorsFile) throws -> [String: Ref] {
        let path = file.path
        var upLevels = 0
        for n in file.names where n.hasPrefix(vaePrefix + "decoder.up.") {
            let r = n.dropFirst((vaePrefix + "decoder.up.").count)
            if let i = Int(r.prefix { $0 != "." }) { upLevels = max(upLevels, i + 1) }
        }
        var refs: [String: Ref] = [:]
        func add(_ clean: String, _ stored: String, _ t: MappedWeightSource.Transform = .identity) throws {
            if let prev = refs[clean] {
                throw DiffEditError.model("\(path): tensors \(prev.name) and \(stored) both map to \(clean)")
            }
            refs[clean] = Ref(file: file, name: stored, transform: t)
        }
        func resnet(_ s: String) -> String { s.hasPrefix("nin_shortcut.") ? "conv_shortcut." + s.dropFirst("nin_shortcut.".count) : s }
        for stored in file.names where stored.hasPrefix(vaePrefix) {
            let r = String(stored.dropFirst(vaePrefix.count))
            let p = parts(Substring(r))
            func rest(_ from: Int) -> String { p[from...].joined(separator: ".") }
            guard p.count >= 2 else { continue }
            if p[0] == "quant_conv" || p[0] == "post_quant_conv" { try add(r, stored); continue }
            guard p[0] == "encoder" || p[0] == "decoder", p.count >= 3 else { continue }
            let side = String(p[0])
            switch p[1] {
            case "conv_in", "conv_out": try add(r, stored)
            case "norm_out": try add("\(side).conv_norm_out." + rest(2), stored)
            case "down", "up":
                guard p.count >= 5, let i = Int(p[2]) else { continue }
                let blk = p[1] == "down" ? i : upLevels - 1 - i
                let bname = p[1] == "down" ? "down_blocks" : "up_blocks"
                if p[3] == "block", let j = Int(p[4]), p.count >= 6 {
                    try add("\(side).\(bname).\(blk).resnets.\(j)." + resnet(rest(5)), stored)
                } else if p[3] == "downsample" || p[3] == "upsample" {
                    let s = p[3] == "downsample" ? "downsamplers" : "upsamplers"
                    try add("\(side).\(bname).\(blk).\(s).0." + rest(4), stored)
                }
            case "mid":
                guard p.count >= 4 else { continue }
                if p[2] == "block_1" || p[2] == "block_2" {
                    try add("\(side).mid_block.resnets.\(p[2] == "block_1" ? 0 : 1)." + resnet(rest(3)), stored)
                } else if p[2] == "attn_1" {
                    let map: [String: String] = ["norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"]
                    guard let m = map[String(p[3])] else { continue }
                    let t: MappedWeightSource.Transform = p[3] == "norm" ? .identity : .squeezeTrailingOnes
                    try add("\(side).mid_block.attentions.0.\(m)." + rest(4), stored, t)
                }
            default: continue
            }
        }
        return refs
    }

    static func detectVAE(_ src: MappedWeightSource, path: String) throws -> VAEConfig {
        var c = VAEConfig()
        let names = src.names
        func count(_ prefix: String) -> Int {
            var m = -1
            for n in names where n.hasPrefix(prefix) {
                if let i = Int(n.dropFirst(prefix.count).prefix { $0 != "." }) { m = max(m, i) }
            }
            return m + 1
        }
        let levels = count("encoder.down_blocks.")
        guard levels > 0 else { throw DiffEditError.model("\(path): VAE encoder has no down blocks (first_stage_model.encoder.down.N.*)") }
        var ch: [Int] = []
        for l in 0..<levels { ch.append(try shapeOrThrow(src, "encoder.down_blocks.\(l).resnets.0.conv1.weight", path, rank: 4)[0]) }
        c.block_out_channels = ch
        c.down_block_types = Array(repeating: "DownEncoderBlock2D", count: levels)
        c.up_block_types = Array(repeating: "UpDecoderBlock2D", count: levels)
        c.layers_per_block = count("encoder.down_blocks.0.resnets.")
        c.in_channels = try shapeOrThrow(src, "encoder.conv_in.weight", path, rank: 4)[1]
        c.out_channels = try shapeOrThrow(src, "decoder.conv_out.weight", path, rank: 4)[0]
        c.latent_channels = try shapeOrThrow(src, "decoder.conv_in.weight", path, rank: 4)[1]
        c.use_quant_conv = src.contains("quant_conv.weight")
        c.use_post_quant_conv = src.contains("post_quant_conv.weight")
        c.mid_block_add_attention = src.contains("encoder.mid_block.attentions.0.to_q.weight")
        return c
    }

    // MARK: text encoders

    struct Text { var refs: [String: Ref]; var config: CLIPTextConfig }

    static func clipText(_ file: SafetensorsFile, prefix: String = clipPrefix) throws -> Text {
        let path = file.path
        var refs: [String: Ref] = [:]
        for stored in file.names where stored.hasPrefix(prefix) {
            let r = String(stored.dropFirst(prefix.count))
            guard let clean = CheckpointLoader.normaliseTextName(r) else { continue }
            if let prev = refs[clean] {
                throw DiffEditError.model("\(path): tensors \(prev.name) and \(stored) both map to \(clean)")
            }
            refs[clean] = Ref(file: file, name: stored)
        }
        let src = MappedWeightSource(origin: path, refs: refs)
        var c = CLIPTextConfig()
        let tok = try shapeOrThrow(src, "text_model.embeddings.token_embedding.weight", path, rank: 2)
        let pos = try shapeOrThrow(src, "text_model.embeddings.position_embedding.weight", path, rank: 2)
        c.vocab_size = tok[0]
        c.hidden_size = tok[1]
        c.max_position_embeddings = pos[0]
        c.num_hidden_layers = layerCount(refs.keys, "text_model.encoder.layers.")
        c.intermediate_size = try shapeOrThrow(src, "text_model.encoder.layers.0.mlp.fc1.weight", path, rank: 2)[0]
        c.num_attention_heads = max(1, c.hidden_size / 64)
        c.hidden_act = "quick_gelu"
        c.projection_dim = c.hidden_size
        return Text(refs: refs, config: c)
    }

    static func layerCount<S: Sequence>(_ names: S, _ prefix: String) -> Int where S.Element == String {
        var m = -1
        for n in names where n.hasPrefix(prefix) {
            if let i = Int(n.dropFirst(prefix.count).prefix { $0 != "." }) { m = max(m, i) }
        }
        return m + 1
    }

    /// An OpenCLIP text tower. SD2 (`penultimate`): the last resblock is dropped (SD2 conditions on the
    /// penultimate layer's output through the final layer norm). SDXL: every resblock and the text projection
    /// (CLIPTextModelWithProjection; SDXL takes hidden_states[-2] and the pooled projection itself).
    static func openClipText(_ file: SafetensorsFile, prefix pre: String = openClipPrefix, penultimate: Bool = true) throws -> Text {
        let path = file.path
        guard let tok = file.shape(of: pre + "token_embedding.weight"), tok.count == 2 else {
            throw DiffEditError.model("\(path): tensor \(pre)token_embedding.weight is missing or not 2-d")
        }
        guard let pos = file.shape(of: pre + "positional_embedding"), pos.count == 2 else {
            throw DiffEditError.model("\(path): tensor \(pre)positional_embedding is missing or not 2-d")
        }
        let d = tok[1]
        let blocks = layerCount(file.names, pre + "transformer.resblocks.")
        guard blocks >= 2 else {
            throw DiffEditError.model("\(path): OpenCLIP text encoder has \(blocks) resblocks; need at least 2 (SD2 uses the penultimate)")
        }
        let layers = penultimate ? blocks - 1 : blocks
        var refs: [String: Ref] = [:]
        func add(_ clean: String, _ stored: String, _ t: MappedWeightSource.Transform = .identity) throws {
            guard file.contains(stored) else { throw DiffEditError.model("\(path): missing tensor \(stored)") }
            refs[clean] = Ref(file: file, name: stored, transform: t)
        }
        try add("text_model.embeddings.token_embedding.weight", pre + "token_embedding.weight")
        try add("text_model.embeddings.position_embedding.weight", pre + "positional_embedding")
        try add("text_model.final_layer_norm.weight", pre + "ln_final.weight")
        try add("text_model.final_layer_norm.bias", pre + "ln_final.bias")
        if !penultimate {
            guard let tp = file.shape(of: pre + "text_projection"), tp.count == 2, tp[0] == d else {
                throw DiffEditError.model("\(path): tensor \(pre)text_projection is \(file.shape(of: pre + "text_projection").map { "\($0)" } ?? "missing"), expected [\(d), projection]")
            }
            try add("text_projection.weight", pre + "text_projection", .transpose)
        }
        for i in 0..<layers {
            let s = pre + "transformer.resblocks.\(i)."
            let c = "text_model.encoder.layers.\(i)."
            guard let ip = file.shape(of: s + "attn.in_proj_weight"), ip == [3 * d, d] else {
                throw DiffEditError.model("\(path): tensor \(s)attn.in_proj_weight has shape \(file.shape(of: s + "attn.in_proj_weight").map { "\($0)" } ?? "(missing)"), expected [\(3 * d), \(d)]")
            }
            for (k, proj) in ["q_proj", "k_proj", "v_proj"].enumerated() {
                try add(c + "self_attn.\(proj).weight", s + "attn.in_proj_weight", .rows(start: k * d, count: d))
                try add(c + "self_attn.\(proj).bias", s + "attn.in_proj_bias", .rows(start: k * d, count: d))
            }
            for wb in ["weight", "bias"] {
                try add(c + "self_attn.out_proj.\(wb)", s + "attn.out_proj.\(wb)")
                try add(c + "layer_norm1.\(wb)", s + "ln_1.\(wb)")
                try add(c + "layer_norm2.\(wb)", s + "ln_2.\(wb)")
                try add(c + "mlp.fc1.\(wb)", s + "mlp.c_fc.\(wb)")
                try add(c + "mlp.fc2.\(wb)", s + "mlp.c_proj.\(wb)")
            }
        }
        var c = CLIPTextConfig()
        c.vocab_size = tok[0]
        c.hidden_size = d
        c.max_position_embeddings = pos[0]
        c.num_hidden_layers = layers
        c.intermediate_size = file.shape(of: pre + "transformer.resblocks.0.mlp.c_fc.weight")?.first ?? 4 * d
        c.num_attention_heads = max(1, d / 64)
        c.hidden_act = "gelu"
        c.projection_dim = file.shape(of: pre + "text_projection")?.last ?? d
        return Text(refs: refs, config: c)
    }
}
