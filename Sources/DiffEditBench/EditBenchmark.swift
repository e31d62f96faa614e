import FoundationEssentials
import DiffEdit

/// Seconds per edit for each method on the full SD 1.5 architecture with random weights made in memory
/// (issue 4's edit benchmark; tools/p2p_reference.py --bench times the same algorithms in PyTorch).
/// Result lines: "bench edit method=M size=S steps=N seconds=T"; M = sdedit_cn is sdedit with one SD 1.5-sized
/// ControlNet (random weights, control map tile) beside the UNet.
public enum EditBenchmark {
    /// SD 1.5 (diffusers' default configs: UNet 860M, VAE, CLIP ViT-L text) with random weights; an
    /// InstructPix2Pix-shaped model (8 UNet input channels) when `instruct`.
    public static func randomSD15(instruct: Bool, backend: Backend, seed: UInt64 = 0) throws -> StableDiffusionModel {
        var u = UNetConfig()
        if instruct { u.in_channels = 8 }
        let v = VAEConfig(), t = CLIPTextConfig()
        let ck = LoadedCheckpoint(origin: "random SD 1.5\(instruct ? " (instruct)" : "")", unetConfig: u, vaeConfig: v,
                                  textConfig: t, schedulerConfig: SchedulerConfig(),
                                  unet: UNet2DConditionModel.randomWeights(config: u, seed: seed),
                                  vae: AutoencoderKL.randomWeights(config: v, seed: seed + 1),
                                  textEncoder: CLIPTextModel.randomWeights(config: t, seed: seed + 2),
                                  padToken: "<|endoftext|>", kind: instruct ? "instruct" : "sd1")
        return try StableDiffusionModel(checkpoint: ck, backend: backend)
    }

    /// A ControlNet of diffusers' default (SD 1.5) config with random weights, for `model`'s backend.
    public static func randomControlNet(backend: Backend, seed: UInt64 = 3) throws -> ControlNetModel {
        try ControlNetModel(config: ControlNetConfig(), weights: RandomWeightSource(seed: seed), backend: backend)
    }

    /// The options each method is timed with (the papers' settings; full-resolution processing).
    public static func options(_ m: EditMethod, steps: Int) -> EditOptions {
        var o = EditOptions()
        o.method = m
        o.steps = steps
        o.seed = 0
        o.fullResolution = true
        switch m {
        case .instruct: o.prompt = "make the mug blue"
        default:
            o.prompt = "a blue mug on a wooden table"
            o.sourcePrompt = "a red mug on a wooden table"
        }
        if m == .sdedit { o.strength = 0.8 }
        return o
    }

    /// A deterministic test picture.
    public static func picture(_ size: Int) -> RGBImage {
        var px = [UInt8](repeating: 0, count: size * size * 3)
        for y in 0..<size { for x in 0..<size {
            px[(y * size + x) * 3] = UInt8((x * 255) / max(size - 1, 1))
            px[(y * size + x) * 3 + 1] = UInt8((y * 255) / max(size - 1, 1))
            px[(y * size + x) * 3 + 2] = UInt8(((x + y) * 127) / max(size - 1, 1))
        } }
        return RGBImage(width: size, height: size, pixels: px)
    }

    /// Times one edit (a fresh editor: no inversion cache). Returns seconds.
    public static func time(_ m: EditMethod, model: StableDiffusionModel, size: Int, steps: Int,
                            controlNet: ControlNetModel? = nil) throws -> Double {
        let editor = ImageEditor(model: model)
        let img = picture(size)
        var o = options(m, steps: steps)
        if let net = controlNet { o.controls = [ControlSpec(net: net, source: .tile)] }
        let t0 = Date()
        _ = try editor.edit(img, options: o, progress: ProgressReporter())
        return Date().timeIntervalSince(t0)
    }

    public static func line(_ m: EditMethod, size: Int, steps: Int, seconds: Double, controlNet: Bool = false) -> String {
        "bench edit method=\(m.rawValue)\(controlNet ? "_cn" : "") " + TextUtil.format("size=%d steps=%d seconds=%.3f", size, steps, seconds)
    }
}
