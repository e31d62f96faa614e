import CDiffKernels

/// Prompt-to-Prompt's LocalBlend (Hertz et al. 2023, Sec. 3.3 "local editing"): a mask from the
/// cross-attention maps of the edited words, so that latents outside it come from the source branch.
///
/// Maps of the conditional source/target items are summed over steps (after the controller's edits, as in
/// the paper's code), for the cross-attention layers at `height` (the resolution closest to latent / 4, i.e.
/// 16x16 for 64x64 latents). The mask: maps summed over the blend words' tokens, averaged over layers and
/// heads, max-pooled over a (2 dilation + 1)^2 window (the paper's 3x3: dilation 1), nearest-resized to the
/// latent size, scaled to [0, 1] by its min and max, > threshold; the union of the source and target masks.
/// Applied after each denoising step once more than int(startFraction * steps) steps have run.
public final class LocalBlend {
    public let height: Int
    public let threshold: Float
    /// Max-pool radius in map pixels (1: the paper's 3x3; 0: no dilation).
    public let dilation: Int
    public let startAfter: Int
    let alpha: [[Float]]                       // [2][77]: source, target
    private var store: [String: Tensor] = [:]  // site -> [2, heads, Lq, Lk] summed over steps
    private var calls = 0
    /// The last mask applied, [1, 1, h, w] with 0/1 values (nil before the first blend).
    public private(set) var lastMask: Tensor?

    public init(alphaSource: [Float], alphaTarget: [Float], height: Int, steps: Int,
                threshold: Float = 0.3, dilation: Int = 1, startFraction: Float = 0.2) {
        precondition(dilation >= 0, "LocalBlend: dilation \(dilation) < 0")
        self.dilation = dilation
        self.alpha = [alphaSource, alphaTarget]
        self.height = height
        self.threshold = threshold
        self.startAfter = Int(Double(startFraction) * Double(steps))
    }

    /// Adds the maps of items `first` and `first + 1` of probs [B, heads, Lq, Lk] (backend ops: the sums
    /// stay in backend memory).
    func accumulate(site: AttentionSite, probs: Tensor, first: Int, backend be: Backend) throws {
        let per = probs.count / probs.shape[0]
        let maps = Tensor(shape: [2] + Array(probs.shape.dropFirst()), storage: probs.storage, offset: probs.offset + first * per)
        if let s = store[site.name] {
            _ = try be.binary(DE_BINARY_ADD, s, maps, inPlace: true)
        } else {
            store[site.name] = try be.copy(maps)
        }
    }

    /// Sites are stored only at the blend height.
    func wants(_ site: AttentionSite) -> Bool { site.isCross && site.place != "mid" && site.height == height }

    /// The current mask [1, 1, lh, lw] (0/1), or nil when nothing was stored.
    /// On a resident backend the stored maps are read through a copy (one download per stored site), so the
    /// sums themselves stay in backend memory for the next steps.
    public func mask(latentHeight lh: Int, latentWidth lw: Int, backend be: Backend = .cpu) throws -> Tensor? {
        guard !store.isEmpty else { return nil }
        var hh = 0, ww = 0
        var acc = [[Float]](repeating: [], count: 2)
        var layersTimesHeads = 0
        for name in store.keys.sorted() {
            let m = be.resident ? try be.copy(store[name]!) : store[name]!   // [2, heads, Lq, Lk]
            let heads = m.shape[1], lq = m.shape[2], lk = m.shape[3]
            if hh == 0 {
                hh = height; ww = lq / height
                acc = [[Float]](repeating: [Float](repeating: 0, count: lq), count: 2)
            }
            guard lq == hh * ww else { continue }
            layersTimesHeads += heads
            for b in 0..<2 {
                let a = alpha[b]
                for h in 0..<heads {
                    let base = m.data + ((b * heads + h) * lq) * lk
                    for p in 0..<lq {
                        let row = base + p * lk
                        var s: Float = 0
                        for n in 0..<min(lk, a.count) where a[n] != 0 { s += row[n] * a[n] }
                        acc[b][p] += s
                    }
                }
            }
        }
        guard layersTimesHeads > 0 else { return nil }
        let out = Tensor(shape: [1, 1, lh, lw])
        var union = [Bool](repeating: false, count: lh * lw)
        for b in 0..<2 {
            let mean = acc[b].map { $0 / Float(layersTimesHeads) }    // [hh, ww]
            // (2d+1)x(2d+1) max pool, stride 1, padding d
            var pooled = [Float](repeating: 0, count: hh * ww)
            for y in 0..<hh {
                for x in 0..<ww {
                    var v = -Float.infinity
                    for dy in -dilation...dilation { for dx in -dilation...dilation {
                        let yy = y + dy, xx = x + dx
                        if yy >= 0 && yy < hh && xx >= 0 && xx < ww { v = max(v, mean[yy * ww + xx]) }
                    } }
                    pooled[y * ww + x] = v
                }
            }
            // nearest resize to the latent size (torch: src = floor(dst * in / out))
            var up = [Float](repeating: 0, count: lh * lw)
            let sy = Float(hh) / Float(lh), sx = Float(ww) / Float(lw)
            for y in 0..<lh {
                let yy = min(Int((Float(y) * sy).rounded(.down)), hh - 1)
                for x in 0..<lw {
                    let xx = min(Int((Float(x) * sx).rounded(.down)), ww - 1)
                    up[y * lw + x] = pooled[yy * ww + xx]
                }
            }
            // relative to the map's range: (m - min) / (max - min) > threshold. The paper divides by the max
            // only, which is the same when the map's floor is ~0 (SD's maps); a model whose maps have a high
            // floor (the toy model's sit at 50-60% of their peak everywhere) would otherwise get an
            // all-ones mask, i.e. no local blend at all. A flat map (no range) selects everything.
            let mx = up.max() ?? 0, mn = up.min() ?? 0
            guard mx > 0 else { continue }
            let range = mx - mn
            for i in 0..<(lh * lw) where range <= 1e-6 * mx || (up[i] - mn) / range > threshold { union[i] = true }
        }
        for i in 0..<(lh * lw) { out.data[i] = union[i] ? 1 : 0 }
        return out
    }

    /// latents [2, C, h, w] = [source, target]: target <- source + mask * (target - source), in place
    /// (backend ops; the mask is computed on the host and uploaded).
    public func apply(_ latents: Tensor, backend be: Backend = .cpu) throws {
        calls += 1
        guard calls > startAfter else { return }
        let (lh, lw) = (latents.shape[2], latents.shape[3])
        guard let m = try mask(latentHeight: lh, latentWidth: lw, backend: be) else { return }
        lastMask = m
        try LatentOps.blend(be, latents.slice0(1, 1), source: latents.slice0(0, 1), mask: try be.onDevice(m))
    }
}
