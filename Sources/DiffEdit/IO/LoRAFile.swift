import FoundationEssentials

/// A LoRA `.safetensors` file translated onto a model's clean parameter names (the one place where LoRA
/// key names are read). Layouts:
/// - diffusers / PEFT, as `save_lora_weights` writes them: `unet.<module>.lora_A.weight` / `lora_B.weight`,
///   `text_encoder.<module>...`; the older `lora.down.weight` / `lora.up.weight`, `lora_linear_layer.down/up`
///   and attention-processor (`attn1.processor.to_q_lora.down.weight`) spellings; alpha from the file's
///   `lora_adapter_metadata` (PEFT LoraConfig: lora_alpha, alpha_pattern, use_rslora) or `<module>.alpha`,
///   else alpha = rank. Text-encoder modules with or without `text_model.`.
/// - kohya sd-scripts: `lora_unet_<module with _>` and `lora_te_<module with _>` (`lora_te1_` too) with
///   `.lora_down.weight`, `.lora_up.weight`, `.alpha`; UNet modules in diffusers spelling
///   (`lora_unet_down_blocks_0_attentions_0_proj_in`) or the original LDM spelling
///   (`lora_unet_input_blocks_1_1_proj_in`, `..._input_blocks_1_0_in_layers_2`, `..._output_blocks_2_1_conv`),
///   translated with SingleFileCheckpoint's LDM mapping. Conv LoRA (LoCon: 3x3 down, 1x1 up) included.
/// Not supported, refused naming the key: LyCORIS LoHa (`hada_*`), LoKr (`lokr_*`), CP/Tucker LoCon
/// (`lora_mid`), DoRA (`dora_scale`, `lora_magnitude_vector`), full-difference (`diff`, `diff_b`) and LoRA bias
/// terms. SDXL's second text encoder: `lora_te2_*` (kohya) and `text_encoder_2.*` (diffusers), an error naming the
/// key on a model that has none (an SDXL LoRA on an SD 1.x/2.x model).
public enum LoRAFile {
    public enum Component: String, Sendable { case unet, textEncoder = "text_encoder", textEncoder2 = "text_encoder_2" }

    /// One low-rank update of one weight: W += scale * coefficient * up @ down.
    public struct Update: @unchecked Sendable {
        public var component: Component
        /// The clean parameter name, e.g. "down_blocks.0.attentions.0.proj_in.weight".
        public var target: String
        public var down: Tensor         // [r, in] or [r, in, kh, kw]
        public var up: Tensor           // [out, r] or [out, r, 1, 1]
        /// alpha / r (alpha / sqrt(r) for rsLoRA); 1 without an alpha.
        public var coefficient: Float
        /// The file's key of the down weight (for messages).
        public var key: String
    }

    /// What the translation needs of the model: its weight parameters (rank 2 and 4) with their shapes.
    public struct Targets: Sendable {
        public var unet: [String: [Int]]
        public var text: [String: [Int]]
        /// SDXL's second text encoder (nil: the model has none).
        public var text2: [String: [Int]]?
        /// The UNet's resnets per level (its `layers_per_block`, one entry per down block): places
        /// LDM-numbered keys (kohya `input_blocks_N`).
        public var resnetsPerLevel: [Int]
        public init(unet: [String: [Int]], text: [String: [Int]], text2: [String: [Int]]? = nil, resnetsPerLevel: [Int]) {
            self.unet = unet; self.text = text; self.text2 = text2; self.resnetsPerLevel = resnetsPerLevel
        }
        func weights(_ c: Component) -> [String: [Int]] {
            switch c { case .unet: return unet; case .textEncoder: return text; case .textEncoder2: return text2 ?? [:] }
        }
    }

    enum Role { case down, up, alpha }

    /// A module of the file: its down / up keys and alpha.
    struct Module {
        var component: Component
        var kohya: Bool
        var name: String          // as the file spells it (without component prefix and suffix)
        var down: String? = nil
        var up: String? = nil
        var alphaKey: String? = nil
    }

    /// Reads `path` and translates every key; throws naming the first key it cannot place (sorted order), a
    /// tensor whose shape does not fit the model's weight, or a format that is not supported.
    public static func load(path: String, targets: Targets) throws -> [Update] {
        var isDir = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir else {
            throw DiffEditError.io("LoRA \(path): no such file")
        }
        try CheckpointLoader.refuseIfPickle(path)
        let file = try SafetensorsFile(path: path)
        var modules: [String: Module] = [:]
        for key in file.names.sorted() {
            let (m, role) = try classify(key, path: path)
            let id = m.component.rawValue + "|" + (m.kohya ? "k|" : "p|") + m.name
            var mod = modules[id] ?? m
            switch role {
            case .down:
                if let prev = mod.down { throw DiffEditError.model("LoRA \(path): keys \(prev) and \(key) are both the down weight of \(m.name)") }
                mod.down = key
            case .up:
                if let prev = mod.up { throw DiffEditError.model("LoRA \(path): keys \(prev) and \(key) are both the up weight of \(m.name)") }
                mod.up = key
            case .alpha: mod.alphaKey = key
            }
            modules[id] = mod
        }
        guard !modules.isEmpty else { throw DiffEditError.model("LoRA \(path): no tensors") }
        let peftMeta = try adapterMetadata(file, path: path)
        let index = NameIndex(targets)
        var updates: [Update] = []
        var placed: [String: String] = [:]   // component|target -> key
        for id in modules.keys.sorted() {
            let m = modules[id]!
            guard let downKey = m.down, let upKey = m.up else {
                let have = m.down ?? m.up ?? m.alphaKey!
                throw DiffEditError.model("LoRA \(path): key \(have): module \(m.name) has no \(m.down == nil ? "down (lora_A / lora_down)" : "up (lora_B / lora_up)") weight")
            }
            if m.component == .textEncoder2 && targets.text2 == nil {
                throw DiffEditError.model("LoRA \(path): key \(downKey): a second text encoder's module, but this model has one text encoder (an SDXL LoRA on an SD 1.x/2.x model?)")
            }
            guard let target = index.resolve(m) else {
                let where_ = m.component == .unet ? "UNet" : m.component == .textEncoder ? "text encoder" : "second text encoder"
                throw DiffEditError.model("LoRA \(path): key \(downKey): cannot place module \(m.name) in this model's \(where_) (no such layer: a LoRA for another architecture, or an unknown naming)")
            }
            if let prev = placed[m.component.rawValue + "|" + target] {
                throw DiffEditError.model("LoRA \(path): keys \(prev) and \(downKey) both update \(m.component.rawValue) \(target)")
            }
            placed[m.component.rawValue + "|" + target] = downKey
            let wShape = targets.weights(m.component)[target]!
            guard let dShape = file.shape(of: downKey), let uShape = file.shape(of: upKey) else {
                throw DiffEditError.model("LoRA \(path): key \(downKey): missing shape")
            }
            let rank = dShape.first ?? 0
            try checkShapes(down: dShape, up: uShape, weight: wShape, rank: rank, downKey: downKey, upKey: upKey,
                            target: "\(m.component.rawValue) \(target)", path: path)
            var alpha = Float(rank)
            var rsLoRA = false
            if let ak = m.alphaKey {
                let a = try file.tensor(ak, expectedShape: nil)
                guard a.count == 1, a.data[0].isFinite else {
                    throw DiffEditError.model("LoRA \(path): tensor \(ak) must be one finite number, has shape \(a.shape)")
                }
                alpha = a.data[0]
            } else if let meta = peftMeta[m.component] {
                alpha = meta.alpha(for: m.name) ?? alpha
                rsLoRA = meta.rsLoRA
            }
            let coefficient = rsLoRA ? alpha / Float(rank).squareRoot() : alpha / Float(rank)
            updates.append(Update(component: m.component, target: target,
                                  down: try file.tensor(downKey, expectedShape: nil),
                                  up: try file.tensor(upKey, expectedShape: nil),
                                  coefficient: coefficient, key: downKey))
        }
        return updates
    }

    // MARK: keys

    static let unsupportedSuffixes: [(String, String)] = [
        ("hada_", "LyCORIS LoHa (hada_*)"), ("lokr_", "LyCORIS LoKr (lokr_*)"), ("lora_mid", "LoCon with a CP/Tucker mid weight (lora_mid)"),
        ("dora_scale", "DoRA (dora_scale)"), ("lora_magnitude_vector", "DoRA (lora_magnitude_vector)"),
        ("diff_b", "a full bias difference (diff_b)"), ("diff", "a full weight difference (diff)"),
        ("bias_indices", "LyCORIS bias (bias_*)"), ("bias_values", "LyCORIS bias (bias_*)"),
        ("scale", "a per-module scale"),
    ]

    static func unsupported(_ key: String, _ what: String, _ path: String) -> DiffEditError {
        DiffEditError.unsupported("LoRA \(path): key \(key): \(what) is not supported; diffedit reads plain LoRA and LoCon (diffusers/PEFT lora_A/lora_B, kohya lora_down/lora_up/alpha)")
    }

    /// The module and role of one key.
    static func classify(_ key: String, path: String) throws -> (Module, Role) {
        for (prefix, comp) in [("lora_unet_", Component.unet), ("lora_te1_", .textEncoder), ("lora_te2_", .textEncoder2),
                               ("lora_te_", .textEncoder)] where key.hasPrefix(prefix) {
            guard let dot = key.firstIndex(of: ".") else {
                throw DiffEditError.model("LoRA \(path): key \(key): no .lora_down.weight / .lora_up.weight / .alpha suffix")
            }
            let name = String(key[key.index(key.startIndex, offsetBy: prefix.count)..<dot])
            let suffix = String(key[key.index(after: dot)...])
            let m = Module(component: comp, kohya: true, name: name)
            switch suffix {
            case "lora_down.weight": return (m, .down)
            case "lora_up.weight": return (m, .up)
            case "alpha": return (m, .alpha)
            default:
                for (s, what) in unsupportedSuffixes where suffix.hasPrefix(s) { throw unsupported(key, what, path) }
                throw DiffEditError.model("LoRA \(path): key \(key): unknown kohya suffix .\(suffix) (expected .lora_down.weight, .lora_up.weight or .alpha)")
            }
        }
        for (prefix, comp) in [("unet.", Component.unet), ("text_encoder.", .textEncoder), ("text_encoder_2.", .textEncoder2)]
            where key.hasPrefix(prefix) {
            let rest = String(key.dropFirst(prefix.count))
            let roles: [(String, Role)] = [
                (".lora_A.weight", .down), (".lora_B.weight", .up), (".lora.down.weight", .down), (".lora.up.weight", .up),
                (".lora_linear_layer.down.weight", .down), (".lora_linear_layer.up.weight", .up),
                ("_lora.down.weight", .down), ("_lora.up.weight", .up), (".alpha", .alpha),
            ]
            for (s, role) in roles where rest.hasSuffix(s) {
                let name = normalisePEFTModule(String(rest.dropLast(s.count)), component: comp)
                return (Module(component: comp, kohya: false, name: name), role)
            }
            for (s, what) in unsupportedSuffixes where rest.contains("." + s) || rest.contains("_" + s) {
                throw unsupported(key, what, path)
            }
            if rest.hasSuffix(".lora_B.bias") || rest.hasSuffix(".lora_A.bias") { throw unsupported(key, "a LoRA bias (lora_bias)", path) }
            throw DiffEditError.model("LoRA \(path): key \(key): not a LoRA weight (expected <module>.lora_A.weight / .lora_B.weight, .lora.down.weight / .lora.up.weight or .alpha)")
        }
        throw DiffEditError.model("LoRA \(path): key \(key): cannot place it: not a diffusers/PEFT key (unet.*, text_encoder.*, text_encoder_2.*) nor a kohya key (lora_unet_*, lora_te_*, lora_te1_*, lora_te2_*)")
    }

    /// Old attention-processor spellings onto module names: "attn1.processor.to_q" -> "attn1.to_q",
    /// "to_out" -> "to_out.0" (UNet), text "self_attn.to_q" -> "self_attn.q_proj".
    static func normalisePEFTModule(_ n: String, component: Component) -> String {
        var s = n.replacing(".processor.", with: ".")
        if component == .unet {
            if s.hasSuffix(".to_out") { s += ".0" }
        } else {
            for (a, b) in [("self_attn.to_q", "self_attn.q_proj"), ("self_attn.to_k", "self_attn.k_proj"),
                           ("self_attn.to_v", "self_attn.v_proj"), ("self_attn.to_out", "self_attn.out_proj")] where s.hasSuffix(a) {
                s = String(s.dropLast(a.count)) + b
            }
        }
        return s
    }

    // MARK: shapes

    /// down [r, in] or [r, in, kh, kw] (or [r, in*kh*kw] for a 1x1 weight) and up [out, r] or [out, r, 1, 1]
    /// against the weight [out, in] / [out, in, kh, kw].
    static func checkShapes(down d: [Int], up u: [Int], weight w: [Int], rank: Int, downKey: String, upKey: String,
                            target: String, path: String) throws {
        let inner = w.dropFirst().reduce(1, *)
        let expDown = [rank] + w.dropFirst()
        let okDown = rank > 0 && (d == expDown || (d.count == 2 && d[1] == inner && (w.count == 2 || w[2...].allSatisfy { $0 == 1 }))
                                  || (w.count == 2 && d == [rank, w[1], 1, 1]))
        guard okDown else {
            throw DiffEditError.model("LoRA \(path): tensor \(downKey) has shape \(d), but the model's \(target) is \(w) (expected \(expDown)): a LoRA for another architecture?")
        }
        let okUp = u == [w[0], rank] || u == [w[0], rank, 1, 1]
        guard okUp else {
            throw DiffEditError.model("LoRA \(path): tensor \(upKey) has shape \(u), but the model's \(target) is \(w) (expected \(w.count == 4 ? [w[0], rank, 1, 1] : [w[0], rank])): a LoRA for another architecture?")
        }
    }

    // MARK: PEFT metadata

    struct PEFTConfig {
        var loraAlpha: Float?
        var alphaPattern: [(String, Float)]
        var rsLoRA: Bool
        /// PEFT matches a pattern key k against a module name m as the regex `(.*\.)?k$`.
        func alpha(for module: String) -> Float? {
            for (k, a) in alphaPattern where module == k || module.hasSuffix("." + k) { return a }
            let stripped = module.hasPrefix("text_model.") ? String(module.dropFirst("text_model.".count)) : "text_model." + module
            for (k, a) in alphaPattern where stripped == k || stripped.hasSuffix("." + k) { return a }
            return loraAlpha
        }
    }

    /// diffusers' `lora_adapter_metadata` (JSON of each component's LoraConfig, keys prefixed "unet." /
    /// "text_encoder.").
    static func adapterMetadata(_ file: SafetensorsFile, path: String) throws -> [Component: PEFTConfig] {
        guard let raw = file.metadata["lora_adapter_metadata"] else { return [:] }
        guard let obj = (try? JSONAny.parse(Array(raw.utf8))) as? [String: Any] else {
            throw DiffEditError.model("LoRA \(path): __metadata__ lora_adapter_metadata is not a JSON object")
        }
        func number(_ v: Any?) -> Float? {
            if let i = v as? Int { return Float(i) }
            if let d = v as? Double { return Float(d) }
            return nil
        }
        var out: [Component: PEFTConfig] = [:]
        for comp in [Component.unet, .textEncoder, .textEncoder2] {
            let p = comp.rawValue + "."
            guard obj.keys.contains(where: { $0.hasPrefix(p) }) else { continue }
            if obj[p + "use_dora"] as? Bool == true {
                throw DiffEditError.unsupported("LoRA \(path): __metadata__ \(p)use_dora: DoRA is not supported")
            }
            var pattern: [(String, Float)] = []
            if let ap = obj[p + "alpha_pattern"] as? [String: Any] {
                for k in ap.keys.sorted() {
                    guard let a = number(ap[k]), a.isFinite else {
                        throw DiffEditError.model("LoRA \(path): __metadata__ \(p)alpha_pattern[\(k)] is not a number")
                    }
                    pattern.append((k, a))
                }
            }
            let alpha = number(obj[p + "lora_alpha"])
            if let a = alpha, !a.isFinite { throw DiffEditError.model("LoRA \(path): __metadata__ \(p)lora_alpha is not finite") }
            out[comp] = PEFTConfig(loraAlpha: alpha, alphaPattern: pattern, rsLoRA: obj[p + "use_rslora"] as? Bool == true)
        }
        return out
    }

    // MARK: names

    /// The model's parameters by every spelling a LoRA may use.
    struct NameIndex {
        let targets: Targets
        var unetKohya: [String: String] = [:]   // "down_blocks_0_attentions_0_proj_in" -> "...proj_in.weight"
        var textKohya: [String: String] = [:]
        var text2Kohya: [String: String] = [:]

        init(_ t: Targets) {
            targets = t
            for n in (t.text2 ?? [:]).keys where n.hasSuffix(".weight") {
                let module = String(n.dropLast(".weight".count))
                text2Kohya[NameIndex.underscored(module)] = n
                if module.hasPrefix("text_model.") {
                    text2Kohya[NameIndex.underscored(String(module.dropFirst("text_model.".count)))] = n
                } else {
                    text2Kohya[NameIndex.underscored("text_model." + module)] = n
                }
            }
            for n in t.unet.keys where n.hasSuffix(".weight") {
                unetKohya[NameIndex.underscored(String(n.dropLast(".weight".count)))] = n
            }
            for n in t.text.keys where n.hasSuffix(".weight") {
                let module = String(n.dropLast(".weight".count))
                textKohya[NameIndex.underscored(module)] = n
                if module.hasPrefix("text_model.") {
                    textKohya[NameIndex.underscored(String(module.dropFirst("text_model.".count)))] = n
                } else {
                    textKohya[NameIndex.underscored("text_model." + module)] = n
                }
            }
        }

        static func underscored(_ s: String) -> String { s.replacing(".", with: "_") }

        func resolve(_ m: Module) -> String? {
            switch (m.component, m.kohya) {
            case (.unet, false):
                let n = m.name + ".weight"
                return targets.unet[n] != nil ? n : nil
            case (.textEncoder, false), (.textEncoder2, false):
                let n = m.name + ".weight", w = targets.weights(m.component)
                for c in [n, "text_model." + n, n.hasPrefix("text_model.") ? String(n.dropFirst("text_model.".count)) : n]
                    where w[c] != nil { return c }
                return nil
            case (.textEncoder, true):
                return textKohya[m.name]
            case (.textEncoder2, true):
                return text2Kohya[m.name]
            case (.unet, true):
                return unetKohya[m.name] ?? ldm(m.name)
            }
        }

        /// kohya's LDM spelling: input_blocks_I_J_<tail>, middle_block_J_<tail>, output_blocks_I_J_<tail>,
        /// time_embed_K, out_K.
        func ldm(_ u: String) -> String? {
            let heads: [(String, Int)] = [("input_blocks_", 2), ("output_blocks_", 2), ("middle_block_", 1), ("time_embed_", 1), ("out_", 1)]
            guard let (head, nIdx) = heads.first(where: { u.hasPrefix($0.0) }) else { return nil }
            var rest = Substring(u.dropFirst(head.count))
            var parts: [Substring] = [Substring(head.dropLast())]
            for _ in 0..<nIdx {
                let digits = rest.prefix { $0.isNumber }
                guard !digits.isEmpty else { return nil }
                parts.append(digits)
                rest = rest.dropFirst(digits.count)
                if rest.hasPrefix("_") { rest = rest.dropFirst() }
            }
            let tail = String(rest)
            let marker: Substring = "\u{1}"
            if tail.isEmpty {
                parts.append("weight")
            } else if let r = SingleFileCheckpoint.resnetRenames.first(where: { NameIndex.underscored(String($0.0.dropLast())) == tail }) {
                parts += SingleFileCheckpoint.parts(Substring(r.0.dropLast())) + ["weight"]
            } else if tail == "op" || tail == "conv" {
                parts += [Substring(tail), "weight"]
            } else {
                parts += [marker, "weight"]
            }
            guard case .clean(let clean) = SingleFileCheckpoint.ldmUNetName(
                parts, layout: .init(resnets: targets.resnetsPerLevel)) else { return nil }
            if let r = clean.firstRange(of: String(marker)) {
                return unetKohya[NameIndex.underscored(String(clean[..<r.lowerBound])) + tail]
            }
            return targets.unet[clean] != nil ? clean : nil
        }
    }
}
