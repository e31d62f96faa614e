import CDiffEditABI
import DiffEditC
import Foundation
import XCTest
@testable import DiffEdit

/// The library's pixel policy is the same for every entry point: one masked edit through the Swift API
/// (ImageEditor), the C ABI (diff_edit_image, called in-process: the same exports libdiffedit.so has) and the
/// CLI (`diffedit edit`, the executable next to the test bundle) gives identical bytes, for every method;
/// and outside the mask the output is the input's bytes.
final class EntryPointEqualityTests: XCTestCase {
    static let sd1 = EditTestSupport.fixtures + "/sd1"
    static let instruct = EditTestSupport.editFixtures + "/instruct/model"
    static let inpaint = EditTestSupport.editFixtures + "/inpaint/model"

    /// A 72x56 input (not the fixture's native 64x64: the native-resolution path resizes it) with stripes
    /// the VAE cannot reproduce, and a mask whose right half keeps the input.
    static func inputs() -> (RGBImage, GrayImage) {
        let (w, h) = (72, 56)
        var px = [UInt8](repeating: 0, count: w * h * 3)
        var m = [UInt8](repeating: 0, count: w * h)
        for y in 0..<h {
            for x in 0..<w {
                let i = y * w + x
                let stripe = (x / 3 + y / 5) % 2 == 0
                px[3 * i] = stripe ? 230 : UInt8(20 + x)
                px[3 * i + 1] = UInt8((x * 7 + y * 3) % 256)
                px[3 * i + 2] = stripe ? 40 : UInt8(200 - y)
                m[i] = x < w / 2 ? 255 : 0
            }
        }
        return (RGBImage(width: w, height: h, pixels: px), GrayImage(width: w, height: h, pixels: m))
    }

    struct Case {
        let model: String
        let method: EditMethod
        let cMethod: diff_edit_method
        let prompt: String
        let source: String?
    }

    static let cases = [
        Case(model: sd1, method: .sdedit, cMethod: DIFF_EDIT_METHOD_SDEDIT, prompt: "a blue circle", source: nil),
        Case(model: sd1, method: .ddim, cMethod: DIFF_EDIT_METHOD_DDIM, prompt: "a blue circle", source: "a red circle"),
        Case(model: sd1, method: .p2p, cMethod: DIFF_EDIT_METHOD_P2P, prompt: "a blue circle", source: "a red circle"),
        Case(model: instruct, method: .instruct, cMethod: DIFF_EDIT_METHOD_INSTRUCT, prompt: "make the circle blue", source: nil),
        Case(model: inpaint, method: .inpaint, cMethod: DIFF_EDIT_METHOD_INPAINT, prompt: "a blue circle", source: nil),
    ]

    func testCLIAndCABIAndSwiftAPIGiveTheSameBytes() throws {
        guard PipelineCLITests.binary != nil else { throw XCTSkip("diffedit executable not built next to the test bundle") }
        let (image, mask) = Self.inputs()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("diffedit-entry-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let inPath = dir.appendingPathComponent("in.png").path, maskPath = dir.appendingPathComponent("mask.png").path
        try ImageFile.write(image, path: inPath)
        try ImageFile.write(mask, path: maskPath)
        let keep = (0..<mask.pixels.count).filter { mask.pixels[$0] == 0 }

        for c in Self.cases {
            let label = "\(c.method.rawValue)"
            // Swift API
            var o = EditOptions()
            o.method = c.method; o.prompt = c.prompt; o.sourcePrompt = c.source; o.steps = 3; o.seed = 7; o.mask = mask
            let swift = try ImageEditor(model: try EditTestSupport.model(c.model)).edit(image, options: o, progress: ProgressReporter())

            // C ABI, in-process
            let (abiImage, abiMask) = try Self.cabi(c, image: image, mask: mask)

            // CLI
            let outPath = dir.appendingPathComponent("out-\(label).png").path
            let moPath = dir.appendingPathComponent("mask-\(label).png").path
            var args = ["edit", "--model", c.model, "--input", inPath, "--mask", maskPath, "--method", c.method.rawValue,
                        "--prompt", c.prompt, "--steps", "3", "--seed", "7", "--backend", "cpu", "--quiet",
                        "--output", outPath, "--mask-out", moPath]
            if let s = c.source { args += ["--source-prompt", s] }
            let r = try PipelineCLITests.run(args)
            XCTAssertEqual(r.status, 0, "\(label): \(r.stderr)")
            let cliImage = try ImageFile.read(path: outPath), cliMask = try ImageFile.readGray(path: moPath)

            XCTAssertEqual(swift.image.pixels, abiImage.pixels, "\(label): Swift API and C ABI differ")
            XCTAssertEqual(swift.image.pixels, cliImage.pixels, "\(label): Swift API and CLI differ")
            XCTAssertEqual(swift.mask?.pixels, abiMask.pixels, "\(label): mask_out differs (C ABI)")
            XCTAssertEqual(swift.mask?.pixels, cliMask.pixels, "\(label): --mask-out differs (CLI)")
            // the policy itself: kept pixels are the input's bytes, and the edit did change the masked half
            let keptChanged = keep.filter { i in (0..<3).contains { swift.image.pixels[3 * i + $0] != image.pixels[3 * i + $0] } }
            XCTAssertEqual(keptChanged.count, 0, "\(label): \(keptChanged.count) kept pixels changed")
            let editedChanged = (0..<mask.pixels.count).filter { i in
                mask.pixels[i] == 255 && (0..<3).contains { swift.image.pixels[3 * i + $0] != image.pixels[3 * i + $0] }
            }
            XCTAssertGreaterThan(editedChanged.count, keep.count / 4, "\(label): the edit changed almost nothing")
        }
    }

    /// The consistent video method through VideoEditor, diff_edit_video and `diffedit video` (a frame folder):
    /// the same bytes for every frame. 5 frames of 72x56 (resized: the native-resolution policy applies),
    /// windows of 4 (the C ABI's default lookahead 3, the CLI's default keyframe interval 4).
    func testVideoThroughSwiftCABIAndCLIGivesTheSameBytes() throws {
        guard PipelineCLITests.binary != nil else { throw XCTSkip("diffedit executable not built next to the test bundle") }
        let (base, _) = Self.inputs()
        let frames = (0..<5).map { f in
            RGBImage(width: base.width, height: base.height, pixels: base.pixels.enumerated().map { i, v in
                (i / 3) % base.width < 8 ? UInt8((Int(v) + 9 * f) % 256) : v   // a strip that changes per frame
            })
        }
        for (method, cMethod) in [(EditMethod.sdedit, DIFF_EDIT_METHOD_SDEDIT), (.p2p, DIFF_EDIT_METHOD_P2P)] {
            let c = Case(model: Self.sd1, method: method, cMethod: cMethod, prompt: "a blue circle",
                         source: method == .p2p ? "a red circle" : nil)
            var o = VideoOptions()
            o.edit.method = method; o.edit.prompt = c.prompt; o.edit.sourcePrompt = c.source; o.edit.steps = 2; o.edit.seed = 7
            let swift = try VideoEditor(model: try EditTestSupport.model(c.model)).edit(frames, options: o, progress: ProgressReporter())
            let abi = try Self.cabiVideo(c, frames: frames)

            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("diffedit-video-\(getpid())-\(method.rawValue)")
            let ind = dir.appendingPathComponent("in"), outd = dir.appendingPathComponent("out")
            try FileManager.default.createDirectory(at: ind, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            for (i, f) in frames.enumerated() { try ImageFile.write(f, path: ind.appendingPathComponent(String(format: "frame_%05d.png", i)).path) }
            var args = ["video", "--model", c.model, "--input", ind.path, "--output", outd.path, "--method", method.rawValue,
                        "--prompt", c.prompt, "--steps", "2", "--seed", "7", "--backend", "cpu", "--quiet"]
            if let s = c.source { args += ["--source-prompt", s] }
            let r = try PipelineCLITests.run(args)
            XCTAssertEqual(r.status, 0, "\(method): \(r.stderr)")
            for i in 0..<frames.count {
                let cliFrame = try ImageFile.read(path: outd.appendingPathComponent(String(format: "frame_%05d.png", i)).path)
                XCTAssertEqual(swift[i].pixels, abi[i].pixels, "\(method) frame \(i): VideoEditor and diff_edit_video differ")
                XCTAssertEqual(swift[i].pixels, cliFrame.pixels, "\(method) frame \(i): VideoEditor and `diffedit video` differ")
            }
            XCTAssertNotEqual(swift[0].pixels, frames[0].pixels, "\(method): the edit changed nothing")
        }
    }

    /// `body` with a model loaded from `path` on the CPU through diff_edit_model_load and `contexts` contexts of it
    /// (diff_edit_ctx_create); everything is freed afterwards.
    static func withCABI<T>(model path: String, contexts: Int = 1, _ body: ([OpaquePointer]) throws -> T) throws -> T {
        var mp = diff_edit_model_params()
        diffEditModelParamsDefault(&mp)
        var model: OpaquePointer? = nil
        let st = path.withCString { p -> diff_edit_status in
            "cpu".withCString { be in mp.path = p; mp.backend = be; return diffEditModelLoad(&mp, &model) }
        }
        guard st == DIFF_EDIT_OK, let m = model else {
            throw DiffEditError.model("diff_edit_model_load: \(String(cString: diffEditLastError(nil)))")
        }
        defer { diffEditModelFree(m) }
        var ctxs: [OpaquePointer] = []
        defer { ctxs.forEach { diffEditCtxFree($0) } }
        for _ in 0..<contexts {
            var ctx: OpaquePointer? = nil
            guard diffEditCtxCreate(m, &ctx) == DIFF_EDIT_OK, let cx = ctx else { throw DiffEditError.model("diff_edit_ctx_create failed") }
            ctxs.append(cx)
        }
        return try body(ctxs)
    }

    /// diff_edit_video (RGB8 buffers) on a fresh model and context.
    static func cabiVideo(_ c: Case, frames: [RGBImage]) throws -> [RGBImage] {
        try withCABI(model: c.model) { try cabiVideo(c, frames: frames, ctx: $0[0]) }
    }

    static func cabiVideo(_ c: Case, frames: [RGBImage], ctx cx: OpaquePointer) throws -> [RGBImage] {
        let (w, h) = (frames[0].width, frames[0].height)
        let n = w * h * 3
        let inMem = UnsafeMutablePointer<UInt8>.allocate(capacity: n * frames.count)
        let outMem = UnsafeMutablePointer<UInt8>.allocate(capacity: n * frames.count)
        defer { inMem.deallocate(); outMem.deallocate() }
        for (i, f) in frames.enumerated() { f.pixels.withUnsafeBufferPointer { (inMem + i * n).update(from: $0.baseAddress!, count: n) } }
        var ins = (0..<frames.count).map { i in
            diff_edit_buffer(width: UInt32(w), height: UInt32(h), stride: UInt32(3 * w), format: DIFF_EDIT_RGB8, data: UnsafeMutableRawPointer(inMem + i * n))
        }
        var outs = (0..<frames.count).map { i in
            diff_edit_buffer(width: UInt32(w), height: UInt32(h), stride: UInt32(3 * w), format: DIFF_EDIT_RGB8, data: UnsafeMutableRawPointer(outMem + i * n))
        }
        var p = diff_edit_params()
        diffEditParamsDefault(&p)
        let status = c.prompt.withCString { pr in
            (c.source ?? "").withCString { sp -> diff_edit_status in
                p.method = c.cMethod; p.prompt = pr; p.source_prompt = c.source == nil ? nil : sp; p.steps = 2; p.seed = 7
                return diffEditVideo(cx, &p, &ins, UInt32(frames.count), &outs)
            }
        }
        guard status == DIFF_EDIT_OK else { throw DiffEditError.backend("diff_edit_video: \(String(cString: diffEditLastError(cx)))") }
        return (0..<frames.count).map { i in
            RGBImage(width: w, height: h, pixels: Array(UnsafeBufferPointer(start: outMem + i * n, count: n)))
        }
    }

    /// The edit through diff_edit_model_load / diff_edit_image (RGB8 buffers), and its mask_out.
    static func cabi(_ c: Case, image: RGBImage, mask: GrayImage) throws -> (RGBImage, GrayImage) {
        try withCABI(model: c.model) { try cabi(c, image: image, mask: mask, ctx: $0[0]) }
    }

    static func cabi(_ c: Case, image: RGBImage, mask: GrayImage, ctx cx: OpaquePointer) throws -> (RGBImage, GrayImage) {
        var inPx = image.pixels, outPx = [UInt8](repeating: 0, count: image.pixels.count)
        var mPx = mask.pixels, moPx = [UInt8](repeating: 0, count: mask.pixels.count)
        let (w, h) = (UInt32(image.width), UInt32(image.height))
        let status: diff_edit_status = inPx.withUnsafeMutableBytes { ib in outPx.withUnsafeMutableBytes { ob in
            mPx.withUnsafeMutableBytes { mb in moPx.withUnsafeMutableBytes { mob in
                var inBuf = diff_edit_buffer(width: w, height: h, stride: 3 * w, format: DIFF_EDIT_RGB8, data: ib.baseAddress)
                var outBuf = diff_edit_buffer(width: w, height: h, stride: 3 * w, format: DIFF_EDIT_RGB8, data: ob.baseAddress)
                var mBuf = diff_edit_buffer(width: w, height: h, stride: w, format: DIFF_EDIT_GRAY8, data: mb.baseAddress)
                var moBuf = diff_edit_buffer(width: w, height: h, stride: w, format: DIFF_EDIT_GRAY8, data: mob.baseAddress)
                var p = diff_edit_params()
                diffEditParamsDefault(&p)
                return c.prompt.withCString { pr in
                    (c.source ?? "").withCString { sp in
                        withUnsafePointer(to: &mBuf) { mptr in
                            p.method = c.cMethod; p.prompt = pr; p.source_prompt = c.source == nil ? nil : sp
                            p.steps = 3; p.seed = 7; p.mask = mptr
                            return withUnsafeMutablePointer(to: &moBuf) { moptr in
                                p.mask_out = moptr
                                return diffEditImage(cx, &p, &inBuf, &outBuf)
                            }
                        }
                    }
                }
            } }
        } }
        guard status == DIFF_EDIT_OK else { throw DiffEditError.backend("diff_edit_image: \(String(cString: diffEditLastError(cx)))") }
        return (RGBImage(width: image.width, height: image.height, pixels: outPx),
                GrayImage(width: image.width, height: image.height, pixels: moPx))
    }
}
