import Foundation
import XCTest
@testable import DiffEdit

/// NaN/Inf weights and a decoded output that overflows are `.model` errors naming the tensor, not an all-black
/// image returned as success (issue 21).
final class HardeningNumericTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = try IOTestSupport.tempDir("num") + "/sd1"
        try FileManager.default.copyItem(atPath: IOTestSupport.fixtures + "/sd1", toPath: dir)
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: (dir as NSString).deletingLastPathComponent) }

    var vaeFile: String { dir + "/vae/diffusion_pytorch_model.safetensors" }

    /// Overwrites element `index` of F16 tensor `name` in `file` with the f16 bit pattern `bits`.
    func poke(_ file: String, _ name: String, index: Int, bits: UInt16) throws {
        let st = try SafetensorsFile(path: file)
        let e = try XCTUnwrap(st.entries[name])
        XCTAssertEqual(e.dtype, "F16")
        var data = try Data(contentsOf: URL(fileURLWithPath: file))
        let headerLen = data.prefix(8).withUnsafeBytes { Int($0.loadUnaligned(as: UInt64.self).littleEndian) }
        let at = 8 + headerLen + e.begin + 2 * index
        data[at] = UInt8(bits & 0xFF)
        data[at + 1] = UInt8(bits >> 8)
        try data.write(to: URL(fileURLWithPath: file))
    }

    func testNaNAndInfWeightsAreRefusedNamingTheTensor() throws {
        try poke(vaeFile, "decoder.conv_out.weight", index: 5, bits: 0x7E00)   // NaN
        IOTestSupport.assertThrows("model", [vaeFile, "tensor decoder.conv_out.weight", "1 NaN", "element 5"]) {
            _ = try StableDiffusionModel.load(path: self.dir, backend: .cpu)
        }
        try FileManager.default.removeItem(atPath: vaeFile)
        try FileManager.default.copyItem(atPath: IOTestSupport.fixtures + "/sd1/vae/diffusion_pytorch_model.safetensors", toPath: vaeFile)
        try poke(vaeFile, "encoder.conv_in.weight", index: 0, bits: 0xFC00)    // -Inf
        IOTestSupport.assertThrows("model", ["tensor encoder.conv_in.weight", "1 infinite", "element 0"]) {
            _ = try StableDiffusionModel.load(path: self.dir, backend: .cpu)
        }
    }

    func testTensorLoadCheck() throws {
        var v: [Float] = [0, 1, -2, .greatestFiniteMagnitude, -.leastNonzeroMagnitude]
        XCTAssertFalse(NumericHealth.hasNonFinite(v, v.count))
        v[3] = .infinity
        XCTAssertTrue(NumericHealth.hasNonFinite(v, v.count))
        v[3] = -.nan
        XCTAssertTrue(NumericHealth.hasNonFinite(v, v.count))
        let big = [Float](repeating: 1, count: 200_000) + [.nan]
        XCTAssertTrue(NumericHealth.hasNonFinite(big, big.count))
        XCTAssertFalse(NumericHealth.hasNonFinite(big, big.count - 1))
    }

    /// Finite weights whose decoded output overflows (a scaling_factor of 1e-38 multiplies the latents by 1e38)
    /// used to give an all-black image; now the generate fails naming the VAE output.
    func testOverflowingDecodeIsAnError() throws {
        let cfg = dir + "/vae/config.json"
        var obj = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: cfg))) as! [String: Any]
        obj["scaling_factor"] = 1e-38
        try JSONSerialization.data(withJSONObject: obj).write(to: URL(fileURLWithPath: cfg))
        let m = try StableDiffusionModel.load(path: dir, backend: .cpu)
        var o = GenerateOptions(prompt: "a cat")
        o.width = 32; o.height = 32; o.steps = 2
        IOTestSupport.assertThrows("model", ["VAE decoder output", "NaN"]) { _ = try m.generate(o) }
        // the same model with a sane factor decodes
        obj["scaling_factor"] = 0.18215
        try JSONSerialization.data(withJSONObject: obj).write(to: URL(fileURLWithPath: cfg))
        XCTAssertEqual(try StableDiffusionModel.load(path: dir, backend: .cpu).generate(o).image.width, 32)
    }
}
