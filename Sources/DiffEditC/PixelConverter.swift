import DiffEdit

/// Conversions between caller buffers and the library's RGBImage/GrayImage. Reads and writes
/// touch exactly `width * bytesPerPixel` bytes of each row, never the stride padding.
enum PixelConverter {
    /// Reads a buffer as RGB (GRAY8 is replicated) plus its alpha plane (nil without alpha). The arrays are
    /// checked with HostMemory.reserve first: a size that cannot be allocated is `.outOfMemory` naming the buffer.
    static func readRGB(_ b: CheckedBuffer) throws -> (RGBImage, [UInt8]?) {
        let (ro, go, bo, ao) = b.format.channelOffsets
        let bpp = b.format.bytesPerPixel
        try HostMemory.reserve(HostMemory.bytes(b.width, b.height, ao == nil ? 3 : 4),
                               what: "\(b.name) as RGB (\(b.width)x\(b.height))")
        var rgb = [UInt8](repeating: 0, count: b.width * b.height * 3)
        var alpha: [UInt8]? = ao == nil ? nil : [UInt8](repeating: 0, count: b.width * b.height)
        let src = b.data.assumingMemoryBound(to: UInt8.self)
        rgb.withUnsafeMutableBufferPointer { dst in
            for y in 0..<b.height {
                let row = src + y * b.stride
                for x in 0..<b.width {
                    let p = row + x * bpp
                    let o = (y * b.width + x) * 3
                    dst[o] = p[ro]; dst[o + 1] = p[go]; dst[o + 2] = p[bo]
                }
            }
        }
        if let ao = ao {
            alpha!.withUnsafeMutableBufferPointer { dst in
                for y in 0..<b.height {
                    let row = src + y * b.stride
                    for x in 0..<b.width { dst[y * b.width + x] = row[x * bpp + ao] }
                }
            }
        }
        return (RGBImage(width: b.width, height: b.height, pixels: rgb), alpha)
    }

    /// Reads a GRAY8 buffer (the caller checked the format).
    static func readGray(_ b: CheckedBuffer) throws -> GrayImage {
        try HostMemory.reserve(HostMemory.bytes(b.width, b.height), what: "\(b.name) (\(b.width)x\(b.height))")
        var out = [UInt8](repeating: 0, count: b.width * b.height)
        let src = b.data.assumingMemoryBound(to: UInt8.self)
        out.withUnsafeMutableBufferPointer { dst in
            for y in 0..<b.height {
                (dst.baseAddress! + y * b.width).update(from: src + y * b.stride, count: b.width)
            }
        }
        return GrayImage(width: b.width, height: b.height, pixels: out)
    }

    /// Writes `image` (the buffer's size) into `b`; alpha comes from `alpha` when the output has an
    /// alpha channel (255 when nil). GRAY8 output gets BT.601 luma.
    static func writeRGB(_ image: RGBImage, alpha: [UInt8]?, to b: CheckedBuffer) {
        precondition(image.width == b.width && image.height == b.height, "PixelConverter: size mismatch")
        let (ro, go, bo, ao) = b.format.channelOffsets
        let bpp = b.format.bytesPerPixel
        let dst = b.data.assumingMemoryBound(to: UInt8.self)
        image.pixels.withUnsafeBufferPointer { src in
            for y in 0..<b.height {
                let row = dst + y * b.stride
                for x in 0..<b.width {
                    let i = y * b.width + x
                    let r = src[i * 3], g = src[i * 3 + 1], bl = src[i * 3 + 2]
                    let p = row + x * bpp
                    if b.format == .gray8 {
                        p[0] = luma(r, g, bl)
                        continue
                    }
                    p[ro] = r; p[go] = g; p[bo] = bl
                    if let ao = ao { p[ao] = alpha?[i] ?? 255 }
                }
            }
        }
    }

    /// ITU-R BT.601 luma, rounded.
    static func luma(_ r: UInt8, _ g: UInt8, _ b: UInt8) -> UInt8 {
        let sum: Int = 299 * Int(r) + 587 * Int(g) + 114 * Int(b) + 500
        return UInt8(sum / 1000)
    }

    /// Writes a GRAY8 image into a GRAY8 buffer of the same size.
    static func writeGray(_ image: GrayImage, to b: CheckedBuffer) {
        precondition(image.width == b.width && image.height == b.height, "PixelConverter: size mismatch")
        let dst = b.data.assumingMemoryBound(to: UInt8.self)
        image.pixels.withUnsafeBufferPointer { src in
            for y in 0..<b.height {
                (dst + y * b.stride).update(from: src.baseAddress! + y * b.width, count: b.width)
            }
        }
    }
}
