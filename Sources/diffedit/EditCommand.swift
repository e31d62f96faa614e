import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import DiffEdit
import DiffEditBench

/// `diffedit edit`: edit an image with a prompt (SDEdit, DDIM inversion, Prompt-to-Prompt, InstructPix2Pix).
enum EditCommand {
    static let parser = ArgParser(
        command: "edit",
        usage: "--input IN.png --prompt TEXT --output OUT.png [options]",
        summary: """
            Edits an image. Methods: sdedit (img2img), ddim (DDIM inversion with the source prompt, then sampling \
            with the prompt), p2p (Prompt-to-Prompt with LocalBlend on inverted latents), instruct \
            (InstructPix2Pix checkpoints), inpaint (inpainting checkpoints: repaints --mask), auto (instruct for an \
            instruct checkpoint, inpaint for an inpainting checkpoint, else p2p with a source prompt, else sdedit).
            """,
        options: [
            CommonOptions.model,
            .init(name: "input", value: "IN.png", help: "image to edit, .png or .jpg (required)"),
            .init(name: "method", value: "sdedit|ddim|p2p|instruct|inpaint|auto", help: "editing method (default auto)"),
            .init(name: "prompt", value: "TEXT", help: "target description, or the instruction for instruct (required)"),
            .init(name: "source-prompt", value: "TEXT", help: "description of the input image (ddim, p2p)"),
            .init(name: "negative-prompt", value: "TEXT", help: "unconditional prompt (default empty; p2p: the source prompt)"),
            .init(name: "steps", value: "N", help: "denoising steps (default \(ResolvedEdit.defaultSteps), or the model's diffedit.json)"),
            .init(name: "guidance", value: "G", help: "text guidance scale (default \(ResolvedEdit.defaultGuidance), or the model's diffedit.json)"),
            .init(name: "image-guidance", value: "G", help: "image guidance scale, instruct (default \(ResolvedEdit.defaultImageGuidance), or the model's diffedit.json)"),
            .init(name: "strength", value: "S", help: "sdedit, inpaint: fraction of the schedule to run, in (0, 1]; below 1/steps no step runs (the VAE reconstruction) (default \(ResolvedEdit.defaultStrength), or the model's diffedit.json; inpaint: \(Int(ResolvedEdit.defaultInpaintStrength)), pure noise in the mask)"),
            .init(name: "mask", value: "MASK.png", help: "grayscale mask, same size as the input: white = edit, black = keep (inpaint: the region to repaint, required)"),
            .init(name: "mask-out", value: "MASK.png", help: "write the mask the method used"),
            .init(name: "seed", value: "S", help: "noise seed; only the low 32 bits matter, as torch.manual_seed (default 0)"),
            .init(name: "init-noise", value: "NOISE.npy", help: "noise as float32 NPY [1, 4, h, w] (overrides --seed)"),
            .init(name: "save-latents", value: "OUT.npy", help: "write the final latents (before VAE decoding)"),
            .init(name: "reweight", value: "WORD=F", help: "p2p: scale the attention to WORD of the prompt (repeatable: a=2,b=0.5)"),
            .init(name: "cross-replace-steps", value: "F", help: "p2p: fraction of steps with cross-attention control (default \(ResolvedEdit.defaultCrossReplace), or the model's diffedit.json)"),
            .init(name: "self-replace-steps", value: "F", help: "p2p: fraction of steps with self-attention injection (default \(ResolvedEdit.defaultSelfReplace), or the model's diffedit.json)"),
            .init(name: "no-local-blend", value: nil, help: "p2p: no automatic LocalBlend mask"),
            .init(name: "direct-inversion", value: nil, help: "p2p: pin the source branch to the inverted trajectory (background = the input's own latents outside the LocalBlend mask; default: the model's diffedit.json, else off)"),
            .init(name: "no-direct-inversion", value: nil, help: "p2p: plain P2P source branch even when the model's diffedit.json turns direct inversion on"),
            .init(name: "blend-dilation", value: "N", help: "p2p: LocalBlend max-pool radius in attention-map pixels, 0-8 (default \(ResolvedEdit.defaultBlendDilation), a 3x3 pool, or the model's diffedit.json)"),
            .init(name: "blend-threshold", value: "T", help: "p2p: LocalBlend mask threshold in [0, 1), higher = tighter (default \(ResolvedEdit.defaultBlendThreshold), or the model's diffedit.json)"),
            .init(name: "uncond-mix", value: "A", help: "p2p: the edited branch's unconditional prompt is A x empty + (1 - A) x the source prompt, in [0, 1] (default 0, plain negative-prompt inversion, or the model's diffedit.json)"),
            .init(name: "new-word-weight", value: "F", help: "p2p: re-weight the attention to the edited words of the prompt (those that differ from the source prompt) by F (default 1 = off, or the model's diffedit.json; --reweight names win)"),
            .init(name: "blend-next-word", value: nil, help: "p2p: LocalBlend also follows the word after each swapped word (\"circle\" in \"a red circle\" -> \"a blue circle\"; default: the model's diffedit.json, else off)"),
            .init(name: "no-blend-next-word", value: nil, help: "p2p: LocalBlend follows the swapped words only, even when the model's diffedit.json says otherwise"),
            .init(name: "full-resolution", value: nil, help: "process at the input's size instead of the model's native size"),
            .init(name: "output", value: "OUT.png", help: "output image, .png or .jpg (required)"),
            .init(name: "bench", value: "METHODS", help: "benchmark instead: seconds per edit for each method (e.g. sdedit,sdedit_cn,ddim,p2p,instruct; sdedit_cn = sdedit with a ControlNet) on the full SD 1.5 architecture with random weights; with --bench-size and --steps (lists allowed)"),
            .init(name: "bench-size", value: "S", help: "benchmark image size (default 512)"),
            CommonOptions.lora, CommonOptions.backend, CommonOptions.threads, CommonOptions.weightsDType, CommonOptions.compute, CommonOptions.vaeTiling, CommonOptions.vaeTileSize,
            CommonOptions.quiet,
        ] + ControlOptions.options(preprocessors: true) + ProvenanceOptions.all(watermarkDefault: false))

    /// `--bench`: prints "bench edit method=M size=S steps=N seconds=T" lines.
    static func bench(_ p: ArgParser.Parsed, methods: String) throws -> Int32 {
        // sdedit_cn: sdedit with a ControlNet (random SD 1.5-sized weights)
        let entries = try methods.split(separator: ",").map { s -> (EditMethod, Bool) in
            if s == "sdedit_cn" { return (.sdedit, true) }
            guard let m = EditMethod(rawValue: String(s)), m != .auto else {
                throw CLIError.usage("edit", "--bench: \"\(s)\" is not one of sdedit, sdedit_cn, ddim, p2p, instruct")
            }
            return (m, false)
        }
        let size = try p.int("bench-size") ?? 512
        guard size > 0, size % 64 == 0 else { throw CLIError.usage("edit", "--bench-size: \(size) must be a positive multiple of 64") }
        let stepsList = try (p.string("steps") ?? "50,20").split(separator: ",").map { s -> Int in
            guard let n = Int(s), n >= 1 else { throw CLIError.usage("edit", "--steps: \"\(s)\" is not a step count") }
            return n
        }
        let backend = try CommonOptions.makeBackend(p)
        for instruct in [false, true] {
            let group = entries.filter { ($0.0 == .instruct) == instruct }
            if group.isEmpty { continue }
            let model = try EditBenchmark.randomSD15(instruct: instruct, backend: backend)
            let net = group.contains { $0.1 } ? try EditBenchmark.randomControlNet(backend: backend) : nil
            for (m, cn) in group {
                for steps in stepsList {
                    let s = try EditBenchmark.time(m, model: model, size: size, steps: steps, controlNet: cn ? net : nil)
                    StdIO.out(EditBenchmark.line(m, size: size, steps: steps, seconds: s, controlNet: cn) + "\n")
                }
            }
        }
        return 0
    }

    static func parseReweight(_ s: String) throws -> [String: Float] {
        var out: [String: Float] = [:]
        for item in s.split(separator: ",") {
            let kv = item.split(separator: "=", maxSplits: 1)
            guard kv.count == 2, !kv[0].isEmpty, let f = Float(kv[1]) else {
                throw CLIError.usage("edit", "--reweight: \"\(item)\" is not WORD=FACTOR")
            }
            out[String(kv[0])] = f
        }
        return out
    }

    static func run(arguments: [String]) throws -> Int32 {
        let p = try parser.parse(arguments)
        guard p.positionals.isEmpty else { throw CLIError.usage("edit", "unexpected argument \(p.positionals[0])") }
        if let methods = p.string("bench") { return try bench(p, methods: methods) }
        let input = try p.required("input")
        let output = try p.required("output")
        for (opt, path) in [("output", output), ("mask-out", p.string("mask-out") ?? "x.png"), ("control-out", p.string("control-out") ?? "x.png")] {
            let ext = PathName.pathExtension(path).lowercased()
            guard ["png", "jpg", "jpeg"].contains(ext) else {
                throw CLIError.usage("edit", "--\(opt): \(path) must end in .png, .jpg or .jpeg")
            }
        }
        var o = EditOptions()
        if let m = p.string("method") {
            guard let mm = EditMethod(rawValue: m) else {
                throw CLIError.usage("edit", "--method: \"\(m)\" is not one of sdedit, ddim, p2p, instruct, inpaint, auto")
            }
            o.method = mm
        }
        o.prompt = try p.required("prompt")
        o.sourcePrompt = p.string("source-prompt")
        o.negativePrompt = p.string("negative-prompt")
        o.steps = try p.int("steps")
        o.guidance = try p.float("guidance")
        o.imageGuidance = try p.float("image-guidance")
        o.strength = try p.float("strength")
        o.seed = try p.uint64("seed") ?? 0
        o.crossReplaceSteps = try p.float("cross-replace-steps")
        o.selfReplaceSteps = try p.float("self-replace-steps")
        o.localBlend = !p.flag("no-local-blend")
        o.blendThreshold = try p.float("blend-threshold")
        o.blendDilation = try p.int("blend-dilation")
        o.uncondMix = try p.float("uncond-mix")
        o.newWordWeight = try p.float("new-word-weight")
        o.directInversion = try p.toggle("direct-inversion")
        o.blendNextWord = try p.toggle("blend-next-word")
        o.fullResolution = p.flag("full-resolution")
        o.reportMask = p.string("mask-out") != nil
        if let rw = p.string("reweight") { o.reweight = try parseReweight(rw) }
        if let n = p.string("init-noise") { o.initNoise = try NPY.readTensor(path: n) }
        let image = try ImageFile.read(path: input)
        if let m = p.string("mask") { o.mask = try ImageFile.readGray(path: m) }

        let backend = try CommonOptions.makeBackend(p)
        // Without --model: the instruct toy model for auto/instruct, the text-to-image one for the others.
        let needsTextToImage = [.sdedit, .ddim, .p2p].contains(o.method)
        let model = try CommonOptions.loadModel(p, backend: backend,
                                                defaultName: needsTextToImage ? DefaultModel.textToImageName : DefaultModel.name)
        o.controls = try ControlOptions.specs(p, model: model, width: image.width, height: image.height)
        o.controlGuessMode = p.flag("control-guess-mode")
        let editor = ImageEditor(model: model)
        let bar = ProgressBar(label: "edit", quiet: p.flag("quiet"))
        let r = try editor.edit(image, options: o, progress: bar.reporter)
        let watermark = try p.toggle("watermark") ?? false
        let edited = watermark ? InvisibleWatermark.embed(r.image) : r.image
        var record: ProvenanceRecord? = nil
        if !p.flag("no-metadata") {
            let id = ProvenanceOptions.modelIdentity(p, defaultName: needsTextToImage ? DefaultModel.textToImageName : DefaultModel.name)
            record = ProvenanceRecord.edit(model: model, modelName: id.name, modelSHA256: id.sha256, options: o,
                                           width: image.width, height: image.height, video: false,
                                           watermark: watermark && InvisibleWatermark.canMark(width: edited.width, height: edited.height))
        }
        try ProvenanceOptions.write(edited, path: output, record: record, inputPath: input)
        try ControlOptions.writeMaps(p, r.controlMaps)
        if let mo = p.string("mask-out") {
            let mask = r.mask ?? GrayImage(width: image.width, height: image.height,
                                           pixels: [UInt8](repeating: 255, count: image.width * image.height))
            try ImageFile.write(mask, path: mo)
        }
        if let l = p.string("save-latents"), let lat = r.latents { try NPY.write(lat, path: l) }
        if !p.flag("quiet") { CommonOptions.stderrLine("wrote \(output) (\(r.image.width)x\(r.image.height))") }
        return 0
    }
}
