import FoundationEssentials
import Glibc

/// Opens a model the way users hold it: a diffusers folder (model_index.json, unet/, vae/,
/// text_encoder/, tokenizer/, scheduler/) or a single-file .safetensors in the original layout
/// (model.diffusion_model.*, first_stage_model.*, cond_stage_model.*). Pickle files are refused.
public enum CheckpointLoader {
    /// Extensions of pickle-based PyTorch files, refused because unpickling can execute code.
    public static let pickleExtensions: Set<String> = ["ckpt", "pt", "pth", "bin", "pkl", "pickle"]

    /// - Parameters:
    ///   - path: a diffusers folder or a .safetensors file.
    ///   - predictionType: overrides the scheduler's prediction_type ("epsilon", "v_prediction").
    ///     Single-file SD2 (OpenCLIP) checkpoints default to v_prediction, SD1 to epsilon.
    ///   - configFrom: single files only: a diffusers folder whose configs to use for what shapes cannot
    ///     tell (head counts, norm groups, scaling factor, scheduler); checked against the shapes.
    public static func load(path: String, predictionType: String? = nil, configFrom: String? = nil) throws -> LoadedCheckpoint {
        if let p = predictionType, !["epsilon", "v_prediction", "sample"].contains(p) {
            throw DiffEditError.invalidArgument("prediction type \(p): expected epsilon, v_prediction or sample")
        }
        guard !path.isEmpty else { throw DiffEditError.invalidArgument("model path is empty") }
        var isDir = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw DiffEditError.io("\(path): no such file or directory")
        }
        if isDir { return try loadFolder(path, predictionType: predictionType) }
        try refuseIfPickle(path)
        return try SingleFileCheckpoint.load(path: path, predictionType: predictionType, configFrom: configFrom)
    }

    /// Throws `.unsupported` when `path` names a pickle checkpoint (by extension or by content).
    public static func refuseIfPickle(_ path: String) throws {
        let ext = PathName.pathExtension(path).lowercased()
        var pickle = pickleExtensions.contains(ext)
        if !pickle, ext != "safetensors", let h = fopen(path, "rb") {
            var head = [UInt8](repeating: 0, count: 4)
            head.removeLast(4 - fread(&head, 1, 4, h)); fclose(h)
            // a zip archive (torch.save since 1.6) or a raw pickle stream (protocol 2..5)
            if head.count >= 2 && ((head[0] == 0x50 && head[1] == 0x4B) || (head[0] == 0x80 && (2...5).contains(head[1]))) {
                pickle = true
            }
        }
        if pickle {
            throw DiffEditError.unsupported("\(path): pickle-based PyTorch checkpoints (.ckpt/.pt/.pth/.bin) are refused because unpickling can execute arbitrary code. Convert it to .safetensors (e.g. with diffusers' or safetensors' conversion scripts) or use a diffusers folder.")
        }
    }

    // MARK: diffusers folder

    static func join(_ a: String, _ b: String) -> String { PathName.join(a, b) }
    static func isFile(_ p: String) -> Bool {
        var d = false
        return FileManager.default.fileExists(atPath: p, isDirectory: &d) && !d
    }

    public static func loadFolder(_ folder: String, predictionType: String? = nil) throws -> LoadedCheckpoint {
        var className = ""
        var forceZeros = true
        var cosxl = false
        var indexWantsXL = false
        let indexPath = join(folder, "model_index.json")
        if isFile(indexPath) {
            let idx = try ConfigFile.object(path: indexPath)
            // ["transformers", "CLIPTextModelWithProjection"]; [null, null] (a pipeline without it) does not count
            if let t2 = idx["text_encoder_2"] as? [Any], t2.contains(where: { $0 is String }) { indexWantsXL = true }
            className = idx["_class_name"] as? String ?? ""
            if let c = idx["is_cosxl_edit"] {
                guard let b = c as? Bool else { throw DiffEditError.model("\(indexPath): field is_cosxl_edit: expected true or false") }
                cosxl = b
            }
            if let fz = idx["force_zeros_for_empty_prompt"] {
                guard let b = fz as? Bool else {
                    throw DiffEditError.model("\(indexPath): field force_zeros_for_empty_prompt: expected true or false")
                }
                forceZeros = b
            }
        }
        let xl = isFile(join(join(folder, "text_encoder_2"), "config.json"))
        if indexWantsXL && !xl {
            throw DiffEditError.model("\(indexPath): lists text_encoder_2 (\(className.isEmpty ? "SDXL" : className)), but \(join(folder, "text_encoder_2/config.json")) is missing")
        }
        if xl && !isFile(join(join(folder, "text_encoder"), "config.json")) {
            throw DiffEditError.unsupported("\(folder): an SDXL refiner (text_encoder_2 only, aesthetic-score conditioning) is not supported; use an SDXL base checkpoint")
        }
        for c in ["unet", "vae", "text_encoder"] {
            let cfg = join(join(folder, c), "config.json")
            if !isFile(cfg) {
                throw DiffEditError.model("\(cfg): missing — \(folder) is not a diffusers Stable Diffusion folder (needs unet/, vae/, text_encoder/ with config.json and .safetensors weights)")
            }
        }
        let unetConfig = try ConfigFile.load(UNetConfig.self, path: join(folder, "unet/config.json"))
        let vaeConfig = try ConfigFile.load(VAEConfig.self, path: join(folder, "vae/config.json"))
        let textConfig = try ConfigFile.load(CLIPTextConfig.self, path: join(folder, "text_encoder/config.json"))
        var schedulerConfig = SchedulerConfig()
        let schedPath = join(folder, "scheduler/scheduler_config.json")
        if isFile(schedPath) { schedulerConfig = try ConfigFile.load(SchedulerConfig.self, path: schedPath) }
        if let p = predictionType { schedulerConfig.prediction_type = p }

        let (unet, unetDType) = try componentWeights(join(folder, "unet"), rename: { $0 })
        let (vae, _) = try componentWeights(join(folder, "vae"), rename: { $0 })
        let (text, _) = try componentWeights(join(folder, "text_encoder"), rename: normaliseTextName)

        var vocab: String? = join(folder, "tokenizer/vocab.json")
        var merges: String? = join(folder, "tokenizer/merges.txt")
        if !isFile(vocab!) || !isFile(merges!) { vocab = nil; merges = nil }
        let pad = try padToken(tokenizerFolder: join(folder, "tokenizer"))

        var kind = detectKind(className: className, unet: unetConfig, text: textConfig)
        var xlParts: (WeightSource, CLIPTextConfig, String?, String?, String?)? = nil
        if xl {
            let cfg2 = try ConfigFile.load(CLIPTextConfig.self, path: join(folder, "text_encoder_2/config.json"))
            let (text2, _) = try componentWeights(join(folder, "text_encoder_2"), rename: normaliseTextName)
            var v2: String? = join(folder, "tokenizer_2/vocab.json"), m2: String? = join(folder, "tokenizer_2/merges.txt")
            if !isFile(v2!) || !isFile(m2!) { v2 = nil; m2 = nil }
            xlParts = (text2, cfg2, v2, m2, try padToken(tokenizerFolder: join(folder, "tokenizer_2")))
            if kind == "sd1" || kind == "sd2" { kind = "sdxl" }
        } else if unetConfig.addition_embed_type != nil {
            throw DiffEditError.model("\(folder): the UNet has addition_embed_type \(unetConfig.addition_embed_type!) (SDXL) but there is no text_encoder_2/")
        }
        var ck = LoadedCheckpoint(origin: folder, unetConfig: unetConfig, vaeConfig: vaeConfig, textConfig: textConfig,
                                  schedulerConfig: schedulerConfig, unet: unet, vae: vae, textEncoder: text,
                                  tokenizerVocabPath: vocab, tokenizerMergesPath: merges, padToken: pad,
                                  kind: kind, layout: "folder", dtype: unetDType)
        ck.editDefaults = try EditDefaults.load(folder: folder)
        ck.isCosXLEdit = cosxl
        if let (t2, c2, v2, m2, p2) = xlParts {
            ck.textEncoder2 = t2; ck.textConfig2 = c2
            ck.tokenizer2VocabPath = v2; ck.tokenizer2MergesPath = m2; ck.padToken2 = p2
            ck.forceZerosForEmptyPrompt = forceZeros
        }
        return ck
    }

    static func detectKind(className: String, unet: UNetConfig, text: CLIPTextConfig) -> String {
        if className.contains("InstructPix2Pix") || unet.in_channels == 8 { return "instruct" }
        if className.contains("Inpaint") || unet.in_channels == 9 { return "inpaint" }
        if text.hidden_act == "gelu" || unet.cross_attention_dim == 1024 { return "sd2" }
        return "sd1"
    }

    /// transformers 5 saves CLIPTextModel without the "text_model." prefix; real checkpoints have it.
    /// Returns nil for buffers that are not weights (position_ids).
    static func normaliseTextName(_ n: String) -> String? {
        if n.hasSuffix("position_ids") { return nil }
        if n.hasPrefix("embeddings.") || n.hasPrefix("encoder.") || n.hasPrefix("final_layer_norm.") { return "text_model." + n }
        return n
    }

    /// The padding token from special_tokens_map.json or tokenizer_config.json (string or {"content": ...}).
    static func padToken(tokenizerFolder: String) throws -> String? {
        func token(_ v: Any?) -> String? {
            if let s = v as? String { return s }
            if let d = v as? [String: Any] { return d["content"] as? String }
            return nil
        }
        for f in ["special_tokens_map.json", "tokenizer_config.json"] {
            let p = join(tokenizerFolder, f)
            if isFile(p), let t = token(try ConfigFile.object(path: p)["pad_token"]) { return t }
        }
        return nil
    }

    /// Weight files of one component folder: a single safetensors (plain or .fp16 variant), or a
    /// sharded set described by *.safetensors.index.json. Pickle-only folders are refused.
    static func componentWeights(_ dir: String, rename: (String) -> String?) throws -> (MappedWeightSource, String) {
        let candidates = ["diffusion_pytorch_model.safetensors", "model.safetensors",
                          "diffusion_pytorch_model.fp16.safetensors", "model.fp16.safetensors",
                          "diffusion_pytorch_model.bf16.safetensors", "model.bf16.safetensors"]
        var files: [SafetensorsFile] = []
        var weightMap: [String: String]? = nil
        if let c = candidates.first(where: { isFile(join(dir, $0)) }) {
            files = [try SafetensorsFile(path: join(dir, c))]
        } else {
            let listing = (try? FileManager.default.contentsOfDirectory(atPath: dir))?.sorted() ?? []
            if let idx = listing.first(where: { $0.hasSuffix(".safetensors.index.json") }) {
                let idxPath = join(dir, idx)
                guard let wm = try ConfigFile.object(path: idxPath)["weight_map"] as? [String: String] else {
                    throw DiffEditError.model("\(idxPath): field weight_map: missing or not an object of strings")
                }
                weightMap = wm
                for f in Set(wm.values).sorted() { files.append(try SafetensorsFile(path: join(dir, f))) }
            } else if let st = listing.first(where: { $0.hasSuffix(".safetensors") }) {
                files = [try SafetensorsFile(path: join(dir, st))]
            } else if let pk = listing.first(where: { pickleExtensions.contains(PathName.pathExtension($0).lowercased()) }) {
                try refuseIfPickle(join(dir, pk))
            }
            if files.isEmpty {
                throw DiffEditError.model("\(dir): no .safetensors weights (expected diffusion_pytorch_model.safetensors or model.safetensors)")
            }
        }
        var refs: [String: MappedWeightSource.Ref] = [:]
        var counts: [String: Int] = [:]
        for f in files {
            for n in f.names {
                if let wm = weightMap, let owner = wm[n], join(dir, owner) != f.path { continue }
                guard let clean = rename(n) else { continue }
                if let prev = refs[clean] {
                    throw DiffEditError.model("\(f.path): tensor \(n) duplicates \(prev.name) in \(prev.file.path) (both map to \(clean))")
                }
                refs[clean] = MappedWeightSource.Ref(file: f, name: n)
                if let e = f.entries[n] { counts[e.dtype, default: 0] += e.count }
            }
        }
        let dtype = counts.max { ($0.value, $0.key) < ($1.value, $1.key) }?.key ?? ""
        return (MappedWeightSource(origin: dir, refs: refs), dtype)
    }
}
