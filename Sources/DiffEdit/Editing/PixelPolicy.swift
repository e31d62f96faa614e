/// The library's pixel and mask policy, in one place, for every entry point (Swift API, CLI, C ABI, streams,
/// video): given the decoded edit at work size, it returns the output at the input's size and the mask the
/// edit used.
///
/// 1. The region an edit may change: the user mask (feathered inwards; the denoising loop keeps the latents
///    outside its latent-grid average on the source trajectory), else p2p's LocalBlend mask (dilated by
///    the VAE factor and softened), else where the decoded edit differs from the VAE's reconstruction of the
///    input by more than 10/255 (so the VAE's own error does not count as a change).
/// 2. A native-resolution edit (input resized to the model's size) is resized back and composited over the
///    original through that region: outside it the output is the input's bytes. A padded edit is cropped.
/// 3. A user mask is applied last, in 8-bit: out = in + (edit - in) * mask / 255, rounded. Where the mask is
///    0 the output is the input's bytes, where it is 255 the edit's.
/// 4. The mask reported (`EditResult.mask`, `--mask-out`, `params->mask_out`): the method's region (LocalBlend,
///    else the user's feathered mask, else everything), restricted to the user mask (min).
public enum PixelPolicy {
    /// Bytes an edit holds at the input's size besides the caller's own buffers, at its peak: the input as RGB
    /// (3 per pixel) and the output image (3), with a user mask its copy (1) and feathered float plane (4), with
    /// alpha its plane (1). Measured: a 16384x16384 GRAY8 edit peaks at 2.06 GB with 0.54 GB of it the caller's
    /// buffers (tools/big_input_check.py); with a mask 3.7 GB. Counted in the working set a request is checked
    /// against (StableDiffusionModel.checkWorkingSet), so a huge input under a small max_memory is refused before
    /// any of them is allocated. Saturates instead of overflowing.
    public static func inputPlaneBytes(width: Int, height: Int, masked: Bool, alpha: Bool) -> Int {
        HostMemory.product([max(width, 0), max(height, 0), 6 + (masked ? 5 : 0) + (alpha ? 1 : 0)])
    }

    /// One slot's output. `decoded` is at the plan's work size; `blendMask` at latent size (0/1);
    /// `reconstruction` decodes the input's own latents (called only when it is needed).
    /// `feathered` is `feather(userMask)` when the caller has it already. `reportMask` false: no mask is made
    /// (nil), the image is the same.
    static func compose(decoded: RGBImage, original: RGBImage, plan: NativeResolutionPlan, userMask: GrayImage?,
                        feathered: [Float]? = nil, blendMask: [Float]?, factor f: Int, reportMask: Bool = true,
                        reconstruction: () throws -> RGBImage) throws -> (RGBImage, GrayImage?) {
        let (W, H) = (original.width, original.height)
        let feathered = feathered ?? userMask.map(feather)
        var region: [Float]? = nil                                                  // work size
        var blendPixels: [Float]? = nil                                             // work size
        if feathered == nil, let bm = blendMask {
            let px = EditMask.upsampleNearest(bm, width: plan.workWidth / f, height: plan.workHeight / f, factor: f)
            blendPixels = px
            region = EditMask.boxBlur(EditMask.dilate(px, width: plan.workWidth, height: plan.workHeight, radius: f),
                                      width: plan.workWidth, height: plan.workHeight, radius: max(f / 2, 1))
        }
        // input-size pixels: the output and the reported mask, each checked before it is made (Swift arrays trap)
        try HostMemory.reserve(HostMemory.bytes(W, H, 3), what: "the \(W)x\(H) output image")
        var image: RGBImage
        if !plan.resized {
            image = plan.toInput(edited: decoded, original: original, alpha: nil)
        } else if let fm = feathered {
            image = plan.toInput(edited: decoded, original: original, alpha: fm)
        } else {
            // the work-size region is resized one output row at a time: no input-size float plane
            image = plan.toInput(edited: decoded, original: original,
                                 workAlpha: try region ?? changedRegion(decoded, reconstruction(), radius: f))
        }
        if let u = userMask { composite(&image, input: original, mask: u) }
        guard reportMask else { return (image, nil) }
        try HostMemory.reserve(HostMemory.bytes(W, H), what: "the \(W)x\(H) mask")
        var mask = feathered.map { EditMask.gray($0, width: W, height: H) }
            ?? blendPixels.map { plan.grayToInput($0) }
            ?? GrayImage(width: W, height: H, pixels: [UInt8](repeating: 255, count: W * H))   // everywhere (no float plane)
        if let u = userMask {
            for i in 0..<mask.pixels.count { mask.pixels[i] = min(mask.pixels[i], u.pixels[i]) }
        }
        return (image, mask)
    }

    /// A user mask feathered inwards (about 1/32 of the short side): 0 wherever the mask is 0.
    static func feather(_ mask: GrayImage) -> [Float] {
        EditMask.feathered(mask, radius: EditMask.featherRadius(width: mask.width, height: mask.height))
    }

    /// The feathered user mask as the denoising loop applies it: at the work size, area-averaged to the latent grid.
    static func latentMask(_ feathered: [Float], plan: NativeResolutionPlan, factor f: Int) -> [Float] {
        EditMask.areaDownsample(plan.maskToWork(feathered), width: plan.workWidth, height: plan.workHeight, factor: f)
    }

    /// Where two images differ by more than 10/255 in any channel, dilated and softened.
    static func changedRegion(_ a: RGBImage, _ b: RGBImage, radius: Int) -> [Float] {
        let n = a.width * a.height
        var d = [Float](repeating: 0, count: n)
        for i in 0..<n {
            for c in 0..<3 where abs(Int(a.pixels[3 * i + c]) - Int(b.pixels[3 * i + c])) > 10 { d[i] = 1 }
        }
        let dil = EditMask.dilate(d, width: a.width, height: a.height, radius: radius)
        return EditMask.boxBlur(dil, width: a.width, height: a.height, radius: max(radius / 2, 1))
    }

    /// out = input + (edited - input) * mask / 255, per channel, rounded: pixels where the mask is 0 keep the
    /// input exactly, where it is 255 take the edit exactly.
    public static func composite(edited: RGBImage, input: RGBImage, mask: GrayImage) -> RGBImage {
        var out = edited
        composite(&out, input: input, mask: mask)
        return out
    }

    /// The same in place in `edited` (no second input-size image when the caller holds the only copy).
    public static func composite(_ edited: inout RGBImage, input: RGBImage, mask: GrayImage) {
        precondition(edited.width == input.width && edited.height == input.height && mask.width == input.width &&
                     mask.height == input.height, "PixelPolicy.composite: sizes differ")
        let n = mask.width * mask.height
        edited.pixels.withUnsafeMutableBufferPointer { out in
            input.pixels.withUnsafeBufferPointer { inp in
                mask.pixels.withUnsafeBufferPointer { mk in
                    for i in 0..<n {
                        let m = Int(mk[i])
                        if m == 255 { continue }
                        for c in 0..<3 {
                            let a = Int(inp[i * 3 + c]), e = Int(out[i * 3 + c])
                            out[i * 3 + c] = UInt8(clamping: a + ((e - a) * m + (e >= a ? 127 : -127)) / 255)
                        }
                    }
                }
            }
        }
    }
}
