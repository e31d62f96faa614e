import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import DiffEdit

/// Where edited frames go: a folder (frame_00000.png, ...) or a video file encoded by the ffmpeg
/// executable from rawvideo RGB24 on its stdin (yuv420p, the container/codec from the file name).
final class VideoFrameSink {
    let path: String
    let width: Int
    let height: Int
    private(set) var written = 0
    private var process: Subprocess? = nil
    private let isDir: Bool
    /// The provenance record (nil: --no-metadata): XMP in every frame of a folder, container metadata in a file.
    private let record: ProvenanceRecord?
    private let watermark: Bool

    init(path: String, ffmpeg: String, width: Int, height: Int, fps: Float, record: ProvenanceRecord? = nil,
         watermark: Bool = false) throws {
        self.path = path; self.width = width; self.height = height; self.record = record; self.watermark = watermark
        let ext = PathName.pathExtension(path).lowercased()
        var dir = false
        let exists = FileManager.default.fileExists(atPath: path, isDirectory: &dir)
        isDir = (exists && dir) || ext.isEmpty
        if isDir {
            do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
                throw DiffEditError.io("--output: cannot create folder \(path): \(error)")
            }
            return
        }
        var args = [ffmpeg, "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "\(width)x\(height)",
                    "-r", TextUtil.format("%g", Double(fps)), "-i", "-"]
        if ["mp4", "mov", "mkv", "m4v"].contains(ext) {
            args += ["-pix_fmt", "yuv420p"]
            if width % 2 != 0 || height % 2 != 0 { args += ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"] }
        }
        if let r = record {
            // the record in the container: digital_source_type and the JSON record as tags (mp4/mov keep
            // arbitrary tags with use_metadata_tags; mkv/webm keep them as they are), and a readable comment
            args += ["-metadata", "digital_source_type=\(r.digitalSourceType)", "-metadata", "diffedit_record=\(r.json)",
                     "-metadata", "comment=AI-edited (IPTC digital source type \(r.digitalSourceType)) by \(r.software), model \(r.model)"]
            if ["mp4", "mov", "m4v"].contains(ext) { args += ["-movflags", "+use_metadata_tags"] }
        }
        args.append(path)
        do { process = try Subprocess(args, stdin: .pipe) } catch {
            throw DiffEditError.io("ffmpeg: cannot run \(ffmpeg) (\(error)); install ffmpeg or write to a folder")
        }
    }

    func write(_ frame: RGBImage) throws {
        let image = watermark ? InvisibleWatermark.embed(frame) : frame
        if isDir {
            try ImageFile.write(image, path: PathName.join(path, TextUtil.format("frame_%05d.png", written)),
                                xmp: record.map(XMPPacket.make))
        } else {
            guard let p = process, p.isRunning else { throw DiffEditError.io("ffmpeg: the encoder for \(path) exited early") }
            try p.write(image.pixels)
        }
        written += 1
    }

    func finish() throws {
        guard let p = process else { return }
        p.closeStdin()
        let status = p.wait()
        process = nil
        guard status == 0 else { throw DiffEditError.io("ffmpeg: encoding \(path) failed (exit \(status))") }
    }

    func abort() {
        process?.closeStdin()
        if let p = process { if p.isRunning { p.terminate() }; p.wait() }
        process = nil
    }
}
