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

    /// x [B, C, H, W] -> [B, C, outH, outW] (default 2H, 2W)
    func callAsFunction(_ be: Backend, _ x: Tensor, size: (Int, Int)? = nil) throws -> Tensor {
        let (h, w) = (x.shape[2], x.shape[3])
        let (oh, ow) = size ?? (h * 2, w * 2)
        let up = oh == 2 * h && ow == 2 * w ? try be.upsampleNearest(x, factor: 2)   // [B, C, 2H, 2W]
                                            : try be.resizeNearest(x, height: oh, width: ow)   // [B, C, oh, ow]
        return try conv(be, up)                                                       // [B, C, oh, ow]
    }
}
