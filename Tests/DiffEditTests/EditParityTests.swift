import Foundation
import XCTest
@testable import DiffEdit

/// Shared helpers of the Edit*Tests: the sd1 fixture model as EditModelParts, the edit fixtures made by
/// tools/make_edit_fixtures.py, error measures.
enum EditTestSupport {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures").path
    static var editFixtures: String {
        ProcessInfo.processInfo.environment["DIFFEDIT_EDIT_FIXTURES"] ?? fixtures + "/edit"
    }

    nonisolated(unsafe) private static var cache: [String: StableDiffusionModel] = [:]
    private static let lock = NSLockLite()

    /// A model folder, loaded once per path and backend (a process-lifetime backend: Backend.cpu, Backend.cpuF32,
    /// ResidentBackendTests.staged).
    static func model(_ path: String, backend: Backend = .cpu) throws -> StableDiffusionModel {
        let key = "\(ObjectIdentifier(backend))|" + path
        if let m = lock.withLock({ cache[key] }) { return m }
        let m = try StableDiffusionModel.load(path: path, backend: backend)
        lock.withLock { cache[key] = m }
        return m
    }

    static func sd1() throws -> StableDiffusionModel { try model(fixtures + "/sd1") }
    static func editor() throws -> ImageEditor { ImageEditor(model: try sd1()) }

    static func manifest() throws -> [String: Any] {
        let d = try Data(contentsOf: URL(fileURLWithPath: editFixtures + "/manifest.json"))
        return try JSONSerialization.jsonObject(with: d) as! [String: Any]
    }

    static func relErr(_ a: Tensor, _ b: Tensor) -> Float {
        precondition(a.count == b.count, "relErr: \(a.shape) vs \(b.shape)")
        var num: Double = 0, den: Double = 0
        for i in 0..<a.count {
            let d = Double(a.data[i] - b.data[i]); num += d * d; den += Double(b.data[i]) * Double(b.data[i])
        }
        return Float((num / max(den, 1e-30)).squareRoot())
    }

    /// PSNR (dB) of an 8-bit image against a [1, 3, H, W] reference in [0, 1].
    static func psnr(_ img: RGBImage, _ ref: Tensor) -> Double {
        let hw = img.width * img.height
        var mse: Double = 0
        for i in 0..<hw { for c in 0..<3 {
            let d = Double(img.pixels[3 * i + c]) / 255 - Double(ref.data[c * hw + i]); mse += d * d
        } }
        mse /= Double(3 * hw)
        return mse == 0 ? 200 : 10 * log10(1 / mse)
    }

    /// EditOptions from a manifest case.
    static func options(_ c: [String: Any], steps: Int, guidance: Float) -> EditOptions {
        var o = EditOptions()
        o.method = EditMethod(rawValue: c["method"] as! String)!
        o.prompt = c["prompt"] as! String
        o.sourcePrompt = c["source_prompt"] as? String
        o.negativePrompt = c["negative_prompt"] as? String
        o.steps = steps
        o.guidance = guidance
        if let s = c["strength"] as? Double { o.strength = Float(s) }
        if let s = c["image_guidance"] as? Double { o.imageGuidance = Float(s) }
        if let s = c["cross_replace_steps"] as? Double { o.crossReplaceSteps = Float(s) }
        if let s = c["self_replace_steps"] as? Double { o.selfReplaceSteps = Float(s) }
        if let rw = c["reweight"] as? [String: Double] { o.reweight = rw.mapValues { Float($0) } }
        if let lb = c["local_blend"] as? Bool { o.localBlend = lb }
        if let di = c["direct_inversion"] as? Bool { o.directInversion = di }
        if let k = c["blend_dilation"] as? Int { o.blendDilation = k }
        return o
    }
}

/// Parity of every method with diffusers / the p2p PyTorch reference (Tests/Fixtures/edit).
final class EditParityTests: XCTestCase {
    func runCase(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws -> (EditResult, String) {
        let m = try EditTestSupport.manifest()
        let cases = m["cases"] as! [String: Any]
        let c = cases[name] as! [String: Any]
        let dir = EditTestSupport.editFixtures + "/" + name
        var o = EditTestSupport.options(c, steps: m["steps"] as! Int, guidance: Float(m["guidance"] as! Double))
        if FileManager.default.fileExists(atPath: dir + "/noise.npy") { o.initNoise = try NPY.readTensor(path: dir + "/noise.npy") }
        let model = (c["model"] as? String).map { EditTestSupport.editFixtures + "/" + $0 } ?? EditTestSupport.fixtures + "/sd1"
        let editor = ImageEditor(model: try EditTestSupport.model(model))
        let input = try ImageFile.read(path: dir + "/input.png")
        let res = try editor.edit(input, options: o, progress: ProgressReporter())
        let ref = try NPY.readTensor(path: dir + "/latents.npy")
        let err = EditTestSupport.relErr(res.latents!, ref)
        XCTAssertLessThan(err, 1e-3, "\(name): final latents relative error", file: file, line: line)
        let p = EditTestSupport.psnr(res.image, try NPY.readTensor(path: dir + "/image.npy"))
        XCTAssertGreaterThan(p, 40, "\(name): image PSNR", file: file, line: line)
        print("edit parity \(name): latents rel err \(err), PSNR \(p) dB")
        return (res, dir)
    }

    func testSDEditMatchesImg2ImgPipeline() throws { _ = try runCase("sdedit") }
    func testDDIMInversionMatchesDiffusers() throws { _ = try runCase("ddim") }
    func testInstructMatchesInstructPix2PixPipeline() throws { _ = try runCase("instruct") }

    func p2pCase(_ name: String) throws {
        let (res, dir) = try runCase(name)
        let maskPath = dir + "/mask.npy"
        if FileManager.default.fileExists(atPath: maskPath) {
            let ref = try NPY.readTensor(path: maskPath)                  // [1, 1, h, w] latent mask
            let (h, w) = (ref.shape[2], ref.shape[3])
            let f = res.image.height / h
            let got = res.mask!
            var diff = 0
            for y in 0..<h { for x in 0..<w where (got.pixels[(y * f) * got.width + x * f] > 127) != (ref.data[y * w + x] > 0.5) { diff += 1 } }
            XCTAssertEqual(diff, 0, "\(name): LocalBlend mask differs at \(diff) of \(h * w) latent pixels")
        }
    }
    func testP2PWordSwapMatchesReference() throws { try p2pCase("p2p_swap") }
    func testP2PRefineMatchesReference() throws { try p2pCase("p2p_refine") }
    func testP2PReweightMatchesReference() throws { try p2pCase("p2p_reweight") }
    func testP2PDirectInversionMatchesReference() throws { try p2pCase("p2p_direct") }
}
