import Foundation
import XCTest
@testable import DiffEdit
import DiffEditBench

/// Loading errors name the tensor or field at fault; bad inputs throw; random weights build full models.
final class ModelLoadingTests: XCTestCase {
    static func sd1UNet() throws -> (UNetConfig, DictionaryWeightSource) {
        let cfg = try ModelParityTests.config(UNetConfig.self, "sd1/unet/config.json")
        let file = try SafetensorsFile(path: ModelParityTests.path("sd1/unet/diffusion_pytorch_model.safetensors"))
        var dict: [String: Tensor] = [:]
        for n in file.names { dict[n] = try file.tensor(n) }
        return (cfg, DictionaryWeightSource(origin: "sd1 unet", tensors: dict))
    }

    func assertModelError(_ body: @autoclosure () throws -> Any, contains: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { e in
            guard let de = e as? DiffEditError else { return XCTFail("not a DiffEditError: \(e)", file: file, line: line) }
            XCTAssertTrue(de.message.contains(contains), "message \"\(de.message)\" lacks \"\(contains)\"", file: file, line: line)
        }
    }

    func testMissingTensorIsNamed() throws {
        let (cfg, w) = try Self.sd1UNet()
        w.tensors["up_blocks.1.attentions.2.transformer_blocks.0.attn2.to_k.weight"] = nil
        assertModelError(try UNet2DConditionModel(config: cfg, weights: w, backend: .cpu),
                         contains: "up_blocks.1.attentions.2.transformer_blocks.0.attn2.to_k.weight")
    }

    func testShapeContradictingConfigIsNamed() throws {
        let (cfg, w) = try Self.sd1UNet()
        var bad = cfg
        bad.cross_attention_dim = 48   // fixture has 32
        assertModelError(try UNet2DConditionModel(config: bad, weights: w, backend: .cpu), contains: "attn2.to_k.weight")
        w.tensors["mid_block.resnets.1.conv2.weight"] = Tensor(shape: [64, 64, 1, 1])
        assertModelError(try UNet2DConditionModel(config: cfg, weights: w, backend: .cpu), contains: "mid_block.resnets.1.conv2.weight")
    }

    func testInvalidConfigsAreRejected() throws {
        let (cfg, w) = try Self.sd1UNet()
        var c1 = cfg; c1.attention_head_dim = .list([8])
        assertModelError(try UNet2DConditionModel(config: c1, weights: w, backend: .cpu), contains: "attention_head_dim")
        var c2 = cfg; c2.down_block_types[1] = "SimpleDownBlock2D"
        assertModelError(try UNet2DConditionModel(config: c2, weights: w, backend: .cpu), contains: "SimpleDownBlock2D")
        var c3 = cfg; c3.norm_num_groups = 7
        assertModelError(try UNet2DConditionModel(config: c3, weights: w, backend: .cpu), contains: "norm_num_groups")
    }

    func testBadForwardInputsThrow() throws {
        let unet = try ModelParityTests.unet("sd1")
        let ehs = Tensor(shape: [2, 77, 32])
        assertModelError(try unet.forward(Tensor(shape: [2, 3, 8, 8]), timesteps: [1], encoderHiddenStates: ehs), contains: "sample")
        assertModelError(try unet.forward(Tensor(shape: [2, 4, 8, 8]), timesteps: [1], encoderHiddenStates: Tensor(shape: [1, 77, 32])),
                         contains: "encoderHiddenStates")
        assertModelError(try unet.forward(Tensor(shape: [2, 4, 8, 8]), timesteps: [1, 2, 3], encoderHiddenStates: ehs), contains: "timesteps")
        assertModelError(try unet.forward(Tensor(shape: [2, 4, 8, 8]), timesteps: [.nan], encoderHiddenStates: ehs), contains: "timesteps")

        let vae = try ModelParityTests.vae("sd1")
        assertModelError(try vae.encodeMean(Tensor(shape: [1, 3, 60, 64])), contains: "multiple of the VAE factor 8")
        assertModelError(try vae.decode(Tensor(shape: [1, 3, 8, 8])), contains: "latents")

        let te = try ModelParityTests.textEncoder("sd1")
        assertModelError(try te.encode(ids: [[49406, 49408]]), contains: "49408")
        assertModelError(try te.encode(ids: [Array(repeating: 1, count: 78)]), contains: "max_position_embeddings")
        assertModelError(try te.encode(ids: [[1, 2], [1]]), contains: "different lengths")
    }

    func testTimestepBroadcastAndPerItemTimesteps() throws {
        let unet = try ModelParityTests.unet("sd1")
        let s = try ModelParityTests.npy("sd1", "unet_sample").tensor
        let ehs = try ModelParityTests.npy("sd1", "unet_ehs").tensor
        let a = try unet.forward(s, timesteps: [501], encoderHiddenStates: ehs)
        let b = try unet.forward(s, timesteps: [501, 501], encoderHiddenStates: ehs)
        XCTAssertEqual(a.toArray(), b.toArray())
        let c = try unet.forward(s, timesteps: [501, 20], encoderHiddenStates: ehs)
        XCTAssertEqual(Array(c.toArray()[0..<(c.count / 2)]), Array(a.toArray()[0..<(a.count / 2)]))
        XCTAssertNotEqual(Array(c.toArray()[(c.count / 2)...]), Array(a.toArray()[(a.count / 2)...]))
    }

    /// use_quant_conv / use_post_quant_conv false equal identity 1x1 convs; no mid attention loads
    /// without attention tensors.
    func testVAEOptionalConvsAndMidAttention() throws {
        var cfg = VAEConfig()
        cfg.block_out_channels = [8, 16]; cfg.down_block_types = ["DownEncoderBlock2D", "DownEncoderBlock2D"]
        cfg.up_block_types = ["UpDecoderBlock2D", "UpDecoderBlock2D"]; cfg.norm_num_groups = 4; cfg.layers_per_block = 1
        let w = AutoencoderKL.randomWeights(config: cfg, seed: 3)
        for (name, n) in [("quant_conv", 8), ("post_quant_conv", 4)] {
            let eye = Tensor(shape: [n, n, 1, 1])
            for i in 0..<n { eye.data[i * n + i] = 1 }
            w.tensors[name + ".weight"] = eye
            w.tensors[name + ".bias"] = Tensor(shape: [n])
        }
        let with = try AutoencoderKL(config: cfg, weights: w, backend: .cpu)
        var noConv = cfg; noConv.use_quant_conv = false; noConv.use_post_quant_conv = false
        let without = try AutoencoderKL(config: noConv, weights: w, backend: .cpu)
        let img = ModelAttentionControlTests.random([2, 3, 8, 12], seed: 4)
        XCTAssertLessThan(ModelAttentionControlTests.maxRel(try without.encodeMean(img), try with.encodeMean(img)), 1e-6)
        let z = ModelAttentionControlTests.random([1, 4, 3, 2], seed: 5)
        XCTAssertLessThan(ModelAttentionControlTests.maxRel(try without.decode(z), try with.decode(z)), 1e-6)

        var noAttn = cfg; noAttn.mid_block_add_attention = false
        let wNoAttn = AutoencoderKL.randomWeights(config: noAttn, seed: 3)
        XCTAssertFalse(wNoAttn.names.contains { $0.contains("attentions") })
        XCTAssertEqual(try AutoencoderKL(config: noAttn, weights: wNoAttn, backend: .cpu).decode(z).shape, [1, 3, 6, 4])
        XCTAssertThrowsError(try AutoencoderKL(config: cfg, weights: wNoAttn, backend: .cpu)) { e in
            XCTAssertTrue("\(e)".contains("mid_block.attentions.0"), "\(e)")
        }
    }

    func testChunkedFeedForwardMatchesWhole() throws {
        let unet = try ModelParityTests.unet("sd1")
        let s = try ModelParityTests.npy("sd1", "unet_sample").tensor
        let ehs = try ModelParityTests.npy("sd1", "unet_ehs").tensor
        let whole = try unet.forward(s, timesteps: [501], encoderHiddenStates: ehs)
        let blocks = unet.downBlocks.flatMap { $0.attentions } + unet.upBlocks.flatMap { $0.attentions } + (unet.midBlock?.attentions ?? [])
        for t in blocks { for b in t.blocks { b.ffChunkRows = 7 } }
        let chunked = try unet.forward(s, timesteps: [501], encoderHiddenStates: ehs)
        XCTAssertLessThan(ModelAttentionControlTests.maxRel(chunked, whole), 1e-6)
    }

    func testTextEncoderAcceptsNamesWithoutTextModelPrefix() throws {
        let cfg = try ModelParityTests.config(CLIPTextConfig.self, "sd1/text_encoder/config.json")
        let file = try SafetensorsFile(path: ModelParityTests.path("sd1/text_encoder/model.safetensors"))
        var dict: [String: Tensor] = [:]
        for n in file.names { dict[String(n.dropFirst(n.hasPrefix("text_model.") ? 11 : 0))] = try file.tensor(n) }
        // f32 compute: the dictionary holds the weights widened to f32, the file f16 (bf16 terms under compute auto)
        let bare = try CLIPTextModel(config: cfg, weights: DictionaryWeightSource(tensors: dict), backend: .cpuF32)
        let full = try CLIPTextModel(config: cfg, weights: file, backend: .cpuF32)
        let ids: [[Int32]] = [[49406, 320, 1125, 539, 49407] + Array(repeating: 49407, count: 72)]
        XCTAssertEqual(try bare.encode(ids: ids).toArray(), try full.encode(ids: ids).toArray())
    }

    func testRandomWeightsBuildWorkingModels() throws {
        var cfg = UNetConfig()
        cfg.block_out_channels = [32, 64]
        cfg.down_block_types = ["CrossAttnDownBlock2D", "DownBlock2D"]
        cfg.up_block_types = ["UpBlock2D", "CrossAttnUpBlock2D"]
        cfg.norm_num_groups = 16
        cfg.cross_attention_dim = 24
        cfg.attention_head_dim = .int(4)
        let w1 = UNet2DConditionModel.randomWeights(config: cfg, seed: 1)
        let w2 = UNet2DConditionModel.randomWeights(config: cfg, seed: 1)
        let w3 = UNet2DConditionModel.randomWeights(config: cfg, seed: 2)
        XCTAssertEqual(w1.names, w2.names)
        XCTAssertEqual(try w1.tensor("conv_in.weight").toArray(), try w2.tensor("conv_in.weight").toArray())
        XCTAssertNotEqual(try w1.tensor("conv_in.weight").toArray(), try w3.tensor("conv_in.weight").toArray())
        let unet = try UNet2DConditionModel(config: cfg, weights: w1, backend: .cpu)
        let out = try unet.forward(ModelAttentionControlTests.random([1, 4, 8, 8], seed: 5), timesteps: [300],
                                   encoderHiddenStates: ModelAttentionControlTests.random([1, 77, 24], seed: 6))
        XCTAssertEqual(out.shape, [1, 4, 8, 8])
        XCTAssertTrue(out.buffer.allSatisfy { $0.isFinite })
        // std of the weights follows 1/sqrt(fan_in)
        let wq = try w1.tensor("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight").toArray()
        let std = (wq.map { $0 * $0 }.reduce(0, +) / Float(wq.count)).squareRoot()
        XCTAssertEqual(std, 1 / Float(32).squareRoot(), accuracy: 0.02)

        var vcfg = VAEConfig(); vcfg.block_out_channels = [8, 16]; vcfg.down_block_types = ["DownEncoderBlock2D", "DownEncoderBlock2D"]
        vcfg.up_block_types = ["UpDecoderBlock2D", "UpDecoderBlock2D"]; vcfg.norm_num_groups = 4
        let vae = try AutoencoderKL(config: vcfg, weights: AutoencoderKL.randomWeights(config: vcfg, seed: 1), backend: .cpu)
        XCTAssertEqual(try vae.encodeMean(Tensor(shape: [1, 3, 16, 16])).shape, [1, 4, 8, 8])
        XCTAssertEqual(try vae.decode(Tensor(shape: [1, 4, 3, 5])).shape, [1, 3, 6, 10])

        var tcfg = CLIPTextConfig(); tcfg.hidden_size = 16; tcfg.num_attention_heads = 2; tcfg.num_hidden_layers = 1
        tcfg.intermediate_size = 32; tcfg.vocab_size = 100
        let te = try CLIPTextModel(config: tcfg, weights: CLIPTextModel.randomWeights(config: tcfg, seed: 1), backend: .cpu)
        XCTAssertEqual(try te.encode(ids: [[1, 2, 3]]).shape, [1, 3, 16])
    }
}
