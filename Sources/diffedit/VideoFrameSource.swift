import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import DiffEdit

/// Frames of a clip, one at a time: a folder of .png/.jpg/.jpeg files in name order (only the frame*
/// files when there are any, so toy-world clip folders with masks work), or a video file
/// decoded by the ffmpeg executable to rawvideo RGB24 on a pipe (size and frame rate from ffprobe).
final class VideoFrameSource {
    let width: Int
    let height: Int
    let fps: Float?
    let frameCount: Int?
    private var files: [String] = []
    private var index = 0
    private var process: Subprocess? = nil
    private let maxFrames: Int?
    private var delivered = 0

    init(path: String, ffmpeg: String, maxFrames: Int?) throws {
        self.maxFrames = maxFrames
        var isDir = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw DiffEditError.io("--input: \(path) does not exist")
        }
        if isDir {
            var names = try FileManager.default.contentsOfDirectory(atPath: path).filter {
                ["png", "jpg", "jpeg"].contains(PathName.pathExtension($0).lowercased())
            }.sorted()
            // folders that also hold other images (masks, ...): the frame_* files only
            let framed = names.filter { $0.lowercased().hasPrefix("frame") }
            if !framed.isEmpty { names = framed }
            guard !names.isEmpty else { throw DiffEditError.invalidArgument("--input: \(path) holds no .png/.jpg frames") }
            files = names.map { PathName.join(path, $0) }
            let first = try ImageFile.read(path: files[0])
            width = first.width; height = first.height; fps = nil
            frameCount = min(files.count, maxFrames ?? files.count)
            return
        }
        let probe = try VideoFrameSource.probe(path: path, ffmpeg: ffmpeg)
        width = probe.width; height = probe.height; fps = probe.fps
        frameCount = probe.frames.map { min($0, maxFrames ?? $0) }
        do {
            process = try Subprocess([ffmpeg, "-v", "error", "-nostdin", "-i", path, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                                     stdin: .null, stdout: .pipe)
        } catch {
            throw DiffEditError.io("ffmpeg: cannot run \(ffmpeg) (\(error)); install ffmpeg or pass a folder of PNG frames")
        }
    }

    /// ffprobe next to the ffmpeg executable: width, height, frame rate, frame count (when stored).
    static func probe(path: String, ffmpeg: String) throws -> (width: Int, height: Int, fps: Float?, frames: Int?) {
        let ffprobe = ffmpeg.hasSuffix("ffmpeg") ? String(ffmpeg.dropLast(6)) + "ffprobe" : "ffprobe"
        let proc: Subprocess
        do {
            proc = try Subprocess([ffprobe, "-v", "error", "-select_streams", "v:0", "-show_entries",
                                   "stream=width,height,r_frame_rate,nb_frames", "-of", "default=noprint_wrappers=1", path],
                                  stdout: .pipe, stderr: .pipe)
        } catch {
            throw DiffEditError.io("ffprobe: cannot run \(ffprobe) (\(error)); install ffmpeg or pass a folder of PNG frames")
        }
        let data = Subprocess.readToEnd(proc.stdoutFD)
        let errText = String(decoding: Subprocess.readToEnd(proc.stderrFD), as: UTF8.self)
        let status = proc.wait()
        var kv: [String: String] = [:]
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { kv[String(parts[0])] = String(parts[1]) }
        }
        guard status == 0, let w = kv["width"].flatMap({ Int($0) }), let h = kv["height"].flatMap({ Int($0) }),
              w > 0, h > 0 else {
            throw DiffEditError.io("--input: \(path) has no readable video stream (ffprobe: \(TextUtil.trimmingWhitespaceAndNewlines(errText)))")
        }
        var fps: Float? = nil
        if let r = kv["r_frame_rate"] {
            let nd = r.split(separator: "/")
            if nd.count == 2, let n = Float(nd[0]), let d = Float(nd[1]), d > 0, n > 0 { fps = n / d }
        }
        return (w, h, fps, kv["nb_frames"].flatMap { Int($0) })
    }

    /// The next frame, or nil at the end.
    func next() throws -> RGBImage? {
        if let m = maxFrames, delivered >= m { return nil }
        if !files.isEmpty || process == nil {
            guard index < files.count else { return nil }
            let img = try ImageFile.read(path: files[index])
            guard img.width == width && img.height == height else {
                throw DiffEditError.invalidArgument("--input: frame \(files[index]) is \(img.width)x\(img.height); the first frame is \(width)x\(height)")
            }
            index += 1
            delivered += 1
            return img
        }
        let need = width * height * 3
        let buf = Subprocess.read(process!.stdoutFD, count: need)
        if buf.isEmpty { return nil }
        guard buf.count == need else {
            throw DiffEditError.io("--input: the video ended inside a frame (\(buf.count) of \(need) bytes)")
        }
        delivered += 1
        return RGBImage(width: width, height: height, pixels: buf)
    }

    func close() {
        if let p = process, p.isRunning { p.terminate() }
        process?.wait()
        process = nil
    }
}
