import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import DiffEdit

/// `diffedit video`: edit a clip (an .mp4 or any file ffmpeg reads, or a folder of PNG/JPEG frames) with a
/// prompt, temporally consistently (default) or frame by frame (--per-frame). Video files go through the
/// `ffmpeg` executable with rawvideo RGB24 pipes, frame by frame: memory is bounded by the keyframe window.
enum VideoCommand {
    static let parser = ArgParser(
        command: "video",
        usage: "--input IN.mp4|FRAMES_DIR --prompt TEXT --output OUT.mp4|DIR [options]",
        summary: """
            Edits a video. Consistent mode (default): shared noise, cross-frame self-attention to the anchor \
            frame, the window's keyframe and the previous frame, keyframe features propagated through the source \
            video's own correspondences, and source-static pixel fusion. --per-frame edits every frame on its own \
            with the same seed (the baseline). Frame folders: every .png/.jpg in name order (only frame* files when there are any); output folders get \
            frame_00000.png, ...
            """,
        options: [
            CommonOptions.model,
            .init(name: "input", value: "IN.mp4|DIR", help: "video file (read by ffmpeg) or folder of frames (required)"),
            .init(name: "output", value: "OUT.mp4|DIR", help: "video file (written by ffmpeg) or folder for PNG frames (required)"),
            .init(name: "method", value: "sdedit|ddim|p2p|instruct|inpaint|auto", help: "editing method (default auto)"),
            .init(name: "prompt", value: "TEXT", help: "target description, or the instruction for instruct (required)"),
            .init(name: "source-prompt", value: "TEXT", help: "description of the input video (ddim, p2p)"),
            .init(name: "negative-prompt", value: "TEXT", help: "unconditional prompt"),
            .init(name: "steps", value: "N", help: "denoising steps (default \(ResolvedEdit.defaultSteps), or the model's diffedit.json)"),
            .init(name: "guidance", value: "G", help: "text guidance scale (default \(ResolvedEdit.defaultGuidance), or the model's diffedit.json)"),
            .init(name: "image-guidance", value: "G", help: "image guidance scale, instruct (default \(ResolvedEdit.defaultImageGuidance), or the model's diffedit.json)"),
            .init(name: "strength", value: "S", help: "sdedit, inpaint: fraction of the schedule to run, in (0, 1]; below 1/steps no step runs (the VAE reconstruction) (default \(ResolvedEdit.defaultStrength), or the model's diffedit.json; inpaint: \(Int(ResolvedEdit.defaultInpaintStrength)))"),
            .init(name: "seed", value: "S", help: "noise seed, shared by all frames; only the low 32 bits matter, as torch.manual_seed (default 0)"),
            .init(name: "mask", value: "MASK.png", help: "grayscale mask, the frames' size, for every frame: white = edit, black = keep (inpaint: the region to repaint, required; other methods: --per-frame only)"),
            .init(name: "per-frame", value: nil, help: "edit each frame independently (baseline, no temporal consistency)"),
            .init(name: "keyframe-interval", value: "N", help: "frames per window / keyframe spacing, 1-\(VideoOptions.maxKeyframeInterval) (default 4)"),
            .init(name: "propagation", value: "F", help: "fraction of steps with keyframe propagation, [0, 1] (default 1)"),
            .init(name: "no-cross-frame", value: nil, help: "no cross-frame self-attention"),
            .init(name: "token-matching", value: nil, help: "also copy latent tokens along nearest-neighbour matches (off by default)"),
            .init(name: "no-pixel-fusion", value: nil, help: "no source-static pixel fusion"),
            .init(name: "max-frames", value: "N", help: "stop after N input frames"),
            .init(name: "fps", value: "F", help: "output frame rate for a video file (default: the input's, or 25)"),
            .init(name: "ffmpeg", value: "PATH", help: "ffmpeg executable (default: ffmpeg on PATH)"),
            CommonOptions.lora, CommonOptions.backend, CommonOptions.threads, CommonOptions.weightsDType, CommonOptions.compute, CommonOptions.vaeTiling, CommonOptions.vaeTileSize,
            CommonOptions.quiet,
        ] + ControlOptions.options(preprocessors: true, out: false) + ProvenanceOptions.all(watermarkDefault: false))

    static func run(arguments: [String]) throws -> Int32 {
        let p = try parser.parse(arguments)
        guard p.positionals.isEmpty else { throw CLIError.usage("video", "unexpected argument \(p.positionals[0])") }
        let input = try p.required("input")
        let output = try p.required("output")
        var o = VideoOptions()
        if let m = p.string("method") {
            guard let mm = EditMethod(rawValue: m) else {
                throw CLIError.usage("video", "--method: \"\(m)\" is not one of sdedit, ddim, p2p, instruct, inpaint, auto")
            }
            o.edit.method = mm
        }
        o.edit.prompt = try p.required("prompt")
        o.edit.sourcePrompt = p.string("source-prompt")
        o.edit.negativePrompt = p.string("negative-prompt")
        o.edit.steps = try p.int("steps")
        o.edit.guidance = try p.float("guidance")
        o.edit.imageGuidance = try p.float("image-guidance")
        o.edit.strength = try p.float("strength")
        o.edit.seed = try p.uint64("seed") ?? 0
        o.mode = p.flag("per-frame") ? .perFrame : .consistent
        if let m = p.string("mask") { o.edit.mask = try ImageFile.readGray(path: m) }
        if let k = try p.int("keyframe-interval") { o.keyframeInterval = k }
        if let f = try p.float("propagation") { o.propagation = f }
        o.crossFrameAttention = !p.flag("no-cross-frame")
        o.tokenMatching = p.flag("token-matching")
        o.pixelFusion = !p.flag("no-pixel-fusion")
        try o.validate()
        let maxFrames = try p.int("max-frames")
        if let m = maxFrames, m < 1 { throw CLIError.usage("video", "--max-frames: \(m) must be >= 1") }
        let ffmpeg = p.string("ffmpeg") ?? "ffmpeg"

        let source = try VideoFrameSource(path: input, ffmpeg: ffmpeg, maxFrames: maxFrames)
        let fps = try p.float("fps") ?? source.fps ?? 25
        guard fps.isFinite, fps > 0 else { throw CLIError.usage("video", "--fps: \(fps) must be > 0") }
        let watermark = try p.toggle("watermark") ?? false

        let backend = try CommonOptions.makeBackend(p)
        let textToImage = [EditMethod.sdedit, .ddim, .p2p].contains(o.edit.method)
        let defaultName = textToImage ? DefaultModel.textToImageName : DefaultModel.name
        let model: StableDiffusionModel
        do { model = try CommonOptions.loadModel(p, backend: backend, defaultName: defaultName) } catch { source.close(); throw error }
        o.edit.controls = try ControlOptions.specs(p, model: model, width: source.width, height: source.height)
        o.edit.controlGuessMode = p.flag("control-guess-mode")
        var record: ProvenanceRecord? = nil
        if !p.flag("no-metadata") {
            let id = ProvenanceOptions.modelIdentity(p, defaultName: defaultName)
            record = ProvenanceRecord.edit(model: model, modelName: id.name, modelSHA256: id.sha256, options: o.edit,
                                           width: source.width, height: source.height, video: true,
                                           watermark: watermark && InvisibleWatermark.canMark(width: source.width, height: source.height))
        }
        let sink: VideoFrameSink
        do {
            sink = try VideoFrameSink(path: output, ffmpeg: ffmpeg, width: source.width, height: source.height, fps: fps,
                                      record: record, watermark: watermark)
        } catch { source.close(); throw error }
        let editor = VideoEditor(model: model)
        let bar = ProgressBar(label: "video", quiet: p.flag("quiet"))
        do {
            try editor.edit(width: source.width, height: source.height, frameCount: source.frameCount, options: o,
                            progress: bar.reporter, next: { try source.next() }, emit: { try sink.write($0) })
        } catch {
            source.close()
            sink.abort()
            throw error
        }
        source.close()
        try sink.finish()
        if !p.flag("quiet") {
            CommonOptions.stderrLine("wrote \(output) (\(sink.written) frames, \(source.width)x\(source.height))")
        }
        return 0
    }
}
