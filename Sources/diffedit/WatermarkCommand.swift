import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import DiffEdit

/// `diffedit watermark`: embeds the invisible watermark (the one `generate --watermark` writes) in an existing
/// image, for pictures made elsewhere and for measuring the mark on chosen pictures (tools/watermark_check.py).
/// The input's XMP packet, if any, is copied unchanged; no provenance record is added (nothing was generated).
enum WatermarkCommand {
    static let parser = ArgParser(
        command: "watermark",
        usage: "--input IN.png --output OUT.png",
        summary: "Embeds the invisible watermark (imwatermark dwtDctSvd, diffusers' SDXL 48-bit message) in an image of at least 256x256. Read it back with 'diffedit info --provenance'.",
        options: [
            .init(name: "input", value: "IN.png", help: "image, .png or .jpg (required)"),
            .init(name: "output", value: "OUT.png", help: "output image, .png or .jpg (required)"),
        ])

    static func run(arguments: [String]) throws {
        let p = try parser.parse(arguments)
        guard p.positionals.isEmpty else { throw CLIError.usage("watermark", "unexpected argument \(p.positionals[0])") }
        let input = try p.required("input"), output = try p.required("output")
        let (image, alpha) = try ImageFile.readWithAlpha(path: input)
        guard InvisibleWatermark.canMark(width: image.width, height: image.height) else {
            throw CLIError.usage("watermark", "\(input) is \(image.width)x\(image.height): the mark needs at least \(InvisibleWatermark.minSide) px a side")
        }
        let xmp = try? ImageFile.readXMP(path: input)
        let marked = InvisibleWatermark.embed(image)
        if let a = alpha { try ImageFile.write(marked, alpha: a, path: output, xmp: xmp ?? nil) }
        else { try ImageFile.write(marked, path: output, xmp: xmp ?? nil) }
    }
}
