import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import DiffEdit

/// `diffedit generate`: text to image.
enum GenerateCommand {
    static let parser = ArgParser(
        command: "generate",
        usage: "--prompt TEXT --output OUT.png [options]",
        summary: "Text-to-image with classifier-free guidance, step for step as diffusers' StableDiffusionPipeline.",
        options: [
            CommonOptions.model, CommonOptions.configFrom,
            .init(name: "prompt", value: "TEXT", help: "what to draw (required)"),
            .init(name: "negative-prompt", value: "TEXT", help: "what to avoid (default empty)"),
            .init(name: "width", value: "W", help: "image width, a multiple of the VAE factor (default: native size)"),
            .init(name: "height", value: "H", help: "image height, a multiple of the VAE factor (default: native size)"),
            .init(name: "steps", value: "N", help: "denoising steps (default 30)"),
            .init(name: "guidance", value: "G", help: "classifier-free guidance scale; <= 1 disables it (default 7.5)"),
            .init(name: "scheduler", value: "ddim|euler|euler-a|dpmpp-2m|dpmpp-2m-karras", help: "sampler (default: the checkpoint's scheduler config; euler-a draws its step noise from --seed, as diffusers)"),
            .init(name: "seed", value: "S", help: "noise seed; same noise as torch.manual_seed(S) on the CPU, so only the low 32 bits matter (default 0)"),
            .init(name: "init-noise", value: "NOISE.npy", help: "x_T as float32 NPY [1, 4, H/f, W/f] (overrides --seed)"),
            .init(name: "save-latents", value: "OUT.npy", help: "write the final latents (before VAE decoding)"),
            .init(name: "output", value: "OUT.png", help: "output image, .png or .jpg (required)"),
            CommonOptions.lora, CommonOptions.backend, CommonOptions.threads, CommonOptions.weightsDType, CommonOptions.compute, CommonOptions.vaeTiling, CommonOptions.vaeTileSize,
            CommonOptions.quiet,
        ] + ControlOptions.options(preprocessors: false) + ProvenanceOptions.all(watermarkDefault: true))

    static func run(arguments: [String]) throws {
        let p = try parser.parse(arguments)
        guard p.positionals.isEmpty else { throw CLIError.usage("generate", "unexpected argument \(p.positionals[0])") }
        var o = GenerateOptions(prompt: try p.required("prompt"))
        let output = try p.required("output")
        let ext = PathName.pathExtension(output).lowercased()
        guard ["png", "jpg", "jpeg"].contains(ext) else {
            throw CLIError.usage("generate", "--output: \(output) must end in .png, .jpg or .jpeg")
        }
        o.negativePrompt = p.string("negative-prompt")
        o.width = try p.int("width")
        o.height = try p.int("height")
        o.steps = try p.int("steps") ?? o.steps
        o.guidance = try p.float("guidance") ?? o.guidance
        o.scheduler = p.string("scheduler")
        if let s = o.scheduler { _ = try SchedulerFactory.canonicalName(s) }
        o.seed = try p.uint64("seed") ?? 0
        if let n = p.string("init-noise") { o.initNoise = try NPY.readTensor(path: n) }

        let backend = try CommonOptions.makeBackend(p)
        let model = try CommonOptions.loadModel(p, backend: backend, defaultName: DefaultModel.textToImageName)
        o.controls = try ControlOptions.specs(p, model: model, width: o.width ?? model.nativeSize, height: o.height ?? model.nativeSize)
        o.controlGuessMode = p.flag("control-guess-mode")
        let bar = ProgressBar(label: "generate", quiet: p.flag("quiet"))
        let r = try model.generate(o, progress: bar.reporter)
        let watermark = try p.toggle("watermark") ?? true
        let image = watermark ? InvisibleWatermark.embed(r.image) : r.image
        var record: ProvenanceRecord? = nil
        if !p.flag("no-metadata") {
            let id = ProvenanceOptions.modelIdentity(p, defaultName: DefaultModel.textToImageName)
            record = ProvenanceRecord(
                command: "generate", model: id.name, modelSHA256: id.sha256, method: "text-to-image",
                prompt: o.prompt, negativePrompt: o.negativePrompt, seed: o.seed, steps: o.steps, guidance: Double(o.guidance),
                watermark: watermark && InvisibleWatermark.canMark(width: image.width, height: image.height))
            record?.loras = ProvenanceRecord.adapters(model.loras)
            record?.controlNets = ProvenanceRecord.adapters(o.controls)
        }
        try ProvenanceOptions.write(image, path: output, record: record)
        try ControlOptions.writeMaps(p, r.controlMaps)
        if let l = p.string("save-latents") { try NPY.write(r.latents, path: l) }
        if !p.flag("quiet") { CommonOptions.stderrLine("wrote \(output) (\(r.image.width)x\(r.image.height))") }
    }
}
