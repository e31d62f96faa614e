import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import DiffEdit

/// Options every model-using command shares, and how they turn into a backend and a model.
enum CommonOptions {
    static let model = ArgParser.Option(name: "model", value: "PATH",
        help: "diffusers folder or single-file .safetensors (default: the embedded toy model)")
    static let configFrom = ArgParser.Option(name: "config-from", value: "DIR",
        help: "single-file checkpoints: take the configs from this diffusers folder")
    static let backend = ArgParser.Option(name: "backend", value: "auto|cpu|cuda", help: "kernel backend (default auto)")
    static let threads = ArgParser.Option(name: "threads", value: "N", help: "CPU threads (default: all cores)")
    static let quiet = ArgParser.Option(name: "quiet", value: nil, help: "no progress bar")
    static let lora = ArgParser.Option(name: "lora", value: "PATH[:SCALE]",
        help: "LoRA .safetensors (diffusers/PEFT or kohya) fused into the weights at SCALE (default 1); repeatable")
    static let weightsDType = ArgParser.Option(name: "weights-dtype", value: "auto|f32|f16|bf16|q8_0",
        help: "how linear/conv weights stay in memory on the CPU (default auto: as the file stores them, fp16 read in place; q8_0: 8-bit blocks of 32)")
    static let vaeTiling = ArgParser.Option(name: "vae-tiling", value: "auto|on|off",
        help: "VAE decode/encode in overlapping tiles, blended as diffusers' enable_tiling() (default auto: images above 512x512 pixels, tiles of min(512, the VAE's sample_size) px; on: whenever the image is larger than one tile)")
    static let vaeTileSize = ArgParser.Option(name: "vae-tile-size", value: "PX",
        help: "VAE tile edge in pixels, a multiple of 4 x the VAE factor (default: auto 512, on the VAE's sample_size)")

    static let compute = ArgParser.Option(name: "compute", value: "f32|bf16|auto|i16",
        help: "CPU GEMM precision (default auto, or $DIFFEDIT_COMPUTE): auto = on AMX CPUs f16, bf16 and q8_0 weights in bf16 terms that keep f32-class parity (activations and f16 weights as bf16 hi + lo), f32 weights and other CPUs f32; f32 = f32 everywhere; bf16 = operands rounded to bf16, f32 accumulation, on AMX or AVX512_BF16 CPUs; i16 = on AVX512-VNNI CPUs (AMD Zen 4) reduced-weight linears, convolutions and attention with operands as 14 / 13-bit integers per 64-value block (twice the f32 rate, ~1e-4 relative per GEMM), the rest f32")

    static func makeBackend(_ p: ArgParser.Parsed) throws -> Backend {
        let threads = try p.int("threads") ?? 0
        guard threads >= 0 else { throw CLIError.usage(p.command, "--threads: \(threads) must be >= 0") }
        let requested = p.string("backend") ?? "auto"
        var o = BackendOptions.fromEnvironment()
        o.threads = threads
        if let c = p.string("compute") {
            do { o.compute = try BackendOptions.Compute.parse(c) } catch let e as DiffEditError { throw CLIError.usage(p.command, e.message) }
        }
        let be = try Backend(name: requested, options: o)
        if be.name == "cpu" && o.compute == .bf16 && be.bf16Kernel == "none" {
            stderrLine("diffedit: --compute bf16: this CPU has neither AMX-BF16 nor AVX512_BF16 (or it was turned off): GEMMs stay f32")
        }
        if be.name == "cpu" && o.compute == .i16 && !be.computesInI16 {
            stderrLine("diffedit: --compute i16: this CPU has no AVX512-VNNI: GEMMs stay f32")
        }
        // "auto" falling back to the CPU is the normal case without a GPU provider: say so when a provider
        // was found but could not be used (no device, wrong version), stay quiet when none is installed.
        if requested != "cpu" && !be.fallbackReason.isEmpty && !be.fallbackReason.contains("not found") {
            stderrLine("diffedit: backend: \(be.fallbackReason)")
        }
        return be
    }

    /// `defaultName`: which embedded model stands in for a missing --model (DefaultModel.name for edits).
    static func loadModel(_ p: ArgParser.Parsed, backend: Backend,
                          defaultName: String = DefaultModel.name) throws -> StableDiffusionModel {
        let dtype = try WeightsDType.parse(p.string("weights-dtype") ?? "")
        let model = try StableDiffusionModel.load(path: p.string("model"), backend: backend,
                                                  configFrom: p.string("config-from"), defaultName: defaultName,
                                                  weightsDType: dtype)
        let loras = try p.all(["lora"]).map { o -> LoRASpec in
            do { return try LoRASpec(parsing: o.value) } catch let e as DiffEditError { throw CLIError.usage(p.command, e.message) }
        }
        if !loras.isEmpty { try model.setLoRAs(loras) }
        model.vae.tiling = try vaeTiling(p, factor: model.vaeFactor)
        return model
    }

    /// --vae-tiling / --vae-tile-size; a bad value is a usage error naming the flag.
    static func vaeTiling(_ p: ArgParser.Parsed, factor: Int) throws -> VAETiling {
        do {
            let mode = try VAETiling.parseMode(p.string("vae-tiling") ?? "")
            let size = try p.int("vae-tile-size")
            if let size { try VAETiling.checkTileSize(size, factor: factor) }
            return VAETiling(mode: mode, tileSize: size)
        } catch let e as DiffEditError {
            throw CLIError.usage(p.command, e.message)
        }
    }

    static func stderrLine(_ s: String) { StdIO.err(s + "\n") }
}
