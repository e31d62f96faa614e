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

    /// A work-size [0, 1] plane at the input size as 8-bit (`EditMask.gray(planeToInput(p))`, the same bytes), made
    /// row by row: no input-size float plane.
    public func grayToInput(_ p: [Float]) -> GrayImage {
        guard resized else { return EditMask.gray(planeToInput(p), width: inputWidth, height: inputHeight) }
        var px = [UInt8](repeating: 0, count: inputWidth * inputHeight)
        px.withUnsafeMutableBufferPointer { dst in
            ImageResampler.forEachResizedRow(p, workWidth, workHeight, inputWidth, inputHeight) { y, row in
                for x in 0..<inputWidth { dst[y * inputWidth + x] = UInt8(min(max(row[x], 0), 1) * 255 + 0.5) }
            }
        }
        return GrayImage(width: inputWidth, height: inputHeight, pixels: px)
    }

    /// The edited work image at the input size. Padded plans crop. Resized plans composite the resized
    /// edit over `original` with `alpha` (input-size plane in [0, 1]; nil = everywhere): where alpha is 0
    /// the original pixel is kept exactly.
    public func toInput(edited: RGBImage, original: RGBImage, alpha: [Float]?) -> RGBImage {
        guard resized else { return ImageResampler.crop(edited, width: inputWidth, height: inputHeight) }
        guard let a = alpha else { return ImageResampler.resize(edited, toWidth: inputWidth, height: inputHeight) }
        precondition(a.count == inputWidth * inputHeight, "NativeResolutionPlan.toInput: alpha \(a.count) for \(inputWidth)x\(inputHeight)")
        return a.withUnsafeBufferPointer { ab in
            ImageResampler.resizeComposite(edited, over: original) { y, body in
                body(UnsafeBufferPointer(rebasing: ab[(y * inputWidth)..<((y + 1) * inputWidth)]))
            }
        }
    }

    /// `toInput(edited:original:alpha: planeToInput(workAlpha))`, the same bytes, without the input-size float
    /// plane (a 16384x16384 input's is 1 GB): the work-size alpha is resized and clamped one output row at a time.
    public func toInput(edited: RGBImage, original: RGBImage, workAlpha: [Float]) -> RGBImage {
        guard resized else { return toInput(edited: edited, original: original, alpha: planeToInput(workAlpha)) }
        precondition(workAlpha.count == workWidth * workHeight, "NativeResolutionPlan.toInput: alpha \(workAlpha.count) for \(workWidth)x\(workHeight)")
        var rows = ImageResampler.ResizedRows(workAlpha, workWidth, workHeight, inputWidth, inputHeight)
        return ImageResampler.resizeComposite(edited, over: original) { y, body in rows.row(y, body) }
    }
}
