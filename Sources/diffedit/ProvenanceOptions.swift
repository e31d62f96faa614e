import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import DiffEdit

/// Provenance on the images the CLI writes: `--no-metadata` (no XMP record) and `--watermark` /
/// `--no-watermark` (the invisible watermark; default on for generate, off for edit and video), and how
/// an image is written with them.
enum ProvenanceOptions {
    static let noMetadata = ArgParser.Option(name: "no-metadata", value: nil,
        help: "write no provenance record (by default every image gets XMP: the IPTC digital source type, model name and SHA-256, method, prompts, seed, steps, guidance)")
    static func watermark(defaultOn: Bool) -> ArgParser.Option {
        .init(name: "watermark", value: nil,
              help: "embed the invisible watermark (imwatermark dwtDctSvd, diffusers' SDXL 48-bit message; images of 256 px and more a side)\(defaultOn ? " (default)" : "")")
    }
    static func noWatermark(defaultOn: Bool) -> ArgParser.Option {
        .init(name: "no-watermark", value: nil, help: "no invisible watermark\(defaultOn ? "" : " (default: untouched pixels stay bit-identical)")")
    }
    static func all(watermarkDefault: Bool) -> [ArgParser.Option] {
        [noMetadata, watermark(defaultOn: watermarkDefault), noWatermark(defaultOn: watermarkDefault)]
    }

    /// The model's name and hash for the record: the --model path, or the embedded default model's folder.
    /// The hash is computed once per weight file and cached (ModelHash); a model that cannot be hashed is
    /// recorded without one, with a line on stderr.
    static func modelIdentity(_ p: ArgParser.Parsed, defaultName: String) -> (name: String, sha256: String?) {
        let given = p.string("model").flatMap { $0.isEmpty ? nil : $0 }
        guard let path = given ?? (try? DefaultModel.resolve(name: defaultName)) else { return (defaultName, nil) }
        let name = given == nil ? defaultName : ProvenanceRecord.modelName(path: path)
        do {
            let h = try ModelHash.sha256(modelPath: path, hashed: { f in
                if !p.flag("quiet") { CommonOptions.stderrLine("diffedit: hashing \(f) for the provenance record (once; cached)") }
            })
            return (name, h)
        } catch {
            CommonOptions.stderrLine("diffedit: provenance: model hash unavailable: \((error as? DiffEditError)?.message ?? "\(error)")")
            return (name, nil)
        }
    }

    /// Writes `image` to `path` with the record (unless --no-metadata), extending the XMP of `inputPath` when it
    /// has one; a malformed input packet is replaced, with a line on stderr.
    static func write(_ image: RGBImage, alpha: GrayImage? = nil, path: String, record: ProvenanceRecord?,
                      inputPath: String? = nil) throws {
        var xmp: String? = nil
        if let record {
            xmp = packet(record, inputPath: inputPath)
            if let x = xmp, x.utf8.count > ImageFile.maxJPEGXMP, ["jpg", "jpeg"].contains(PathName.pathExtension(path).lowercased()) {
                CommonOptions.stderrLine("diffedit: provenance: the input's XMP plus the record (\(x.utf8.count) bytes) is larger than a JPEG holds; \(path) gets the record alone")
                xmp = XMPPacket.make(record)
            }
        }
        if let a = alpha { try ImageFile.write(image, alpha: a, path: path, xmp: xmp) }
        else { try ImageFile.write(image, path: path, xmp: xmp) }
    }

    /// The packet for an output: the input's packet extended, or a new one.
    static func packet(_ record: ProvenanceRecord, inputPath: String?) -> String {
        guard let inputPath else { return XMPPacket.make(record) }
        let existing: String?
        do {
            existing = try ImageFile.readXMP(path: inputPath)
        } catch {
            CommonOptions.stderrLine("diffedit: provenance: cannot read the XMP of \(inputPath) (\((error as? DiffEditError)?.message ?? "\(error)")); writing a new packet")
            return XMPPacket.make(record)
        }
        guard let existing else { return XMPPacket.make(record) }
        do {
            return try XMPPacket.extend(existing, with: record)
        } catch {
            CommonOptions.stderrLine("diffedit: provenance: the XMP packet of \(inputPath) is malformed (\(error)); it is replaced by a new one")
            return XMPPacket.make(record)
        }
    }
}
