import Foundation
import XCTest
@testable import DiffEdit

/// The whole pipeline on the CUDA provider's code, run by its CPU emulation build (make test-cuda-emu:
/// build/cuda-emu/libdiffedit_cuda_emu.so through DIFFEDIT_BACKEND_PATH, started with DIFFEDIT_CUDA_EMU=1;
/// docs/cuda_emulation.md). Every kernel, cuBLASLt GEMM (fp16 operands) and cuDNN conv of a generate,
/// SDEdit, P2P with LocalBlend, InstructPix2Pix and consistent-video edit runs through the provider; the
/// images must match the CPU provider's to >= 35 dB PSNR. Skipped when the emulation build is not what
/// DIFFEDIT_BACKEND_PATH names (a plain `swift test`); CI runs it through make test-cuda-emu.
final class CUDAEmulatorPipelineTests: XCTestCase {
    static let minPSNR = 35.0

    nonisolated(unsafe) private static var cache: [String: StableDiffusionModel] = [:]
    private static let lock = NSLockLite()

    static func emulated() throws -> Backend {
        let env = ProcessInfo.processInfo.environment
        guard env["DIFFEDIT_CUDA_EMU"] == "1", let path = env["DIFFEDIT_BACKEND_PATH"],
              path.hasSuffix("libdiffedit_cuda_emu.so"), FileManager.default.fileExists(atPath: path) else {
            throw XCTSkip("the CUDA emulation build is not loaded (make test-cuda-emu runs this)")
        }
        return try Backend(name: "cuda")
    }

    /// The model on the emulated provider (one per path; its weights become the provider's constants).
    static func model(_ path: String) throws -> StableDiffusionModel {
        let be = try emulated()
        if let m = lock.withLock({ cache[path] }) { return m }
        let m = try StableDiffusionModel.load(path: path, backend: be)
        lock.withLock { cache[path] = m }
        return m
    }

    static func psnr(_ a: [UInt8], _ b: [UInt8]) -> Double {
        precondition(a.count == b.count && !a.isEmpty)
        var se = 0.0
        for (x, y) in zip(a, b) { let d = Double(x) - Double(y); se += d * d }
        let mse = se / Double(a.count)
        return mse < 1e-10 ? 99 : 10 * log10(255 * 255 / mse)
    }

    func assertClose(_ a: RGBImage, _ b: RGBImage, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.width, b.width, file: file, line: line)
        XCTAssertEqual(a.height, b.height, file: file, line: line)
        let p = Self.psnr(a.pixels, b.pixels)
        print("CUDAEmulatorPipelineTests: \(what): \(String(format: "%.1f", p)) dB")
        XCTAssertGreaterThanOrEqual(p, Self.minPSNR, "\(what): the emulated CUDA provider differs from the CPU provider",
                                    file: file, line: line)
    }

    func testTheProviderIsTheEmulatedCUDAOneWithItsConstants() throws {
        let m = try Self.model(EditTestSupport.fixtures + "/sd1")
        XCTAssertEqual(m.backend.name, "cuda")
        XCTAssertTrue(m.backend.resident && m.backend.wantsConstants)
        XCTAssertGreaterThan(m.backend.stats.constants, 0, "the weights are the provider's constants")
    }

    func testGenerateMatchesCPU() throws {
        let path = EditTestSupport.fixtures + "/sd1"
        let emu = try Self.model(path), cpu = try EditTestSupport.model(path)
        var o = GenerateOptions(prompt: "a red circle on a white background")
        o.steps = 3
        o.seed = 7
        let a = try cpu.generate(o).image, b = try emu.generate(o).image
        assertClose(a, b, "generate")
        // the bar discriminates: another seed on the CPU is far below it
        o.seed = 8
        let c = try cpu.generate(o).image
        XCTAssertLessThan(Self.psnr(a.pixels, c.pixels), Self.minPSNR - 10, "another seed should not pass the bar")
    }

    func edit(_ method: EditMethod, model path: String, prompt: String, source: String? = nil) throws {
        let cpu = ImageEditor(model: try EditTestSupport.model(path)), emu = ImageEditor(model: try Self.model(path))
        var o = EditOptions()
        o.method = method
        o.prompt = prompt
        o.sourcePrompt = source
        o.steps = 3
        o.seed = 3
        let img = VideoEditorTests.clip(frames: 1)[0]
        let a = try cpu.edit(img, options: o, progress: ProgressReporter())
        let b = try emu.edit(img, options: o, progress: ProgressReporter())
        assertClose(a.image, b.image, "\(method)")
        if let ma = a.mask, let mb = b.mask {
            XCTAssertGreaterThanOrEqual(Self.psnr(ma.pixels, mb.pixels), Self.minPSNR, "\(method): edit mask")
        }
    }

    func testSDEditMatchesCPU() throws {
        try edit(.sdedit, model: EditTestSupport.fixtures + "/sd1", prompt: "a blue circle on a white background")
    }

    func testP2PWithLocalBlendMatchesCPU() throws {
        // localBlend is on by default; "red" -> "blue" gives it blend words
        try edit(.p2p, model: EditTestSupport.fixtures + "/sd1", prompt: "a blue circle on a white background",
                 source: "a red circle on a white background")
    }

    func testInstructMatchesCPU() throws {
        guard FileManager.default.fileExists(atPath: ResidentBackendTests.toyInstruct + "/model_index.json") else {
            throw XCTSkip("models/toy-instruct not present")
        }
        _ = try Self.emulated()
        try edit(.instruct, model: ResidentBackendTests.toyInstruct, prompt: "make the circle blue")
    }

    func testConsistentVideoMatchesCPU() throws {
        let path = EditTestSupport.fixtures + "/sd1"
        let frames = VideoEditorTests.clip(frames: 2)   // a keyframe and a frame that attends to it
        let o = VideoEditorTests.options(.p2p, mode: .consistent, steps: 3)
        let a = try VideoEditor(model: try EditTestSupport.model(path)).edit(frames, options: o, progress: ProgressReporter())
        let b = try VideoEditor(model: try Self.model(path)).edit(frames, options: o, progress: ProgressReporter())
        XCTAssertEqual(a.count, b.count)
        for (i, (x, y)) in zip(a, b).enumerated() { assertClose(x, y, "video frame \(i)") }
    }
}
