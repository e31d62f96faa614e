/// What made an image: the IPTC digital source type and diffedit's record of the call (model name and the
/// SHA-256 of its weights, method, prompts, seed, steps, guidance, strength, LoRAs and ControlNets, whether
/// the invisible watermark was embedded). Written as XMP (`XMPPacket`) into every image the CLI writes, and
/// returned by the C ABI (diff_edit_last_provenance) for hosts to attach.
public struct ProvenanceRecord: Equatable, Sendable {
    /// IPTC NewsCodes digital source types (https://cv.iptc.org/newscodes/digitalsourcetype/).
    public static let trainedAlgorithmicMedia = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
    public static let compositeWithTrainedAlgorithmicMedia =
        "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"

    /// A LoRA or ControlNet that took part: its file or folder name, SHA-256 when known, scale.
    public struct Adapter: Equatable, Sendable {
        public var name: String
        public var sha256: String?
        public var scale: Double
        public init(name: String, sha256: String? = nil, scale: Double) { self.name = name; self.sha256 = sha256; self.scale = scale }
    }

    /// "generate", "edit" or "video".
    public var command: String
    public var model: String
    public var modelSHA256: String?
    public var method: String
    public var prompt: String
    public var negativePrompt: String?
    public var sourcePrompt: String?
    public var seed: UInt64
    public var steps: Int
    public var guidance: Double
    /// instruct only
    public var imageGuidance: Double?
    /// sdedit only
    public var strength: Double?
    public var loras: [Adapter] = []
    public var controlNets: [Adapter] = []
    public var watermark: Bool
    public var software: String

    public init(command: String, model: String, modelSHA256: String?, method: String, prompt: String,
                negativePrompt: String? = nil, sourcePrompt: String? = nil, seed: UInt64, steps: Int, guidance: Double,
                imageGuidance: Double? = nil, strength: Double? = nil, watermark: Bool, software: String = ProvenanceRecord.softwareName) {
        self.command = command; self.model = model; self.modelSHA256 = modelSHA256; self.method = method
        self.prompt = prompt; self.negativePrompt = negativePrompt; self.sourcePrompt = sourcePrompt; self.seed = seed
        self.steps = steps; self.guidance = guidance; self.imageGuidance = imageGuidance; self.strength = strength
        self.watermark = watermark; self.software = software
    }

    public static let softwareName = "diffedit 0.1.0"

    /// trainedAlgorithmicMedia for generate, compositeWithTrainedAlgorithmicMedia for edits (image and video).
    public var digitalSourceType: String {
        command == "generate" ? ProvenanceRecord.trainedAlgorithmicMedia : ProvenanceRecord.compositeWithTrainedAlgorithmicMedia
    }

    /// The watermark's description in the record.
    public static let watermarkDescription =
        "invisible-watermark dwtDctSvd, 48 bits 101100111110110010010000011110111011000110011110 (diffusers SDXL)"

    /// An edit as the library resolves it (method auto, defaults from the model's diffedit.json): the values
    /// that were used, not the ones that were left out.
    public static func edit(model: StableDiffusionModel, modelName: String, modelSHA256: String?, options o: EditOptions,
                            width: Int, height: Int, video: Bool, watermark: Bool) -> ProvenanceRecord {
        let parts = model.editParts
        let r = try? ResolvedEdit(options: o, unetInChannels: parts.unet.config.in_channels, imageWidth: max(1, width),
                                  imageHeight: max(1, height), defaults: parts.editDefaults)
        let method = r?.method ?? ResolvedEdit.resolveMethod(o.method, unetInChannels: parts.unet.config.in_channels,
                                                             sourcePrompt: o.sourcePrompt)
        var rec = ProvenanceRecord(
            command: video ? "video" : "edit", model: modelName, modelSHA256: modelSHA256, method: method.rawValue,
            prompt: o.prompt, negativePrompt: o.negativePrompt,
            sourcePrompt: (method == .p2p || method == .ddim) ? o.sourcePrompt : nil, seed: o.seed,
            steps: r?.steps ?? o.steps ?? ResolvedEdit.defaultSteps,
            guidance: Double(r?.guidance ?? o.guidance ?? ResolvedEdit.defaultGuidance), watermark: watermark)
        if method == .instruct { rec.imageGuidance = Double(r?.imageGuidance ?? o.imageGuidance ?? ResolvedEdit.defaultImageGuidance) }
        if method == .sdedit { rec.strength = Double(r?.strength ?? o.strength ?? ResolvedEdit.defaultStrength) }
        rec.loras = adapters(model.loras)
        rec.controlNets = adapters(o.controls)
        return rec
    }

    /// The ControlNets of a call, with the SHA-256 of their weights (ModelHash: cached, hashed once).
    public static func adapters(_ specs: [ControlSpec]) -> [Adapter] {
        specs.map { Adapter(name: modelName(path: $0.net.origin), sha256: try? ModelHash.sha256(modelPath: $0.net.origin),
                            scale: Double($0.scale)) }
    }

    /// The LoRAs fused into a model, with their files' SHA-256 (ModelHash: cached, hashed once).
    public static func adapters(_ specs: [LoRASpec]) -> [Adapter] {
        specs.map { Adapter(name: modelName(path: $0.path), sha256: try? ModelHash.fileSHA256($0.path), scale: Double($0.scale)) }
    }

    /// The model's name for the record: the last path component of its file or folder.
    public static func modelName(path: String) -> String {
        var p = Substring(path)
        while p.count > 1 && p.hasSuffix("/") { p = p.dropLast() }
        return String(p.split(separator: "/").last ?? p)
    }

    /// (property, value) pairs in the record's order, for text output.
    public var fields: [(String, String)] {
        var f: [(String, String)] = [
            ("DigitalSourceType", digitalSourceType), ("Software", software), ("Command", command), ("Model", model),
        ]
        if let h = modelSHA256 { f.append(("ModelSHA256", h)) }
        f.append(("Method", method))
        f.append(("Prompt", prompt))
        if let n = negativePrompt { f.append(("NegativePrompt", n)) }
        if let s = sourcePrompt { f.append(("SourcePrompt", s)) }
        f += [("Seed", String(seed)), ("Steps", String(steps)), ("Guidance", ProvenanceRecord.number(guidance))]
        if let g = imageGuidance { f.append(("ImageGuidance", ProvenanceRecord.number(g))) }
        if let s = strength { f.append(("Strength", ProvenanceRecord.number(s))) }
        for l in loras { f.append(("LoRA", ProvenanceRecord.adapterText(l))) }
        for c in controlNets { f.append(("ControlNet", ProvenanceRecord.adapterText(c))) }
        f.append(("Watermark", watermark ? ProvenanceRecord.watermarkDescription : "none"))
        return f
    }

    /// The record as one JSON object ({"DigitalSourceType": ..., "Model": ..., "LoRA": [...], ...}), for places
    /// that take text rather than XMP (video container metadata).
    public var json: String {
        func str(_ s: String) -> String {
            var out = "\""
            for c in s.unicodeScalars {
                switch c {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case let x where x.value < 0x20:
                    let h = String(x.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
                default: out.unicodeScalars.append(c)
                }
            }
            return out + "\""
        }
        var keys: [String] = [], values: [String: [String]] = [:]
        for (k, v) in fields {
            if values[k] == nil { keys.append(k) }
            values[k, default: []].append(v)
        }
        let numeric: Set<String> = ["Seed", "Steps", "Guidance", "ImageGuidance", "Strength"]
        return "{" + keys.map { k in
            let vs = values[k]!
            if k == "LoRA" || k == "ControlNet" { return str(k) + ": [" + vs.map(str).joined(separator: ", ") + "]" }
            return str(k) + ": " + (numeric.contains(k) ? vs[0] : str(vs[0]))
        }.joined(separator: ", ") + "}"
    }

    static func adapterText(_ a: Adapter) -> String {
        "\(a.name) scale=\(number(a.scale))" + (a.sha256.map { " sha256=\($0)" } ?? "")
    }

    /// Shortest decimal that reads back as the Float the call used (7.5, 0.8, not 0.800000011920929).
    static func number(_ v: Double) -> String {
        let f = Float(v)
        if f.isFinite && Double(f) == v { return "\(f)" }
        return "\(v)"
    }
}
