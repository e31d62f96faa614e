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
enum BenchCommand {
    static let parser = ArgParser(
        command: "bench",
        usage: "[--sizes 32,64] [--repeat N] [--threads N] [--backend auto|cpu|cuda] [--results FILE]",
        summary: "Times the SD 1.5 UNet forward (random weights, batch 2) and prints seconds and peak RSS.",
        options: [
            .init(name: "sizes", value: "LIST", help: "latent sizes, comma separated (default 32,64)"),
            .init(name: "repeat", value: "N", help: "timed runs per size after one warm-up at the first size; the best is reported (default 1)"),
            .init(name: "no-warmup", value: nil, help: "skip the warm-up run"),
            .init(name: "results", value: "FILE", help: "also write the result lines to FILE (default $DIFFEDIT_BENCH_RESULTS, else \(defaultResultsPath)); scripts/bench_torch.py reads it for the ratio"),
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
        let sizes = try (p.string("sizes") ?? "32,64").split(separator: ",").map { s -> Int in
            guard let n = Int(TextUtil.trimmingWhitespace(s)), n > 0, n <= 256 else {
                throw CLIError.usage("bench", "--sizes: \"\(s)\" is not a latent size in 1...256")
            }
            return n
        }
        let repeats = try p.int("repeat") ?? 1
        guard repeats >= 1 else { throw CLIError.usage("bench", "--repeat must be >= 1") }
        let backend = try CommonOptions.makeBackend(p)
        let config = UNetConfig()   // diffusers' defaults are SD 1.5's UNet
        var t0 = Date()
        let weights = UNet2DConditionModel.randomWeights(config: config, seed: 0)
        let unet = try UNet2DConditionModel(config: config, weights: weights, backend: backend)
        let nParams = weights.names.reduce(0) { $0 + (weights.shape(of: $1)?.reduce(1, *) ?? 0) }
        let afterLoad = peakRSS() ?? 0
        print(TextUtil.format("bench: SD 1.5 UNet, %.1fM parameters (random), backend ", Double(nParams) / 1e6) + backend.name
              + TextUtil.format(", made in %.1f s, RSS after weights ", Date().timeIntervalSince(t0)) + gb(afterLoad))
        var rng = RNG(seed: 1)
        let ehs = rng.normal([2, 77, config.cross_attention_dim])
        var lines: [String] = []
        if !p.flag("no-warmup"), let s = sizes.first {
            _ = try unet.forward(rng.normal([2, 4, s, s]), timesteps: [500], encoderHiddenStates: ehs)
        }
        for s in sizes {
            let x = rng.normal([2, 4, s, s])
            var best = Double.infinity
            for _ in 0..<repeats {
                t0 = Date()
                let y = try unet.forward(x, timesteps: [500], encoderHiddenStates: ehs)
                best = min(best, Date().timeIntervalSince(t0))
                precondition(y.shape == [2, 4, s, s])
            }
            let line = TextUtil.format("bench unet latent=%d batch=2 seconds=%.3f", s, best)
            print(line + "   (peak RSS \(gb(peakRSS() ?? 0)))")
            lines.append(line)
        }
        let peak = peakRSS() ?? 0
        print("bench peak_rss_bytes=\(peak)   (\(gb(peak)); weights \(gb(nParams * 4)), above weights \(gb(max(0, peak - nParams * 4))))")
        lines.append("bench peak_rss_bytes=\(peak)")
        let env = ProcessInfo.processInfo.environment["DIFFEDIT_BENCH_RESULTS"].flatMap { $0.isEmpty ? nil : $0 }
        let resultsPath = p.string("results") ?? env ?? defaultResultsPath
        do {
            try (lines.joined(separator: "\n") + "\n").write(toFile: resultsPath, atomically: true, encoding: .utf8)
        } catch {
            throw DiffEditError.io("\(resultsPath): cannot write the bench results (\(error))")
        }
    }
}
