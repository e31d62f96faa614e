/// Where an edit runs: an input far from the model's native size (UNet sample_size x VAE factor) is
/// resized to about the native area (sides multiples of `multiple`), edited there, and only the changed
/// region is brought back: the edit is resized to the input size and composited over the original with a
/// soft alpha, so pixels outside the region stay bit-identical. Inputs near the native size (within 10% in
/// scale), or any input with `fullResolution`, are only padded (edge replication) to the multiple and
/// cropped back.
public struct NativeResolutionPlan: Sendable, Equatable {
    public let inputWidth: Int
    public let inputHeight: Int
    public let workWidth: Int
    public let workHeight: Int
    /// true: the image is resized to the work size; false: padded to it at the top left.
    public let resized: Bool

    public init(width w: Int, height h: Int, native: Int, multiple m: Int, fullResolution: Bool) {
        inputWidth = w; inputHeight = h
        func up(_ x: Int) -> Int { (x + m - 1) / m * m }
        let scale = (Double(native) * Double(native) / (Double(w) * Double(h))).squareRoot()
        if fullResolution || abs(scale - 1) <= 0.1 {
            resized = false
            workWidth = up(w); workHeight = up(h)
        } else {
            resized = true
            workWidth = max(m, Int((Double(w) * scale / Double(m)).rounded()) * m)
            workHeight = max(m, Int((Double(h) * scale / Double(m)).rounded()) * m)
        }
    }

    /// The input as the method sees it.
    public func toWork(_ image: RGBImage) -> RGBImage {
        resized ? ImageResampler.resize(image, toWidth: workWidth, height: workHeight)
                : ImageResampler.pad(image, toWidth: workWidth, height: workHeight)
    }

    /// A full-size mask plane as the method sees it (resized, or zero-padded).
    public func maskToWork(_ m: [Float]) -> [Float] {
        if resized { return Self.resizeClamped(m, inputWidth, inputHeight, workWidth, workHeight) }
        return EditMask.padOrCrop(m, width: inputWidth, height: inputHeight, toWidth: workWidth, height: workHeight)
    }

    /// A work-size plane at the input size (resized, or cropped).
    public func planeToInput(_ p: [Float]) -> [Float] {
        if resized { return Self.resizeClamped(p, workWidth, workHeight, inputWidth, inputHeight) }
        return EditMask.padOrCrop(p, width: workWidth, height: workHeight, toWidth: inputWidth, height: inputHeight)
    }

    /// A [0, 1] plane resized w x h -> nw x nh and clamped back into [0, 1], in place (input-size planes are large).
    private static func resizeClamped(_ p: [Float], _ w: Int, _ h: Int, _ nw: Int, _ nh: Int) -> [Float] {
        var r = ImageResampler.resize(p, channels: 1, width: w, height: h, toWidth: nw, height: nh)
        r.withUnsafeMutableBufferPointer { b in for i in b.indices { b[i] = min(max(b[i], 0), 1) } }
        return r
    }

    /// The edited work image at the input size. Padded plans crop. Resized plans composite the resized
    /// edit over `original` with `alpha` (input-size plane in [0, 1]; nil = everywhere): where alpha is 0
    /// the original pixel is kept exactly.
    public func toInput(edited: RGBImage, original: RGBImage, alpha: [Float]?) -> RGBImage {
        guard resized else { return ImageResampler.crop(edited, width: inputWidth, height: inputHeight) }
        var up = ImageResampler.resize(edited, toWidth: inputWidth, height: inputHeight)
        guard let a = alpha else { return up }
        // composited in place in the resized edit (one input-size image, not two)
        up.pixels.withUnsafeMutableBufferPointer { u in
            original.pixels.withUnsafeBufferPointer { o in
                for i in 0..<(inputWidth * inputHeight) {
                    let ai = a[i]
                    for c in 0..<3 {
                        let k = 3 * i + c
                        if ai > 0 {
                            let ov = Float(o[k]), e = Float(u[k])
                            u[k] = UInt8(min(max(ov + ai * (e - ov), 0), 255).rounded())
                        } else {
                            u[k] = o[k]
                        }
                    }
                }
            }
        }
        return up
    }
}
