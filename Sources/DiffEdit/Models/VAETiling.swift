/// When and how the VAE decodes and encodes in tiles (diffusers AutoencoderKL `enable_tiling()` semantics).
///
/// A tiled decode cuts the latents into overlapping tiles of `latent` x `latent` (the last ones in a row or
/// column smaller), decodes each alone, blends every tile into the one above and the one to its left over
/// `sample / 4` pixels with linear ramps (the tiles mutated in place, in row-major order, exactly as
/// diffusers' `blend_v` / `blend_h`), and keeps the top-left `sample - sample / 4` pixels of each. Tiles start
/// every `3/4 latent`. Encoding is the same with the roles of pixels and latents swapped. The decoder's
/// activations then scale with the tile, not with the image (the VAE's last level alone holds 128 channels
/// per pixel: 128 MB per tensor at 512x512, 512 MB at 1024x1024).
///
/// - `off`: never tiled.
/// - `on`: tiles of `tileSize` pixels (default: the VAE config's `sample_size`, as diffusers), whenever the
///   image (decode: the latents) is larger than one tile in either dimension: `vae.enable_tiling()`.
/// - `auto` (the default): as `on` with tiles of `tileSize` (default `autoTileSize`, capped by the config's
///   `sample_size`), but only when the image has more than `autoThresholdPixels` pixels (width x height),
///   so images up to 512x512 decode whole (no tile seams) and larger ones in bounded memory.
public struct VAETiling: Equatable, Sendable, CustomStringConvertible {
    public enum Mode: String, Sendable, CaseIterable { case auto, on, off }

    public var mode: Mode
    /// Tile edge in pixels (a multiple of 4 x the VAE factor); nil: see `Mode`.
    public var tileSize: Int?

    /// auto: images with more pixels than this are tiled (512 x 512: SD 1.x at its native size decodes whole).
    public static let autoThresholdPixels = 512 * 512
    /// auto: the tile edge in pixels when `tileSize` is nil (capped by the VAE config's sample_size).
    public static let autoTileSize = 512
    /// diffusers' tile_overlap_factor (0.25), as a fraction num/den.
    static let overlapNum = 1, overlapDen = 4

    public init(mode: Mode = .auto, tileSize: Int? = nil) {
        self.mode = mode
        self.tileSize = tileSize
    }

    /// "auto" | "on" | "off"; an unknown name is an error naming `flag` and the accepted values.
    public static func parseMode(_ s: String, flag: String = "--vae-tiling") throws -> Mode {
        if s.isEmpty { return .auto }
        guard let m = Mode(rawValue: s) else {
            throw DiffEditError.invalidArgument("\(flag): unknown value \"\(s)\" (accepted: auto, on, off)")
        }
        return m
    }

    /// Checks `tileSize` against a VAE of downsampling factor `factor`: positive, a multiple of 4 x factor
    /// (so that the tiles' overlap and blend are whole latents and pixels and the tiles cover the image exactly).
    public static func checkTileSize(_ px: Int, factor: Int, name: String = "--vae-tile-size") throws {
        let unit = 4 * factor
        guard px > 0, px % unit == 0 else {
            throw DiffEditError.invalidArgument("\(name): \(px) is not a positive multiple of \(unit) pixels (4 latents x the VAE factor \(factor))")
        }
    }

    /// The tile edge in pixels for a VAE config, or nil when this setting never tiles.
    func tilePixels(_ c: VAEConfig) -> Int? {
        let unit = 4 * c.downsampleFactor
        func fit(_ px: Int) -> Int { max(unit, px / unit * unit) }
        switch mode {
        case .off: return nil
        case .on: return fit(tileSize ?? c.sample_size)
        case .auto: return fit(tileSize ?? min(VAETiling.autoTileSize, c.sample_size))
        }
    }

    /// The tile plan for an image of `width` x `height` pixels (decode: the output; encode: the input), or
    /// nil when it is not tiled.
    func plan(width: Int, height: Int, config c: VAEConfig) -> VAETilePlan? {
        guard let ts = tilePixels(c) else { return nil }
        if mode == .auto && width * height <= VAETiling.autoThresholdPixels { return nil }
        guard width > ts || height > ts else { return nil }
        return VAETilePlan(samplePixels: ts, factor: c.downsampleFactor)
    }

    public var description: String { mode.rawValue + (tileSize.map { " (tiles of \($0) px)" } ?? "") }
}

/// One tiling, in diffusers' terms (AutoencoderKL.tiled_decode / _tiled_encode, tile_overlap_factor 0.25).
struct VAETilePlan: Equatable {
    /// tile_sample_min_size (pixels) and tile_latent_min_size (latents).
    let sample: Int, latent: Int
    init(samplePixels: Int, factor: Int) {
        sample = samplePixels
        latent = samplePixels / factor
    }

    /// Decode: tile starts step (latents), blend extent and kept edge (pixels).
    var decodeStep: Int { latent * (VAETiling.overlapDen - VAETiling.overlapNum) / VAETiling.overlapDen }
    var decodeBlend: Int { sample * VAETiling.overlapNum / VAETiling.overlapDen }
    var decodeKeep: Int { sample - decodeBlend }
    /// Encode: tile starts step (pixels), blend extent and kept edge (latents).
    var encodeStep: Int { sample * (VAETiling.overlapDen - VAETiling.overlapNum) / VAETiling.overlapDen }
    var encodeBlend: Int { latent * VAETiling.overlapNum / VAETiling.overlapDen }
    var encodeKeep: Int { latent - encodeBlend }
}

/// Tiles of one tiled VAE pass on the host, blended and joined as diffusers does.
struct VAETileGrid {
    /// A tile's values [B, C, h, w] (host memory).
    struct Tile { var data: [Float]; let h: Int, w: Int }
    let batch: Int, channels: Int
    var rows: [[Tile]] = []

    init(batch: Int, channels: Int) {
        self.batch = batch
        self.channels = channels
    }

    /// diffusers blend_v(a = rows[i-1][j], b = rows[i][j]) then blend_h(a = rows[i][j-1], b), in place, in
    /// row-major order (later tiles see their neighbours already blended), then the top-left `keep` x `keep`
    /// of each tile joined into [B, C, H, W]; nil when the kept parts do not make a rectangle of height x width.
    mutating func blendAndJoin(blend: Int, keep: Int, height: Int, width: Int) throws -> Tensor? {
        let bc = batch * channels
        for i in rows.indices {
            for j in rows[i].indices {
                var b = rows[i][j]
                if i > 0 {
                    let a = rows[i - 1][j]
                    let e = min(a.h, b.h, blend)
                    if a.w == b.w && e > 0 {
                        for y in 0..<e {
                            let tb = Float(Double(y) / Double(e)), ta = Float(1 - Double(y) / Double(e))
                            for p in 0..<bc {
                                let ra = (p * a.h + a.h - e + y) * a.w, rb = (p * b.h + y) * b.w
                                for x in 0..<b.w { b.data[rb + x] = a.data[ra + x] * ta + b.data[rb + x] * tb }
                            }
                        }
                    }
                }
                if j > 0 {
                    let a = rows[i][j - 1]
                    let e = min(a.w, b.w, blend)
                    if a.h == b.h && e > 0 {
                        for x in 0..<e {
                            let tb = Float(Double(x) / Double(e)), ta = Float(1 - Double(x) / Double(e))
                            for p in 0..<bc {
                                for y in 0..<b.h {
                                    let ia = (p * a.h + y) * a.w + a.w - e + x, ib = (p * b.h + y) * b.w + x
                                    b.data[ib] = a.data[ia] * ta + b.data[ib] * tb
                                }
                            }
                        }
                    }
                }
                rows[i][j] = b
            }
        }
        // join: row i contributes min(keep, tile h) rows, column j min(keep, tile w) columns
        guard let first = rows.first else { return nil }
        let heights = rows.map { min(keep, $0[0].h) }, widths = first.map { min(keep, $0.w) }
        guard heights.reduce(0, +) == height, widths.reduce(0, +) == width,
              rows.allSatisfy({ $0.count == first.count }) else { return nil }
        let out = try Tensor.allocate([batch, channels, height, width], what: "the tiled VAE's joined output")
        let o = out.data
        var y0 = 0
        for (i, row) in rows.enumerated() {
            var x0 = 0
            for (j, t) in row.enumerated() {
                let kh = heights[i], kw = widths[j]
                t.data.withUnsafeBufferPointer { src in
                    for p in 0..<bc {
                        for y in 0..<kh {
                            (o + (p * height + y0 + y) * width + x0).update(from: src.baseAddress! + (p * t.h + y) * t.w, count: kw)
                        }
                    }
                }
                x0 += kw
            }
            y0 += heights[i]
        }
        return out
    }
}
