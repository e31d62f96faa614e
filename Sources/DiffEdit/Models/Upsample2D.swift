import FoundationEssentials

/// diffusers Upsample2D with a conv: nearest upsample (x2, or to an exact size) then 3x3 conv.
///
/// The conv runs on the upsampled image with the checkpoint's own 3x3 kernel (read in place like every other
/// weight). Until 2026-12-03 the x2 case ran as four 2x2 "phase" kernels over the low-resolution input (tap
/// sums of the 3x3 kernel, 16 C^2 per upsampler): the same multiply count as the 3x3 conv under Winograd
/// F(2x2, 3x3), which the CPU provider uses for these shapes (fewer still under F(4x4)), but a derived copy of
/// every upsampler weight in memory (236 MB in f32 for SD 1.5's UNet, not representable in an fp16 file's
/// dtype) and one more rounding than diffusers.
final class Upsample2D {
    let conv: Conv2dLayer
    let channels: Int

    init(_ w: WeightScope, channels: Int) throws {
        conv = try Conv2dLayer(w.sub("conv"), inChannels: channels, outChannels: channels, kernel: 3)
        self.channels = channels
    }

    /// Above this many bytes of upsampled image (64 MiB: at 512 px the VAE decoder's last two upsamplers; SD's
    /// UNet upsamplers stay below it up to 1024 px), the x2 upsample and its conv run in bands of rows (`banded`).
    static let bandThresholdBytes = 64 << 20
    /// Bytes of upsampled rows per band in the banded path (32 MiB: 64 rows of a 512-wide, 256-channel image).
    static let bandTargetBytes = 32 << 20

    /// Whether an upsampled image of `elements` f32 values is above `bandThresholdBytes` (banded here; the VAE
    /// decoder also frees its scratch before such a level).
    static func isLarge(elements: Int) -> Bool { elements * MemoryLayout<Float>.size > bandThresholdBytes }

    /// x [B, C, H, W] -> [B, C, outH, outW] (default 2H, 2W)
    func callAsFunction(_ be: Backend, _ x: Tensor, size: (Int, Int)? = nil) throws -> Tensor {
        let (h, w) = (x.shape[2], x.shape[3])
        let (oh, ow) = size ?? (h * 2, w * 2)
        if oh == 2 * h && ow == 2 * w && Upsample2D.isLarge(elements: 4 * x.count) { return try banded(be, x) }
        let up = oh == 2 * h && ow == 2 * w ? try be.upsampleNearest(x, factor: 2)   // [B, C, 2H, 2W]
                                            : try be.resizeNearest(x, height: oh, width: ow)   // [B, C, oh, ow]
        return try conv(be, up)                                                       // [B, C, oh, ow]
    }

    /// The x2 case in bands of low-resolution rows [a, b): each band is upsampled with one row of context on
    /// each side (zero padding only at the image's top and bottom), convolved, and its rows [2a, 2b) copied
    /// into the output. The same products per output pixel as the whole-image path (up to the conv's
    /// summation order), without the whole upsampled image in memory: the VAE decoder at 512 px holds 256 MB
    /// less at its peak (the upsampled [1, 256, 512, 512] tensor), at about 3% more conv work (two halo rows per band).
    /// `rows`: low-resolution rows per band (>= 1; default: `bandTargetBytes` of upsampled rows).
    func banded(_ be: Backend, _ x: Tensor, rows: Int? = nil) throws -> Tensor {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (oh, ow) = (2 * h, 2 * w)
        let rows = rows ?? max(1, Upsample2D.bandTargetBytes / max(n * c * 2 * ow * MemoryLayout<Float>.size, 1))
        precondition(rows >= 1, "Upsample2D.banded: rows \(rows)")
        let y = try be.output([n, c, oh, ow])                                              // [B, C, 2H, 2W]
        var a = 0
        while a < h {
            let b = min(h, a + rows)
            let lo = max(a - 1, 0), hi = min(b + 1, h)                                      // low rows read
            let xb = try be.output([n, c, hi - lo, w])                                      // [B, C, hi-lo, W]
            try be.copyStrided(shape: [n, c, hi - lo, w], from: x, fromOffset: lo * w, fromStrides: [c * h * w, h * w, w, 1],
                               to: xb, toStrides: [c * (hi - lo) * w, (hi - lo) * w, w, 1])
            let up = try be.upsampleNearest(xb, factor: 2)                                  // [B, C, 2(hi-lo), 2W]
            let padTop = a == 0 ? 1 : 0, padBottom = b == h ? 1 : 0
            let yb = try be.conv2d(up, conv.weight, conv.bias, stride: 1,
                                   padding: (padTop, 1, padBottom, 1))                     // [B, C, r, 2W]
            let r = yb.shape[2]
            // band output row i is centred on upsampled row 2 lo - padTop + i + 1
            let first = 2 * a - (2 * lo - padTop + 1)
            try be.copyStrided(shape: [n, c, 2 * (b - a), ow], from: yb, fromOffset: first * ow,
                               fromStrides: [c * r * ow, r * ow, ow, 1],
                               to: y, toOffset: 2 * a * ow, toStrides: [c * oh * ow, oh * ow, ow, 1])
            a = b
        }
        return y
    }
}
