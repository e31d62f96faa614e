import Foundation
import XCTest
@testable import DiffEdit

/// Issue 21: a ControlNet is in the memory accounting. Its parameters are estimated from its config
/// (`ModelSizeEstimate.controlNet`), its config's limits are checked, and `loadControlNet` refuses a net that does
/// not fit in what the model's maxMemory leaves beside the weights and the nets already loaded, before any tensor
/// is read: `.outOfMemory` naming the file and the numbers.
final class ControlNetMemoryTests: XCTestCase {
    static let dir = EditTestSupport.fixtures + "/controlnet"

    func elements(_ path: String) throws -> Int {
        try SafetensorsFile(path: path).entries.values.reduce(0) { $0 + $1.count }
    }

    func testControlNetEstimateMatchesTheFixturesAndSD15() throws {
        for name in ["cn_a", "cn_xl"] {
            let config = try ConfigFile.load(ControlNetConfig.self, path: Self.dir + "/\(name)/config.json")
            let est = ModelSizeEstimate.controlNet(config)
            let real = try elements(Self.dir + "/\(name)/diffusion_pytorch_model.safetensors")
            let r = Double(est) / Double(real)
            // tiny nets (8-32 channels): biases and norms, left out of the estimate, weigh more than on real ones
            XCTAssertTrue(r > 0.7 && r < 1.3, "\(name): estimate \(est), real \(real) (ratio \(r))")
        }
        // SD 1.5's ControlNets (lllyasviel/sd-controlnet-*): 361M parameters, 1.45 GB as f32
        var c = ControlNetConfig()
        c.unet.up_block_types = []
        let est = ModelSizeEstimate.controlNet(c)
        XCTAssertTrue(Double(est) / 361.3e6 > 0.95 && Double(est) / 361.3e6 < 1.05, "SD 1.5 ControlNet: estimate \(est)")
        var hostile = c
        hostile.unet.layers_per_block = .int(Int.max)
        hostile.conditioning_embedding_out_channels = [Int.max, Int.max]
        XCTAssertEqual(ModelSizeEstimate.controlNet(hostile), Int.max)
    }

    func testLoadRefusesANetAboveMaxMemoryAndCountsTheLoadedOnes() throws {
        let path = Self.dir + "/cn_a"
        let sd1 = EditTestSupport.fixtures + "/sd1"
        let weights = try EditTestSupport.sd1().estimatedWeightBytes
        let need = 4 * ModelSizeEstimate.controlNet(try ConfigFile.load(ControlNetConfig.self, path: path + "/config.json"))
        // max_memory just above the model's weights: the net is refused before any tensor is read
        let tight = try StableDiffusionModel.load(path: sd1, backend: .cpu, maxMemory: weights + 64)
        IOTestSupport.assertThrows("outOfMemory", [path, "the ControlNet's weights need about \(need) bytes",
                                                   "raise max_memory to at least \(weights + need) bytes"]) {
            _ = try tight.loadControlNet(path: path)
        }
        // room for one net: a second one is refused while the first is alive, and fits once it is released
        let one = try StableDiffusionModel.load(path: sd1, backend: .cpu, maxMemory: weights + need + need / 2)
        var first: ControlNetModel? = try one.loadControlNet(path: path)
        XCTAssertNotNil(first)
        IOTestSupport.assertThrows("outOfMemory", ["and the ControlNets loaded for it (\(need) bytes)"]) {
            _ = try one.loadControlNet(path: path)
        }
        first = nil
        XCTAssertNoThrow(try one.loadControlNet(path: path))
    }

    /// A ControlNet config.json is held to the limits of the UNet fields it shares (a layers_per_block of 1e9
    /// sized arrays from it) and of its own.
    func testControlNetConfigLimits() throws {
        let tmp = try IOTestSupport.tempDir("cnlimits")
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let weightsFile = Self.dir + "/cn_a/diffusion_pytorch_model.safetensors"
        let text = try String(contentsOfFile: Self.dir + "/cn_a/config.json", encoding: .utf8)
        for (field, pattern, value) in [("layers_per_block", #""layers_per_block": 2"#, "1000000000"),
                                        ("conditioning_embedding_out_channels", #""conditioning_embedding_out_channels": \[[^\]]*\]"#, "[16, 1000000000]"),
                                        ("conditioning_channels", #""conditioning_channels": 3"#, "0")] {
            let d = tmp + "/" + field
            try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
            guard let r = text.range(of: pattern, options: .regularExpression) else { return XCTFail("\(field) not in cn_a's config") }
            try text.replacingCharacters(in: r, with: "\"\(field)\": \(value)").write(toFile: d + "/config.json", atomically: true, encoding: .utf8)
            try FileManager.default.createSymbolicLink(atPath: d + "/diffusion_pytorch_model.safetensors", withDestinationPath: weightsFile)
            IOTestSupport.assertThrows("model", [d, "field \(field)"]) {
                _ = try EditTestSupport.sd1().loadControlNet(path: d)
            }
        }
    }
}
