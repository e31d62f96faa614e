import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import DiffEdit
import DiffEditBench

/// `diffedit bench`: UNet forward of the full SD 1.5 architecture (860M parameters, random weights
/// made in memory) at 32x32 and 64x64 latents, batch 2 as classifier-free guidance runs it. Prints
/// seconds per forward and the peak resident memory (VmHWM). Lines "bench unet latent=N batch=2
/// seconds=S" are what scripts/bench_torch.py reads (--swift-results) to print the ratio.
/// With --model (a checkpoint on disk, e.g. the random fp16 SD 1.5 folder of tools/make_bench_model.py)
/// the model is loaded as `diffedit generate` loads it (--weights-dtype), its UNet timed the same way,
/// and --generate times whole text-to-image runs (load excluded; DDIM, CFG 7.5). Every line then carries
/// dtype=D, and --append adds to the results file so that one file holds a run per weights dtype.
enum BenchCommand {
    static let parser = ArgParser(
        command: "bench",
        usage: "[--sizes 32,64] [--repeat N] [--threads N] [--backend auto|cpu|cuda] [--results FILE] [--model PATH --weights-dtype D --compute C --generate 256,512 --steps N --append]",
        summary: "Times the SD 1.5 UNet forward (random weights, batch 2) and prints seconds and peak RSS.",
        options: [
            .init(name: "sizes", value: "LIST", help: "latent sizes, comma separated (default 32,64); none: no UNet timing (with --generate: the peak RSS of whole generates alone)"),
            .init(name: "repeat", value: "N", help: "timed runs per size after one warm-up at the first size; the best is reported (default 1)"),
            .init(name: "no-warmup", value: nil, help: "skip the warm-up run"),
            .init(name: "results", value: "FILE", help: "also write the result lines to FILE (default $DIFFEDIT_BENCH_RESULTS, else \(defaultResultsPath)); scripts/bench_torch.py reads it for the ratio"),
            .init(name: "generate", value: "LIST", help: "with --model: also time whole generates at these image sizes (e.g. 256,512)"),
            .init(name: "steps", value: "N", help: "DDIM steps of each --generate run (default 10)"),
            .init(name: "append", value: nil, help: "append to the results file instead of replacing it"),
            CommonOptions.model, CommonOptions.weightsDType, CommonOptions.compute,
            CommonOptions.backend, CommonOptions.threads,
        ])

    /// Where results go when neither --results nor $DIFFEDIT_BENCH_RESULTS says (scripts/bench_torch.py
    /// looks there too, so `make bench` prints the ratio).
    static var defaultResultsPath: String {
        let tmp = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        return PathName.join(tmp, "diffedit-bench-\(getuid()).txt")
    }

    /// Peak resident set size in bytes (VmHWM of /proc/self/status), nil when unavailable.
    static func peakRSS() -> Int? {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in s.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            if f.count >= 2, let kb = Int(f[1]) { return kb * 1024 }
        }
        return nil
    }

    static func gb(_ b: Int) -> String { TextUtil.format("%.2f GB", Double(b) / 1_073_741_824) }

    static func run(arguments: [String]) throws {
        let p = try parser.parse(arguments)
        let sizesArg = p.string("sizes") ?? "32,64"
        let sizes = try (sizesArg == "none" ? "" : sizesArg).split(separator: ",").map { s -> Int in
            guard let n = Int(TextUtil.trimmingWhitespace(s)), n > 0, n <= 256 else {
                throw CLIError.usage("bench", "--sizes: \"\(s)\" is not a latent size in 1...256")
            }
            return n
        }
        let repeats = try p.int("repeat") ?? 1
        guard repeats >= 1 else { throw CLIError.usage("bench", "--repeat must be >= 1") }
        let backend = try CommonOptions.makeBackend(p)
        let dtype = try WeightsDType.parse(p.string("weights-dtype") ?? "")
        // bf16 compute shows in the column name (scripts/bench_torch.py --table): dtype=auto+bf16 (--compute bf16),
        // dtype=auto+auto-bf16 (--compute auto where it computes in bf16 terms)
        let reduced: ElementType = dtype == .f32 ? .f32 : dtype == .q8_0 ? .q8_0 : dtype == .bf16 ? .bf16 : .f16
        let bf16 = backend.computesInBF16(weights: p.string("model") != nil || dtype != .auto ? reduced : .f32)
        let i16 = backend.computesInI16
        let tag = p.string("model") != nil || p.string("weights-dtype") != nil || bf16 || i16
            ? " dtype=\(dtype.rawValue)\(bf16 ? (backend.options.compute == .auto ? "+auto-bf16" : "+bf16") : i16 ? "+i16" : "")" : ""
        let genSizes = try (p.string("generate") ?? "").split(separator: ",").map { s -> Int in
            guard let n = Int(TextUtil.trimmingWhitespace(s)), n >= 64, n % 8 == 0 else {
                throw CLIError.usage("bench", "--generate: \"\(s)\" is not an image size (a multiple of 8, >= 64)")
            }
            return n
        }
        let steps = try p.int("steps") ?? 10
        guard steps >= 1 else { throw CLIError.usage("bench", "--steps must be >= 1") }
        guard genSizes.isEmpty || p.string("model") != nil else { throw CLIError.usage("bench", "--generate needs --model") }
        var t0 = Date()
        let unet: UNet2DConditionModel
        var model: StableDiffusionModel? = nil
        var memory: WeightTally.Summary
        if p.string("model") != nil {
            let m = try CommonOptions.loadModel(p, backend: backend, defaultName: DefaultModel.textToImageName)
            model = m
            unet = m.unet
            memory = m.weightMemory
        } else {
            let config = UNetConfig()   // diffusers' defaults are SD 1.5's UNet
            let weights = UNet2DConditionModel.randomWeights(config: config, seed: 0)
            unet = try UNet2DConditionModel(config: config, weights: weights, backend: backend, weightsDType: dtype)
            memory = unet.weightTally.summary
        }
        let config = unet.config
        let afterLoad = peakRSS() ?? 0
        let mem = memory.bytes.keys.sorted().map { "\($0) \(gb(memory.bytes[$0]!))" }.joined(separator: ", ")
        print("bench: \(model.map { "model \($0.origin) (\($0.dtype))" } ?? "SD 1.5 UNet (random)"), weights-dtype \(dtype.rawValue), compute \(backend.options.compute.name)"
              + (bf16 ? " (bf16 on \(backend.bf16Kernel))" : i16 ? " (i16 on avx512vnni)" : " (f32)") + ", backend "
              + backend.name + TextUtil.format(", loaded in %.1f s, RSS after weights ", Date().timeIntervalSince(t0)) + gb(afterLoad)
              + "; weights in memory: \(mem) (\(gb(memory.mappedBytes)) read in place from the file)")
        var rng = RNG(seed: 1)
        let ehs = rng.normal([2, 77, config.cross_attention_dim])
        var lines: [String] = []
        if !p.flag("no-warmup"), let s = sizes.first {
            _ = try unet.forward(rng.normal([2, config.in_channels, s, s]), timesteps: [500], encoderHiddenStates: ehs)
        }
        for s in sizes {
            let x = rng.normal([2, config.in_channels, s, s])
            var best = Double.infinity
            for _ in 0..<repeats {
                t0 = Date()
                let y = try unet.forward(x, timesteps: [500], encoderHiddenStates: ehs)
                best = min(best, Date().timeIntervalSince(t0))
                precondition(y.shape == [2, config.out_channels, s, s])
            }
            let line = TextUtil.format("bench unet latent=%d batch=2", s) + tag + TextUtil.format(" seconds=%.3f", best)
            print(line + "   (peak RSS \(gb(peakRSS() ?? 0)))")
            lines.append(line)
        }
        if let m = model {
            for size in genSizes {
                var o = GenerateOptions(prompt: "a photograph of a red mug on a wooden table")
                o.width = size; o.height = size; o.steps = steps; o.guidance = 7.5; o.scheduler = "ddim"; o.seed = 0
                var best = Double.infinity
                for _ in 0..<repeats {
                    t0 = Date()
                    let r = try m.generate(o)
                    best = min(best, Date().timeIntervalSince(t0))
                    precondition(r.image.width == size)
                }
                let line = "bench generate size=\(size) steps=\(steps)" + tag + TextUtil.format(" seconds=%.3f", best)
                print(line + "   (peak RSS \(gb(peakRSS() ?? 0)))")
                lines.append(line)
            }
        }
        let peak = peakRSS() ?? 0
        let wb = memory.totalBytes
        if sizes.isEmpty && !genSizes.isEmpty {
            // --sizes none: this process only loaded the model and generated, so its peak is that of whole
            // generates (the issue's measure), not of the UNet timing beside them; its own line in the table
            let what = genSizes.map(String.init).joined(separator: ",")
            print("bench generate_peak_rss_bytes=\(peak) size=\(what)\(tag)   (\(gb(peak)); weights \(gb(wb)))")
            lines = ["bench generate_peak_rss_bytes=\(peak) size=\(what)" + tag]
        } else {
            print("bench peak_rss_bytes=\(peak)\(tag)   (\(gb(peak)); weights \(gb(wb)), above weights \(gb(max(0, peak - wb))))")
            lines.append("bench peak_rss_bytes=\(peak)" + tag)
        }
        let env = ProcessInfo.processInfo.environment["DIFFEDIT_BENCH_RESULTS"].flatMap { $0.isEmpty ? nil : $0 }
        let resultsPath = p.string("results") ?? env ?? defaultResultsPath
        do {
            var text = lines.joined(separator: "\n") + "\n"
            if p.flag("append"), let old = try? String(contentsOfFile: resultsPath, encoding: .utf8) { text = old + text }
            try text.write(toFile: resultsPath, atomically: true, encoding: .utf8)
        } catch {
            throw DiffEditError.io("\(resultsPath): cannot write the bench results (\(error))")
        }
    }
}
