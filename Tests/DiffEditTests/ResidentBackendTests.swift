import CDiffKernels
import Foundation
import XCTest
@testable import DiffEdit

/// Device-resident activations (issue 6). On a resident backend op outputs live in backend memory
/// and come back to the host only when host code reads them. The CPU provider in staged mode runs
/// exactly these code paths with host memory standing in for the device (its alloc slot hands out
/// separate blocks, download copies), so a missed download, a stale read or a copy that went to the
/// wrong place shows up here as a different image, on machines without a GPU.
///
/// f32 compute on both sides (F32ComputeSupport.swift): the staged provider holds weights as uploaded f32
/// constants, so under compute auto its GEMMs stay sgemm while the plain backend reads f16 weights in bf16 terms.
final class ResidentBackendTests: XCTestCase {
    static let staged = try! Backend(name: "cpu", options: .f32Compute(staged: true))
    static func plainModel(_ path: String) throws -> StableDiffusionModel { try EditTestSupport.model(path, backend: .cpuF32) }
    static func stagedModel(_ path: String) throws -> StableDiffusionModel { try EditTestSupport.model(path, backend: staged) }

    static let toyInstruct = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("models/toy-instruct").path

    func testStagedBackendIsResidentAndPlainCPUIsNot() throws {
        XCTAssertTrue(Self.staged.resident)
        XCTAssertFalse(Backend.cpu.resident)
        let t = try Self.staged.output([2, 3])
        XCTAssertTrue(t.isOnDevice)
        XCTAssertFalse(try Backend.cpu.output([2, 3]).isOnDevice)
    }

    /// Residency and constants are what the provider reports (de_backend_caps), not a guess from its name.
    func testCapabilitiesComeFromTheProvider() throws {
        var o = BackendOptions()
        o.threads = 2
        let plain = try Backend(name: "cpu", options: o)
        o.cpuStaged = true
        let staged = try Backend(name: "cpu", options: o)
        let both = UInt32(DE_CAP_RESIDENT) | UInt32(DE_CAP_CONSTANTS)
        XCTAssertEqual(de_backend_caps(plain.raw) & both, 0)
        XCTAssertEqual(de_backend_caps(staged.raw) & both, both)
        XCTAssertNotEqual(de_backend_caps(plain.raw) & UInt32(DE_CAP_F32), 0)
        XCTAssertFalse(plain.resident); XCTAssertFalse(plain.wantsConstants)
        XCTAssertTrue(staged.resident); XCTAssertTrue(staged.wantsConstants)
        XCTAssertEqual(plain.name, "cpu"); XCTAssertEqual(staged.name, "cpu")   // same name, different facts
        XCTAssertEqual(Self.staged.resident, de_backend_caps(Self.staged.raw) & UInt32(DE_CAP_RESIDENT) != 0)
    }

    /// Constants: the plain CPU backend keeps the host tensor (no copy); the staged one copies once into
    /// its own block, ops read it by handle, and a host tensor in the same slot counts as a host operand.
    func testConstantsAreUploadedOnceAndReadByHandle() throws {
        var o = BackendOptions()
        o.threads = 2
        let plain = try Backend(name: "cpu", options: o)
        o.cpuStaged = true
        let staged = try Backend(name: "cpu", options: o)
        let w = Tensor(shape: [4, 3], values: (0..<12).map { Float($0) * 0.25 - 1 })
        let b = Tensor(shape: [4], values: [1, 2, 3, 4])
        XCTAssertTrue(try plain.constant(w, kind: .weight) === w, "plain CPU: the tensor itself")
        XCTAssertEqual(plain.stats.constants, 0)

        let cw = try staged.constant(w, kind: .weight), cb = try staged.constant(b, kind: .param)
        XCTAssertTrue(cw.storage.isConstant && cw.isOnDevice)
        XCTAssertNotEqual(cw.opData, w.opData, "staged CPU: a copy in the provider's own block")
        XCTAssertEqual(cw.toArray(), w.toArray(), "host reads see the source")
        XCTAssertTrue(try staged.constant(cw, kind: .weight) === cw, "a constant is not uploaded twice")
        XCTAssertEqual(staged.stats.constants, 2)
        XCTAssertEqual(staged.stats.constant_bytes, 64)

        let x = try staged.onDevice(Tensor(shape: [5, 3], values: (0..<15).map { Float($0) * 0.1 }))
        let h0 = staged.stats.host_operands
        let y = try staged.linear(x, cw, cb)
        XCTAssertEqual(staged.stats.host_operands, h0, "weight and bias read by handle")
        let yHost = try staged.linear(x, w, b)
        XCTAssertEqual(staged.stats.host_operands, h0 + 2, "host weight and bias are host operands")
        // a view of a constant (AutoencoderKL's quant_conv halves) is read by handle + offset
        let half = try staged.linear(x, cw.slice0(2, 2), cb.slice0(2, 2))
        XCTAssertEqual(staged.stats.host_operands, h0 + 2)
        // (reading x on the host below moves it there: checks of the counter come first)
        XCTAssertEqual(y.toArray(), yHost.toArray())
        XCTAssertEqual(y.toArray(), try plain.linear(x.copy(), w, b).toArray())
        XCTAssertEqual(half.toArray(), try plain.linear(x.copy(), w.slice0(2, 2), b.slice0(2, 2)).toArray())
    }

    /// A model loaded on a backend that wants constants uploads every weight once at load; a UNet
    /// evaluation then reads no host memory at all (on CUDA: no host-to-device copy in a denoising step),
    /// including the Transformer2DModel proj_in/proj_out GEMMs that share one weight over the batch.
    func testModelWeightsUploadedOnceAndUNetStepReadsNoHostMemory() throws {
        var o = BackendOptions.f32Compute(staged: true)
        o.threads = 2
        let be = try Backend(name: "cpu", options: o)
        let model = try StableDiffusionModel.load(path: EditTestSupport.fixtures + "/sd1", backend: be)
        let loaded = be.stats
        XCTAssertGreaterThan(loaded.constants, 50, "model weights uploaded at load")
        let c = model.unetConfig, s = c.sample_size
        var rng = SeededNormal(seed: 9)
        let x = try be.onDevice(Tensor(shape: [2, c.in_channels, s, s], values: (0..<(2 * c.in_channels * s * s)).map { _ in rng.next() }))
        let ehs = try be.onDevice(Tensor(shape: [2, 7, c.cross_attention_dim], values: (0..<(14 * c.cross_attention_dim)).map { _ in rng.next() }))
        let h0 = be.stats.host_operands
        let y1 = try model.unet.forward(x, timesteps: [321], encoderHiddenStates: ehs)
        XCTAssertEqual(be.stats.host_operands - h0, 0, "a UNet step met host memory (a weight not uploaded?)")
        let y2 = try model.unet.forward(x, timesteps: [321], encoderHiddenStates: ehs)
        XCTAssertEqual(be.stats.constants, loaded.constants, "no constant uploaded after load")
        XCTAssertEqual(be.stats.constant_bytes, loaded.constant_bytes)
        XCTAssertEqual(y1.toArray(), y2.toArray())
        let plain = try Self.plainModel(EditTestSupport.fixtures + "/sd1")
        XCTAssertEqual(y1.toArray(), try plain.unet.forward(x.copy(), timesteps: [321], encoderHiddenStates: ehs.copy()).toArray(),
                       "constants change no number")
    }

    /// The strided copy op against a host loop: the UNet upsampler's 2x2 interleave, channel
    /// concatenation, and an offset gather.
    func testCopyOpMatchesHostLoops() throws {
        let be = Self.staged
        let (n, c, h, w) = (2, 3, 4, 5)
        let pw = w + 1, plane = (h + 1) * pw
        let phases = Tensor(shape: [n, 4 * c, h + 1, w + 1], values: (0..<(n * 4 * c * plane)).map { Float($0) * 0.5 - 7 })
        let y = try be.output([n, c, 2 * h, 2 * w])
        for p in 0..<2 { for q in 0..<2 {
            try be.copyStrided(shape: [n, c, h, w], from: phases, fromOffset: (p * 2 + q) * c * plane + p * pw + q,
                               fromStrides: [4 * c * plane, plane, pw, 1],
                               to: y, toOffset: p * 2 * w + q, toStrides: [c * 4 * h * w, 4 * h * w, 4 * w, 2])
        } }
        XCTAssertTrue(y.isOnDevice)
        let got = y.toArray()
        var bad = 0
        for b in 0..<n { for ch in 0..<c { for i in 0..<(2 * h) { for j in 0..<(2 * w) {
            let p = i % 2, q = j % 2
            let want = phases.data[((b * 4 + p * 2 + q) * c + ch) * plane + (i / 2 + p) * pw + (j / 2 + q)]
            if got[((b * c + ch) * 2 * h + i) * 2 * w + j] != want { bad += 1 }
        } } } }
        XCTAssertEqual(bad, 0, "interleave: \(bad) elements differ")

        let a = Tensor(shape: [2, 2, 1, 3], values: (0..<12).map(Float.init))
        let b2 = Tensor(shape: [2, 1, 1, 3], values: (100..<106).map(Float.init))
        let cat = try be.catChannels(a, b2)
        XCTAssertEqual(cat.shape, [2, 3, 1, 3])
        XCTAssertEqual(cat.toArray(), [0, 1, 2, 3, 4, 5, 100, 101, 102, 6, 7, 8, 9, 10, 11, 103, 104, 105])
        let plain = try Backend.cpu.catChannels(a, b2)
        XCTAssertEqual(plain.toArray(), cat.toArray())
    }

    /// A UNet evaluation never leaves the device: no download until the caller reads the result,
    /// then exactly one; and the numbers equal the plain CPU backend's bit for bit.
    func testUNetForwardStaysOnTheDeviceAndMatchesCPU() throws {
        let path = EditTestSupport.fixtures + "/sd1"
        let plain = try Self.plainModel(path), staged = try Self.stagedModel(path)
        let c = plain.unetConfig
        let s = c.sample_size
        var rng = SeededNormal(seed: 5)
        let x = Tensor(shape: [2, c.in_channels, s, s], values: (0..<(2 * c.in_channels * s * s)).map { _ in rng.next() })
        let ehs = Tensor(shape: [2, 7, c.cross_attention_dim], values: (0..<(14 * c.cross_attention_dim)).map { _ in rng.next() })
        let want = try plain.unet.forward(x, timesteps: [321], encoderHiddenStates: ehs)
        let before = TensorStorage.transferStats
        let got = try staged.unet.forward(x, timesteps: [321], encoderHiddenStates: ehs)
        let during = TensorStorage.transferStats
        XCTAssertTrue(got.isOnDevice, "the UNet output should still be in backend memory")
        XCTAssertGreaterThan(during.deviceAllocations, before.deviceAllocations)
        let values = got.toArray()
        let after = TensorStorage.transferStats
        // other tests may run concurrently in this process: compare this forward's own counts only when alone
        if during.downloads == before.downloads {
            XCTAssertEqual(after.downloads, during.downloads + 1, "reading the output downloads it once")
        }
        XCTAssertEqual(values, want.toArray(), "staged UNet output differs from the plain CPU backend")
    }

    func check(_ method: EditMethod, model: String, prompt: String, source: String? = nil,
               file: StaticString = #filePath, line: UInt = #line) throws {
        let plain = ImageEditor(model: try Self.plainModel(model))
        let staged = ImageEditor(model: try Self.stagedModel(model))
        let img = VideoEditorTests.clip(frames: 1)[0]
        var o = EditOptions()
        o.method = method
        o.prompt = prompt
        o.sourcePrompt = source
        o.steps = 3
        o.seed = 3
        let a = try plain.edit(img, options: o, progress: ProgressReporter()).image
        let b = try staged.edit(img, options: o, progress: ProgressReporter()).image
        XCTAssertEqual(a.pixels, b.pixels, "\(method): staged backend gave a different image", file: file, line: line)
    }

    func testEveryImageMethodGivesTheSameImageOnTheStagedBackend() throws {
        let sd1 = EditTestSupport.fixtures + "/sd1"
        try check(.sdedit, model: sd1, prompt: "a blue circle on a white background")
        try check(.ddim, model: sd1, prompt: "a blue circle on a white background", source: "a red circle on a white background")
        try check(.p2p, model: sd1, prompt: "a blue circle on a white background", source: "a red circle on a white background")
        guard FileManager.default.fileExists(atPath: Self.toyInstruct + "/model_index.json") else {
            throw XCTSkip("models/toy-instruct not present")
        }
        try check(.instruct, model: Self.toyInstruct, prompt: "make the circle blue")
    }

    /// Consistent video mode: cross-frame attention gathers keys and values of several frames
    /// (copy ops on the backend) and P2P injection redirects attention maps.
    func testConsistentVideoGivesTheSameFramesOnTheStagedBackend() throws {
        let sd1 = EditTestSupport.fixtures + "/sd1"
        let frames = VideoEditorTests.clip(frames: 4)
        let o = VideoEditorTests.options(.p2p, mode: .consistent, steps: 3)
        let a = try VideoEditor(model: try Self.plainModel(sd1)).edit(frames, options: o, progress: ProgressReporter())
        let b = try VideoEditor(model: try Self.stagedModel(sd1)).edit(frames, options: o, progress: ProgressReporter())
        XCTAssertEqual(a.count, b.count)
        for (i, (x, y)) in zip(a, b).enumerated() {
            XCTAssertEqual(x.pixels, y.pixels, "frame \(i) differs on the staged backend")
        }
    }
}

/// Box-Muller normals from a SplitMix64 stream (test inputs only).
struct SeededNormal {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func u() -> Float {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return (Float(z >> 40) + 0.5) / Float(1 << 24)
    }
    mutating func next() -> Float {
        let a = u(), b = u()
        return (-2 * log(a)).squareRoot() * cos(2 * .pi * b)
    }
}
