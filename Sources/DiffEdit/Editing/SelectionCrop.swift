/// Where an inpaint of a large image runs: the selection's bounding box with some surroundings (a quarter of
/// the box's longer side, at least 8 pixels, on each side), grown to at least the model's native size where
/// the image allows, so that a small selection in a 4000x3000 photo is repainted at the model's resolution
/// instead of at a 1/40 scale. The crop is edited like a whole image (NativeResolutionPlan) and pasted back:
/// outside the crop the mask is 0, so the output there is the input's bytes anyway.
struct SelectionCrop: Equatable {
    let x: Int, y: Int, width: Int, height: Int

    /// nil when the crop would not be much smaller than the image (at least 20% less area), or the mask is empty.
    init?(mask: GrayImage, native: Int) {
        let (W, H) = (mask.width, mask.height)
        var x0 = W, y0 = H, x1 = -1, y1 = -1
        for j in 0..<H {
            let row = j * W
            for i in 0..<W where mask.pixels[row + i] != 0 {
                x0 = min(x0, i); x1 = max(x1, i); y0 = min(y0, j); y1 = max(y1, j)
            }
        }
        guard x1 >= 0 else { return nil }
        let pad = max(max(x1 - x0 + 1, y1 - y0 + 1) / 4, 8)
        func span(_ lo: Int, _ hi: Int, _ size: Int) -> (Int, Int) {
            var a = max(lo - pad, 0), b = min(hi + 1 + pad, size)                  // [a, b)
            let want = min(native, size)
            if b - a < want {                                                       // grow around the centre
                let c = (a + b) / 2
                a = max(min(c - want / 2, size - want), 0)
                b = a + want
            }
            return (a, b - a)
        }
        let (cx, cw) = span(x0, x1, W), (cy, ch) = span(y0, y1, H)
        guard Double(cw * ch) <= 0.8 * Double(W * H) else { return nil }
        x = cx; y = cy; width = cw; height = ch
    }

    func cut(_ image: RGBImage) -> RGBImage {
        var p = [UInt8](repeating: 0, count: width * height * 3)
        for j in 0..<height {
            let src = ((y + j) * image.width + x) * 3
            p.replaceSubrange(j * width * 3 ..< (j + 1) * width * 3, with: image.pixels[src ..< src + width * 3])
        }
        return RGBImage(width: width, height: height, pixels: p)
    }

    func cut(_ mask: GrayImage) -> GrayImage {
        var p = [UInt8](repeating: 0, count: width * height)
        for j in 0..<height {
            let src = (y + j) * mask.width + x
            p.replaceSubrange(j * width ..< (j + 1) * width, with: mask.pixels[src ..< src + width])
        }
        return GrayImage(width: width, height: height, pixels: p)
    }

    /// `part` (crop-sized) written over a copy of `image` at the crop.
    func paste(_ part: RGBImage, into image: RGBImage) -> RGBImage {
        var out = image
        for j in 0..<height {
            let dst = ((y + j) * image.width + x) * 3
            out.pixels.replaceSubrange(dst ..< dst + width * 3, with: part.pixels[j * width * 3 ..< (j + 1) * width * 3])
        }
        return out
    }

    /// A crop-sized mask at the image's size, 0 outside the crop.
    func paste(_ part: GrayImage, width W: Int, height H: Int) -> GrayImage {
        var out = GrayImage(width: W, height: H, pixels: [UInt8](repeating: 0, count: W * H))
        for j in 0..<height {
            let dst = (y + j) * W + x
            out.pixels.replaceSubrange(dst ..< dst + width, with: part.pixels[j * width ..< (j + 1) * width])
        }
        return out
    }
}
