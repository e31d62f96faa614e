import Foundation
import XCTest
@testable import DiffEdit

/// The model-size estimate from the configs (issue 21) against the real parameter counts, and the load-time
/// check against max_memory: a model whose weights cannot fit is refused before any tensor is read.
final class ModelSizeEstimateTests: XCTestCase {
    /// Elements of every tensor of a safetensors file.
    func elements(_ path: String) throws -> Int {
        let f = try SafetensorsFile(path: path)
        return f.entries.values.reduce(0) { $0 + $1.count }
    }

    func testEstimateMatchesTheFixturesTensorCounts() throws {
        for model in ["sd1", "sd2"] {
            let dir = IOTestSupport.fixtures + "/" + model
            let ck = try CheckpointLoader.load(path: dir)
            let e = ModelSizeEstimate(unet: ck.unetConfig, vae: ck.vaeConfig, text: ck.textConfig)
            let unet = try elements(dir + "/unet/diffusion_pytorch_model.safetensors")
            let vae = try elements(dir + "/vae/diffusion_pytorch_model.safetensors")
            let text = try elements(dir + "/text_encoder/model.safetensors")
            // the estimate leaves out biases and norms: on these tiny models (16-64 channels) they are a
            // larger share than on real ones, so the bound is looser here than for SD 1.5 below
            for (name, est, real) in [("unet", e.unetParameters, unet), ("vae", e.vaeParameters, vae), ("text", e.textParameters, text)] {
                let r = Double(est) / Double(real)
                XCTAssertTrue(r > 0.7 && r < 1.3, "\(model) \(name): estimate \(est), real \(real) (ratio \(r))")
            }
        }
    }

    /// A UNet with per-block resnet counts (layers_per_block [2, 1, 1]): the estimate follows each block's.
    func testEstimateWithPerBlockLayerCounts() throws {
        let dir = IOTestSupport.fixtures + "/unet_lpb/unet"
        let u = try JSONDecoder().decode(UNetConfig.self, from: Data(contentsOf: URL(fileURLWithPath: dir + "/config.json")))
        let real = try elements(dir + "/diffusion_pytorch_model.safetensors")
        let est = ModelSizeEstimate(unet: u, vae: VAEConfig(), text: CLIPTextConfig()).unetParameters
        var one = u
        one.layers_per_block = .int(1)
        let estOne = ModelSizeEstimate(unet: one, vae: VAEConfig(), text: CLIPTextConfig()).unetParameters
        let r = Double(est) / Double(real)
        XCTAssertTrue(r > 0.7 && r < 1.3, "estimate \(est), real \(real) (ratio \(r))")
        XCTAssertGreaterThan(est, estOne, "the extra resnets at the first level count")
    }

    /// SD 1.5's published parameter counts: UNet 859.52M, VAE 83.65M, CLIP ViT-L/14 text 123.06M.
    func testEstimateOfStableDiffusion15() {
        var u = UNetConfig()   // the defaults are SD 1.5's UNet
        u.sample_size = 64
        let e = ModelSizeEstimate(unet: u, vae: VAEConfig(), text: CLIPTextConfig())
        for (name, est, real) in [("unet", e.unetParameters, 859_520_964), ("vae", e.vaeParameters, 83_653_863),
                                  ("text", e.textParameters, 123_060_480)] {
            let r = Double(est) / Double(real)
            XCTAssertTrue(r > 0.95 && r < 1.05, "\(name): estimate \(est), published \(real) (ratio \(r))")
        }
        XCTAssertEqual(e.bytes, 4 * e.parameters)
        print("ModelSizeEstimate SD 1.5: unet \(e.unetParameters) vae \(e.vaeParameters) text \(e.textParameters) = \(e.parameters)")
    }

    /// SDXL base 1.0's published counts: UNet 2,567,463,684; text encoders 123,060,480 + 694,659,840 (with its
    /// projection); VAE 83,653,863.
    func testEstimateOfSDXLBase() {
        var u = UNetConfig()
        u.block_out_channels = [320, 640, 1280]
        u.down_block_types = ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"]
        u.up_block_types = ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"]
        u.transformer_layers_per_block = .list([1, 2, 10])
        u.cross_attention_dim = 2048
        u.sample_size = 128
        u.addition_embed_type = "text_time"
        u.addition_time_embed_dim = 256
        u.projection_class_embeddings_input_dim = 2816
        var t2 = CLIPTextConfig()
        t2.hidden_size = 1280; t2.intermediate_size = 5120; t2.num_hidden_layers = 32; t2.projection_dim = 1280
        let e = ModelSizeEstimate(unet: u, vae: VAEConfig(), text: CLIPTextConfig(), text2: t2)
        for (name, est, real) in [("unet", e.unetParameters, 2_567_463_684), ("text", e.textParameters, 123_060_480 + 694_659_840)] {
            let r = Double(est) / Double(real)
            XCTAssertTrue(r > 0.95 && r < 1.05, "\(name): estimate \(est), published \(real) (ratio \(r))")
        }
        print("ModelSizeEstimate SDXL: unet \(e.unetParameters) vae \(e.vaeParameters) text \(e.textParameters) = \(e.parameters)")
    }

    func testHostileConfigsSaturateInsteadOfTrapping() {
        var u = UNetConfig()
        u.layers_per_block = .int(Int.max)
        u.block_out_channels = [Int.max, 1 << 40]
        u.transformer_layers_per_block = .list([])
        var v = VAEConfig()
        v.layers_per_block = Int.max
        var t = CLIPTextConfig()
        t.vocab_size = Int.max
        let e = ModelSizeEstimate(unet: u, vae: v, text: t)
        XCTAssertEqual(e.parameters, Int.max)
        XCTAssertEqual(e.bytes, Int.max)
        u.block_out_channels = []
        XCTAssertEqual(ModelSizeEstimate(unet: u, vae: VAEConfig(), text: CLIPTextConfig()).unetParameters, 0)
        // per-block lists that are empty or huge
        var l = UNetConfig()
        l.layers_per_block = .list([])
        XCTAssertGreaterThan(ModelSizeEstimate(unet: l, vae: VAEConfig(), text: CLIPTextConfig()).unetParameters, 0)
        l.layers_per_block = .list([1, Int.max])
        XCTAssertEqual(ModelSizeEstimate(unet: l, vae: VAEConfig(), text: CLIPTextConfig()).unetParameters, Int.max)
    }

    func testLoadRefusesWeightsAboveMaxMemoryBeforeReadingThem() throws {
        let dir = IOTestSupport.fixtures + "/sd1"
        let ck = try CheckpointLoader.load(path: dir)
        let need = ModelSizeEstimate(unet: ck.unetConfig, vae: ck.vaeConfig, text: ck.textConfig).bytes
        IOTestSupport.assertThrows("outOfMemory", [dir, "\(need) bytes", "max_memory, \(need - 1) bytes", "raise max_memory"]) {
            _ = try StableDiffusionModel.load(path: dir, backend: .cpu, maxMemory: need - 1)
        }
        let m = try StableDiffusionModel.load(path: dir, backend: .cpu, maxMemory: need + (64 << 20))
        XCTAssertEqual(m.estimatedWeightBytes, need)
        // a request must fit beside the weights: 64 MB leave room for 64x64, not for 2048x2048
        XCTAssertNoThrow(try m.checkWorkingSet(width: 64, height: 64, unetItems: 2))
        IOTestSupport.assertThrows("outOfMemory", ["2048x2048", "raise max_memory"]) {
            try m.checkWorkingSet(width: 2048, height: 2048, unetItems: 2)
        }
    }
}
