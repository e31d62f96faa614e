/// diffusers Upsample2D with a conv: nearest upsample (x2, or to an exact size) then 3x3 conv.
final class Upsample2D {
    let conv: Conv2dLayer

    init(_ w: WeightScope, channels: Int) throws {
        conv = try Conv2dLayer(w.sub("conv"), inChannels: channels, outChannels: channels, kernel: 3)
    }

    /// x [B, C, H, W] -> [B, C, outH, outW] (default 2H, 2W)
    func callAsFunction(_ be: Backend, _ x: Tensor, size: (Int, Int)? = nil) throws -> Tensor {
        let (oh, ow) = size ?? (x.shape[2] * 2, x.shape[3] * 2)
        let up = try be.resizeNearest(x, height: oh, width: ow)   // [B, C, oh, ow]
        return try conv(be, up)                                   // [B, C, oh, ow]
    }
}
