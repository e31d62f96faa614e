import FoundationEssentials
import CImageCodec
import CPNG
import CJPEG

/// PNG and JPEG files (read: format from the file's first bytes; write: format from the extension).
/// Errors name the file.
///
/// Reading checks the size in the file's header before any pixel memory is allocated: a side above
/// `maxDimension` (16384, the C ABI's DIFF_EDIT_MAX_DIMENSION) is `.unsupported`, more than `maxPixels`
/// (64 Mpixel, e.g. 8192x8192: the pipeline's RGB f32 copy alone is 768 MB there) is `.outOfMemory`,
/// both naming the file and the size, so a small "bomb" file claiming 16000x16000 costs nothing.
public enum ImageFile {
    /// Largest side accepted when reading (DE_IMAGE_MAX_DIMENSION in de_image.h).
    public static let maxDimension = 16384
    /// Largest width x height accepted when reading (DE_IMAGE_MAX_PIXELS in de_image.h, 64 Mpixel).
    public static let maxPixels = 1 << 26

    /// Raw decoded pixels: channels 1 (gray), 3 (RGB) or 4 (RGBA).
    public struct Decoded {
        public var width: Int
        public var height: Int
        public var channels: Int
        public var pixels: [UInt8]
    }

    public static func decode(path: String) throws -> Decoded {
        var p: UnsafeMutablePointer<UInt8>? = nil
        var w: Int32 = 0, h: Int32 = 0, c: Int32 = 0
        var err = [CChar](repeating: 0, count: 512)
        let rc = de_image_read(path, &p, &w, &h, &c, &err, err.count)
        if rc != 0 || p == nil {
            let msg = String(cString: err)
            // refused from the header: a side over the ABI's maximum is a limit of the library; over the
            // pixel budget, of memory
            if rc == -2 { throw DiffEditError.unsupported(msg) }        // DE_IMAGE_ERR_DIMENSION
            if rc == -3 { throw DiffEditError.outOfMemory(msg) }        // DE_IMAGE_ERR_TOO_LARGE
            if msg.contains("no such file") || msg.contains("cannot open") { throw DiffEditError.io(msg) }
            throw DiffEditError.io(msg.isEmpty ? "\(path): cannot read image" : msg)
        }
        defer { de_image_free(p) }
        let n = Int(w) * Int(h) * Int(c)
        try HostMemory.reserve(n, what: "\(path): the decoded \(w)x\(h) image")   // a Swift array traps instead
        return Decoded(width: Int(w), height: Int(h), channels: Int(c), pixels: Array(UnsafeBufferPointer(start: p, count: n)))
    }

    /// Reads any 8-bit PNG/JPEG as RGB (gray is replicated, alpha dropped).
    public static func read(path: String) throws -> RGBImage { try readWithAlpha(path: path).image }

    /// Reads an image and returns its alpha channel separately (nil when the file has none).
    public static func readWithAlpha(path: String) throws -> (image: RGBImage, alpha: GrayImage?) {
        let d = try decode(path: path)
        let n = d.width * d.height
        try HostMemory.reserve(HostMemory.bytes(n, 3), what: "\(path): the \(d.width)x\(d.height) image as RGB")
        var rgb = [UInt8](repeating: 0, count: n * 3)
        var alpha: [UInt8]? = nil
        switch d.channels {
        case 1:
            for i in 0..<n { let v = d.pixels[i]; rgb[3 * i] = v; rgb[3 * i + 1] = v; rgb[3 * i + 2] = v }
        case 3:
            rgb = d.pixels
        case 4:
            var a = [UInt8](repeating: 0, count: n)
            for i in 0..<n {
                rgb[3 * i] = d.pixels[4 * i]; rgb[3 * i + 1] = d.pixels[4 * i + 1]; rgb[3 * i + 2] = d.pixels[4 * i + 2]
                a[i] = d.pixels[4 * i + 3]
            }
            alpha = a
        default:
            throw DiffEditError.unsupported("\(path): \(d.channels)-channel images are not supported")
        }
        return (RGBImage(width: d.width, height: d.height, pixels: rgb), alpha.map { GrayImage(width: d.width, height: d.height, pixels: $0) })
    }

    /// Reads a mask: a GRAY8 PNG is taken as is (255 = edit, 0 = keep); colour images are converted
    /// to luma (ITU-R 601, rounded); alpha is ignored.
    public static func readGray(path: String) throws -> GrayImage {
        let d = try decode(path: path)
        let n = d.width * d.height
        if d.channels == 1 { return GrayImage(width: d.width, height: d.height, pixels: d.pixels) }
        var g = [UInt8](repeating: 0, count: n)
        let c = d.channels
        for i in 0..<n {
            let r = Int(d.pixels[c * i]), gg = Int(d.pixels[c * i + 1]), b = Int(d.pixels[c * i + 2])
            g[i] = UInt8((299 * r + 587 * gg + 114 * b + 500) / 1000)
        }
        return GrayImage(width: d.width, height: d.height, pixels: g)
    }

    enum Format { case png, jpeg }

    static func format(for path: String) throws -> Format {
        switch PathName.pathExtension(path).lowercased() {
        case "png": return .png
        case "jpg", "jpeg": return .jpeg
        default:
            throw DiffEditError.invalidArgument("\(path): unknown image extension (use .png, .jpg or .jpeg)")
        }
    }

    /// Writes PNG or JPEG by extension. `quality` applies to JPEG. `xmp`: an XMP packet to embed (PNG: iTXt
    /// "XML:com.adobe.xmp"; JPEG: APP1, at most `maxJPEGXMP` bytes).
    public static func write(_ image: RGBImage, path: String, quality: Int = 95, xmp: String? = nil) throws {
        try write(pixels: image.pixels, width: image.width, height: image.height, channels: 3, path: path, quality: quality, xmp: xmp)
    }

    /// Largest XMP packet a JPEG holds (one APP1 segment).
    public static let maxJPEGXMP = Int(DE_IMAGE_MAX_JPEG_XMP)

    /// The XMP packet of a PNG or JPEG file, nil when it has none. Throws .io when the file cannot be read or
    /// its chunk/segment structure is broken; the packet itself is not checked here (see XMPPacket).
    public static func readXMP(path: String) throws -> String? {
        var p: UnsafeMutablePointer<CChar>? = nil
        var n = 0
        var err = [CChar](repeating: 0, count: 512)
        guard de_image_read_xmp(path, &p, &n, &err, err.count) == 0 else { throw DiffEditError.io(String(cString: err)) }
        guard let p else { return nil }
        defer { de_image_free_xmp(p) }
        return String(decoding: UnsafeRawBufferPointer(start: p, count: n), as: UTF8.self)
    }

    /// Writes a mask (GRAY8) as PNG or JPEG by extension.
    public static func write(_ image: GrayImage, path: String, quality: Int = 95) throws {
        try write(pixels: image.pixels, width: image.width, height: image.height, channels: 1, path: path, quality: quality)
    }

    /// Writes RGB plus an alpha channel (PNG: RGBA; JPEG: alpha dropped).
    public static func write(_ image: RGBImage, alpha: GrayImage, path: String, quality: Int = 95, xmp: String? = nil) throws {
        guard alpha.width == image.width, alpha.height == image.height else {
            throw DiffEditError.invalidArgument("\(path): alpha is \(alpha.width)x\(alpha.height), image is \(image.width)x\(image.height)")
        }
        if try format(for: path) == .jpeg { return try write(image, path: path, quality: quality, xmp: xmp) }
        let n = image.width * image.height
        var rgba = [UInt8](repeating: 0, count: n * 4)
        for i in 0..<n {
            rgba[4 * i] = image.pixels[3 * i]; rgba[4 * i + 1] = image.pixels[3 * i + 1]
            rgba[4 * i + 2] = image.pixels[3 * i + 2]; rgba[4 * i + 3] = alpha.pixels[i]
        }
        try write(pixels: rgba, width: image.width, height: image.height, channels: 4, path: path, quality: quality, xmp: xmp)
    }

    static func write(pixels: [UInt8], width: Int, height: Int, channels: Int, path: String, quality: Int,
                      xmp: String? = nil) throws {
        let fmt = try format(for: path)
        guard width > 0, height > 0, width < Int(Int32.max), height < Int(Int32.max) else {
            throw DiffEditError.invalidArgument("\(path): cannot write a \(width)x\(height) image")
        }
        var err = [CChar](repeating: 0, count: 512)
        let rc: Int32 = pixels.withUnsafeBufferPointer { p in
            switch fmt {
            case .png:
                return de_image_write_png_xmp(path, p.baseAddress, Int32(width), Int32(height), Int32(channels), xmp, &err, err.count)
            case .jpeg:
                return de_image_write_jpeg_xmp(path, p.baseAddress, Int32(width), Int32(height), Int32(channels),
                                               Int32(max(1, min(100, quality))), xmp, &err, err.count)
            }
        }
        if rc != 0 { throw DiffEditError.io(String(cString: err)) }
    }
}
