import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import DiffEdit

/// `diffedit info`: what a checkpoint is, without building the networks.
enum InfoCommand {
    static let parser = ArgParser(
        command: "info",
        usage: "[--model PATH] [--json] | --provenance IMAGE [--json]",
        summary: "Describes a checkpoint: architecture kind, layout, dtype, UNet levels and channels, parameter counts, VAE latent factor, text encoder, tokenizer and scheduler config.",
        options: [CommonOptions.model, CommonOptions.configFrom, .init(name: "json", value: nil, help: "print one JSON object"),
                  .init(name: "provenance", value: "IMAGE", help: "instead: the provenance record (XMP) and the invisible watermark of a PNG or JPEG")])

    static func params(_ w: WeightSource) -> Int {
        w.names.reduce(0) { $0 + (w.shape(of: $1)?.reduce(1, *) ?? 0) }
    }

    static func run(arguments: [String]) throws {
        let p = try parser.parse(arguments)
        guard p.positionals.isEmpty else { throw CLIError.usage("info", "unexpected argument \(p.positionals[0])") }
        if let image = p.string("provenance") { return try provenance(image, json: p.flag("json")) }
        let path = try p.string("model").flatMap { $0.isEmpty ? nil : $0 } ?? DefaultModel.resolve()
        let ck = try CheckpointLoader.load(path: path, configFrom: p.string("config-from"))
        let u = ck.unetConfig, v = ck.vaeConfig, t = ck.textConfig, s = ck.schedulerConfig
        let (pu, pv, pt) = (params(ck.unet), params(ck.vae), params(ck.textEncoder))
        let pt2 = ck.textEncoder2.map(params) ?? 0
        let heads = (0..<u.block_out_channels.count).map { u.heads(block: $0) }
        let sched = SchedulerFactory.name(forClassName: s._class_name)
        let info: [(String, Any)] = [
            ("path", ck.origin),
            ("layout", ck.layout),
            ("kind", ck.kind),
            ("dtype", ck.dtype),
            ("parameters", pu + pv + pt + pt2),
            ("unet", [
                ("parameters", pu), ("in_channels", u.in_channels), ("out_channels", u.out_channels),
                ("levels", u.block_out_channels.count), ("block_out_channels", u.block_out_channels),
                ("layers_per_block", u.layers_per_block.jsonValue), ("attention_heads", heads),
                ("cross_attention_dim", u.cross_attention_dim), ("use_linear_projection", u.use_linear_projection),
                ("sample_size", u.sample_size), ("down_block_types", u.down_block_types),
            ] as [(String, Any)]),
            ("vae", [
                ("parameters", pv), ("latent_channels", v.latent_channels), ("latent_factor", v.downsampleFactor),
                ("block_out_channels", v.block_out_channels), ("scaling_factor", Double(v.scaling_factor)),
                ("shift_factor", v.shift_factor.map { Double($0) } ?? Double.nan),
                ("native_size", u.sample_size * v.downsampleFactor),
            ] as [(String, Any)]),
            ("text_encoder", [
                ("parameters", pt), ("layers", t.num_hidden_layers), ("hidden_size", t.hidden_size),
                ("heads", t.num_attention_heads), ("hidden_act", t.hidden_act), ("max_tokens", t.max_position_embeddings),
            ] as [(String, Any)]),
            ("tokenizer", [
                ("source", ck.tokenizerVocabPath != nil ? "tokenizer/ folder" : "embedded CLIP vocabulary"),
                ("pad_token", ck.padToken ?? "<|endoftext|>"),
            ] as [(String, Any)]),
            ("scheduler", [
                ("_class_name", s._class_name), ("default_sampler", sched),
                ("prediction_type", s.prediction_type), ("beta_schedule", s.beta_schedule),
                ("beta_start", Double(s.beta_start)), ("beta_end", Double(s.beta_end)),
                ("num_train_timesteps", s.num_train_timesteps), ("timestep_spacing", s.timestep_spacing),
                ("steps_offset", s.steps_offset), ("set_alpha_to_one", s.set_alpha_to_one),
                ("rescale_betas_zero_snr", s.rescale_betas_zero_snr),
            ] as [(String, Any)]),
        ]
        var all = info
        if let t2 = ck.textConfig2 {
            // SDXL: the second text encoder (CLIPTextModelWithProjection), its tokenizer, the added conditioning
            let at = all.firstIndex { $0.0 == "tokenizer" }!
            all.insert(("text_encoder_2", [
                ("parameters", pt2), ("layers", t2.num_hidden_layers), ("hidden_size", t2.hidden_size),
                ("heads", t2.num_attention_heads), ("hidden_act", t2.hidden_act), ("projection_dim", t2.projection_dim),
                ("max_tokens", t2.max_position_embeddings),
            ] as [(String, Any)]), at: at)
            all.insert(("tokenizer_2", [
                ("source", ck.tokenizer2VocabPath != nil ? "tokenizer_2/ folder" : "embedded CLIP vocabulary"),
                ("pad_token", ck.padToken2 ?? "!"),
            ] as [(String, Any)]), at: at + 2)
            all.insert(("added_conditioning", [
                ("addition_embed_type", u.addition_embed_type ?? "none"),
                ("addition_time_embed_dim", u.addition_time_embed_dim ?? 0),
                ("projection_class_embeddings_input_dim", u.projection_class_embeddings_input_dim ?? 0),
                ("force_zeros_for_empty_prompt", ck.forceZerosForEmptyPrompt),
            ] as [(String, Any)]), at: at + 3)
        }
        if p.flag("json") { print(json(all)) } else { printText(all, indent: 0) }
    }

    /// `info --provenance IMAGE`: the XMP record (or why there is none) and the watermark read back.
    static func provenance(_ path: String, json asJSON: Bool) throws {
        var items: [(String, Any)] = [("file", path)]
        var record: [(String, Any)] = []
        do {
            if let packet = try ImageFile.readXMP(path: path) {
                let fields = try XMPPacket.read(packet)
                if fields.isEmpty { items.append(("xmp", "present, no provenance record")) }
                // repeated properties (LoRA, ControlNet, History items) are numbered
                var seen: [String: Int] = [:]
                for (k, v) in fields {
                    let n = seen[k, default: 0]; seen[k] = n + 1
                    record.append((n == 0 && fields.filter({ $0.0 == k }).count == 1 ? k : "\(k)[\(n)]", v))
                }
            } else {
                items.append(("xmp", "none"))
            }
        } catch let e as XMLTree.ParseError {
            items.append(("xmp", "malformed: \(e.description)"))
        }
        if !record.isEmpty { items.append(("record", record)) }
        let image = try ImageFile.read(path: path)
        if let d = InvisibleWatermark.decode(image) {
            let match = zip(d.bits, InvisibleWatermark.message).filter { $0 == $1 }.count
            let bits = d.bits.map(String.init).joined()
            let agreement = d.agreement.reduce(0, +) / Double(d.agreement.count)
            items.append(("watermark", [
                ("present", match >= 40), ("matching_bits", match), ("of", 48), ("bits", bits),
                ("block_agreement", (agreement * 1000).rounded() / 1000),
            ] as [(String, Any)]))
        } else {
            items.append(("watermark", "not checked: \(image.width)x\(image.height) is under \(InvisibleWatermark.minSide) px a side"))
        }
        if asJSON { print(json(items)) } else { printText(items, indent: 0) }
    }

    static func scalar(_ v: Any) -> String {
        switch v {
        case let s as String: return s
        case let d as Double: return d.isNaN ? "none" : TextUtil.format("%g", d)
        case let a as [Int]: return "[" + a.map(String.init).joined(separator: ", ") + "]"
        case let a as [String]: return "[" + a.joined(separator: ", ") + "]"
        default: return "\(v)"
        }
    }

    static func printText(_ items: [(String, Any)], indent: Int) {
        let pad = String(repeating: "  ", count: indent)
        for (k, v) in items {
            if let sub = v as? [(String, Any)] { print("\(pad)\(k):"); printText(sub, indent: indent + 1) }
            else if k == "parameters", let n = v as? Int { print("\(pad)\(k): \(n) (\(TextUtil.format("%.1f", Double(n) / 1e6))M)") }
            else { print("\(pad)\(k): \(scalar(v))") }
        }
    }

    static func jsonString(_ s: String) -> String {
        var out = "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case let x where x.value < 0x20: out += TextUtil.format("\\u%04x", x.value)
            default: out.unicodeScalars.append(c)
            }
        }
        return out + "\""
    }

    static func json(_ v: Any) -> String {
        switch v {
        case let items as [(String, Any)]: return "{" + items.map { jsonString($0.0) + ": " + json($0.1) }.joined(separator: ", ") + "}"
        case let s as String: return jsonString(s)
        case let b as Bool: return b ? "true" : "false"
        case let i as Int: return String(i)
        case let d as Double: return d.isFinite ? "\(d)" : "null"
        case let a as [Int]: return "[" + a.map(String.init).joined(separator: ", ") + "]"
        case let a as [String]: return "[" + a.map(jsonString).joined(separator: ", ") + "]"
        default: return jsonString("\(v)")
        }
    }
}
