import Foundation
import XCTest
@testable import DiffEdit

/// Diffusers folders and single files built at run time (no fixtures needed): file-name variants,
/// sharding, text-encoder naming, configs, tokenizer files, and the loader's error messages.
final class LoaderFolderTests: XCTestCase {
    var dir = ""
    override func setUpWithError() throws { dir = try IOTestSupport.tempDir("folder") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func write(_ s: String, _ rel: String) throws {
        let p = (dir as NSString).appendingPathComponent(rel)
        try FileManager.default.createDirectory(atPath: (p as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try IOTestSupport.write(Array(s.utf8), p)
    }

    func ramp(_ shape: [Int], _ seed: Float) -> Tensor {
        let n = shape.reduce(1, *)
        return Tensor(shape: shape, values: (0..<n).map { Float($0 % 97) * 0.01 + seed })
    }

    /// A minimal folder: real config keys, a few weights per component.
    func makeFolder(textPrefix: Bool, unetFile: String = "diffusion_pytorch_model.fp16.safetensors", dtype: String = "F16") throws {
        try write(#"{"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.42.1"}"#, "model_index.json")
        try write(#"{"_class_name": "UNet2DConditionModel", "block_out_channels": [32, 64], "layers_per_block": 1, "cross_attention_dim": 64, "attention_head_dim": [2, 4], "use_linear_projection": true, "sample_size": 8, "in_channels": 4}"#, "unet/config.json")
        try write(#"{"_class_name": "AutoencoderKL", "block_out_channels": [32, 64], "latent_channels": 4, "scaling_factor": 0.13025}"#, "vae/config.json")
        try write(#"{"architectures": ["CLIPTextModel"], "hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": 1, "intermediate_size": 96, "hidden_act": "gelu"}"#, "text_encoder/config.json")
        try write(#"{"_class_name": "EulerDiscreteScheduler", "prediction_type": "v_prediction", "timestep_spacing": "trailing", "steps_offset": 1}"#, "scheduler/scheduler_config.json")
        try write(#"{"a": 0}"#, "tokenizer/vocab.json")
        try write("#version: 0.2\n", "tokenizer/merges.txt")
        try write(#"{"pad_token": {"content": "!", "lstrip": false}}"#, "tokenizer/special_tokens_map.json")
        try SafetensorsWriter.write(["conv_in.weight": ramp([32, 4, 3, 3], 0), "conv_in.bias": ramp([32], 1)], dtype: dtype,
                                    path: dir + "/unet/" + unetFile)
        try SafetensorsWriter.write(["quant_conv.weight": ramp([8, 8, 1, 1], 2)], dtype: "BF16", path: dir + "/vae/diffusion_pytorch_model.safetensors")
        let p = textPrefix ? "text_model." : ""
        try SafetensorsWriter.write([p + "embeddings.token_embedding.weight": ramp([10, 64], 3),
                                     p + "final_layer_norm.weight": ramp([64], 4),
                                     p + "embeddings.position_ids": Tensor(shape: [1, 77])],
                                    path: dir + "/text_encoder/model.safetensors")
    }

    func testFolderFp16VariantAndUnprefixedText() throws {
        try makeFolder(textPrefix: false)
        let c = try CheckpointLoader.load(path: dir)
        XCTAssertEqual(c.layout, "folder")
        XCTAssertEqual(c.kind, "sd2")
        XCTAssertEqual(c.dtype, "F16")
        XCTAssertEqual(c.unetConfig.block_out_channels, [32, 64])
        XCTAssertEqual(c.unetConfig.heads(block: 1), 4)
        XCTAssertTrue(c.unetConfig.use_linear_projection)
        XCTAssertEqual(c.vaeConfig.scaling_factor, 0.13025)
        XCTAssertEqual(c.textConfig.hidden_act, "gelu")
        XCTAssertEqual(c.schedulerConfig._class_name, "EulerDiscreteScheduler")
        XCTAssertEqual(c.schedulerConfig.prediction_type, "v_prediction")
        XCTAssertEqual(c.schedulerConfig.timestep_spacing, "trailing")
        XCTAssertEqual(c.padToken, "!")
        XCTAssertEqual(c.tokenizerVocabPath, dir + "/tokenizer/vocab.json")
        XCTAssertEqual(c.tokenizerMergesPath, dir + "/tokenizer/merges.txt")
        // normalised text names, position_ids dropped
        XCTAssertEqual(c.textEncoder.names, ["text_model.embeddings.token_embedding.weight", "text_model.final_layer_norm.weight"])
        let tok = try c.textEncoder.tensor("text_model.embeddings.token_embedding.weight", [10, 64])
        XCTAssertEqual(tok.data[5], Float(5) * 0.01 + 3)
        XCTAssertEqual(try c.unet.tensor("conv_in.bias").toArray()[3], Float(Float16(Float(3) * 0.01 + 1)))
        XCTAssertEqual(c.unet.names.sorted(), ["conv_in.bias", "conv_in.weight"])
        let raw = try XCTUnwrap(try (c.unet as? MappedWeightSource)?.stored("conv_in.bias"))
        XCTAssertEqual(raw.dtype, "F16"); XCTAssertEqual(raw.shape, [32]); XCTAssertEqual(raw.bytes.count, 64)
        XCTAssertEqual(raw.bytes.load(fromByteOffset: 2, as: UInt16.self), Float16(Float(1) * 0.01 + 1).bitPattern)
        let q = try c.vae.tensor("quant_conv.weight", [8, 8, 1, 1])
        XCTAssertEqual(q.data[0], 2)
        // prediction type override
        XCTAssertEqual(try CheckpointLoader.load(path: dir, predictionType: "epsilon").schedulerConfig.prediction_type, "epsilon")
        IOTestSupport.assertThrows("invalidArgument", ["prediction", "x_pred"]) { _ = try CheckpointLoader.load(path: self.dir, predictionType: "x_pred") }
    }

    func testPrefixedTextNamesAndShapeErrorsNameTheFile() throws {
        try makeFolder(textPrefix: true, unetFile: "diffusion_pytorch_model.safetensors", dtype: "F32")
        let c = try CheckpointLoader.load(path: dir)
        XCTAssertEqual(c.dtype, "F32")
        XCTAssertTrue(c.textEncoder.contains("text_model.final_layer_norm.weight"))
        let f = dir + "/unet/diffusion_pytorch_model.safetensors"
        IOTestSupport.assertThrows("model", [f, "conv_in.weight", "[32, 4, 3, 3]", "[32, 9, 3, 3]"]) {
            _ = try c.unet.tensor("conv_in.weight", [32, 9, 3, 3])
        }
        IOTestSupport.assertThrows("model", ["unet", "down_blocks.0.resnets.0.conv1.weight"]) {
            _ = try c.unet.tensor("down_blocks.0.resnets.0.conv1.weight")
        }
    }

    /// diffedit.json: the model's recommended edit settings, used for unset options only; bad values name the file and field.
    func testEditDefaultsFromDiffeditJSON() throws {
        try makeFolder(textPrefix: false)
        XCTAssertNil(try CheckpointLoader.load(path: dir).editDefaults)
        try write(#"{"guidance": 4.0, "steps": 20}"#, "diffedit.json")
        let d = try XCTUnwrap(try CheckpointLoader.load(path: dir).editDefaults)
        XCTAssertEqual(d, EditDefaults(guidance: 4, steps: 20))
        var o = EditOptions()
        o.method = .sdedit
        o.prompt = "x"
        var r = try ResolvedEdit(options: o, unetInChannels: 4, imageWidth: 8, imageHeight: 8, defaults: d)
        XCTAssertEqual(r.guidance, 4)
        XCTAssertEqual(r.steps, 20)
        XCTAssertEqual(r.imageGuidance, ResolvedEdit.defaultImageGuidance)   // not in the file: the usual default
        XCTAssertEqual(r.strength, ResolvedEdit.defaultStrength)
        o.guidance = 9
        o.steps = 3
        r = try ResolvedEdit(options: o, unetInChannels: 4, imageWidth: 8, imageHeight: 8, defaults: d)
        XCTAssertEqual(r.guidance, 9, "the caller's value wins")
        XCTAssertEqual(r.steps, 3)
        try write(#"{"steps": 0}"#, "diffedit.json")
        XCTAssertThrowsError(try CheckpointLoader.load(path: dir)) { e in
            let m = "\(e)"
            XCTAssertTrue(m.contains("diffedit.json") && m.contains("steps"), m)
        }
        try write(#"{"blend_threshold": 0.6}"#, "diffedit.json")
        let bd = try XCTUnwrap(try CheckpointLoader.load(path: dir).editDefaults)
        o.method = .p2p
        o.sourcePrompt = "y"
        XCTAssertEqual(try ResolvedEdit(options: o, unetInChannels: 4, imageWidth: 8, imageHeight: 8, defaults: bd).blendThreshold, 0.6)
        o.blendThreshold = 0.2
        XCTAssertEqual(try ResolvedEdit(options: o, unetInChannels: 4, imageWidth: 8, imageHeight: 8, defaults: bd).blendThreshold, 0.2)
        XCTAssertEqual(try ResolvedEdit(options: o, unetInChannels: 4, imageWidth: 8, imageHeight: 8).blendThreshold, 0.2)
        o.blendThreshold = nil
        XCTAssertEqual(try ResolvedEdit(options: o, unetInChannels: 4, imageWidth: 8, imageHeight: 8).blendThreshold,
                       ResolvedEdit.defaultBlendThreshold)
        try write(#"{"blend_threshold": 1.5}"#, "diffedit.json")
        XCTAssertThrowsError(try CheckpointLoader.load(path: dir)) { e in
            let m = "\(e)"
            XCTAssertTrue(m.contains("diffedit.json") && m.contains("blend_threshold"), m)
        }
        try write(#"{"guidance": "high"}"#, "diffedit.json")
        XCTAssertThrowsError(try CheckpointLoader.load(path: dir)) { e in
            XCTAssertTrue("\(e)".contains("diffedit.json"), "\(e)")
        }
    }

    func testShardedWeights() throws {
        try makeFolder(textPrefix: true)
        try FileManager.default.removeItem(atPath: dir + "/unet/diffusion_pytorch_model.fp16.safetensors")
        try SafetensorsWriter.write(["conv_in.weight": ramp([32, 4, 3, 3], 0)], path: dir + "/unet/diffusion_pytorch_model-00001-of-00002.safetensors")
        try SafetensorsWriter.write(["conv_in.bias": ramp([32], 1)], path: dir + "/unet/diffusion_pytorch_model-00002-of-00002.safetensors")
        try write(#"{"metadata": {}, "weight_map": {"conv_in.weight": "diffusion_pytorch_model-00001-of-00002.safetensors", "conv_in.bias": "diffusion_pytorch_model-00002-of-00002.safetensors"}}"#,
                  "unet/diffusion_pytorch_model.safetensors.index.json")
        let c = try CheckpointLoader.load(path: dir)
        XCTAssertEqual(c.unet.names.sorted(), ["conv_in.bias", "conv_in.weight"])
        XCTAssertEqual(try c.unet.tensor("conv_in.bias").toArray()[0], 1)
    }

    func testFolderWithoutUNetConfig() throws {
        try makeFolder(textPrefix: true)
        try FileManager.default.removeItem(atPath: dir + "/unet/config.json")
        IOTestSupport.assertThrows("model", [dir + "/unet/config.json", "missing"]) { _ = try CheckpointLoader.load(path: self.dir) }
    }

    func testFolderWithoutWeights() throws {
        try makeFolder(textPrefix: true)
        try FileManager.default.removeItem(atPath: dir + "/vae/diffusion_pytorch_model.safetensors")
        IOTestSupport.assertThrows("model", [dir + "/vae", "safetensors"]) { _ = try CheckpointLoader.load(path: self.dir) }
    }

    func testConfigErrorsNameFileAndField() throws {
        try makeFolder(textPrefix: true)
        try write(#"{"block_out_channels": "wide", "layers_per_block": 2}"#, "unet/config.json")
        IOTestSupport.assertThrows("model", [dir + "/unet/config.json", "block_out_channels"]) { _ = try CheckpointLoader.load(path: self.dir) }
        try write(#"{"block_out_channels": [32, "x"]}"#, "unet/config.json")
        IOTestSupport.assertThrows("model", [dir + "/unet/config.json", "block_out_channels[1]"]) { _ = try CheckpointLoader.load(path: self.dir) }
        try write(#"{"hidden_size": 64,"#, "text_encoder/config.json")
        try write(#"{}"#, "unet/config.json")
        IOTestSupport.assertThrows("model", [dir + "/text_encoder/config.json", "JSON"]) { _ = try CheckpointLoader.load(path: self.dir) }
        let missing = dir + "/nothing/config.json"
        IOTestSupport.assertThrows("io", [missing]) { _ = try ConfigFile.load(UNetConfig.self, path: missing) }
    }

    func testSingleFileMissingComponentsNameTheFile() throws {
        let p = dir + "/partial.safetensors"
        try SafetensorsWriter.write(["model.diffusion_model.input_blocks.0.0.weight": ramp([32, 4, 3, 3], 0)], path: p)
        IOTestSupport.assertThrows("model", [p, "first_stage_model"]) { _ = try CheckpointLoader.load(path: p) }
        let q = dir + "/diffusers-names.safetensors"
        try SafetensorsWriter.write(["conv_in.weight": ramp([32, 4, 3, 3], 0)], path: q)
        IOTestSupport.assertThrows("model", [q, "model.diffusion_model"]) { _ = try CheckpointLoader.load(path: q) }
    }

    /// Incomplete SDXL checkpoints and SDXL refiners give errors that say what is missing or unsupported.
    func testIncompleteSDXLAndRefinersAreErrors() throws {
        let p = dir + "/sdxl.safetensors"
        try SafetensorsWriter.write(["model.diffusion_model.input_blocks.0.0.weight": ramp([32, 4, 3, 3], 0),
                                     "first_stage_model.encoder.conv_in.weight": ramp([8, 3, 3, 3], 0),
                                     "conditioner.embedders.0.transformer.text_model.final_layer_norm.weight": ramp([8], 0)], path: p)
        IOTestSupport.assertThrows("model", [p, "conditioner.embedders.1.model"]) { _ = try CheckpointLoader.load(path: p) }
        let r = dir + "/refiner.safetensors"
        try SafetensorsWriter.write(["model.diffusion_model.input_blocks.0.0.weight": ramp([32, 4, 3, 3], 0),
                                     "conditioner.embedders.0.model.ln_final.weight": ramp([8], 0)], path: r)
        IOTestSupport.assertThrows("unsupported", [r, "refiner"]) { _ = try CheckpointLoader.load(path: r) }
        try makeFolder(textPrefix: true)
        try write(#"{"_class_name": "StableDiffusionXLPipeline", "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"]}"#, "model_index.json")
        IOTestSupport.assertThrows("model", [dir + "/model_index.json", "text_encoder_2"]) { _ = try CheckpointLoader.load(path: self.dir) }
    }

    /// Structurally odd single files (wrong ranks, missing pieces) give errors naming file and tensor.
    func testMalformedSingleFile() throws {
        let u = "model.diffusion_model.", v = "first_stage_model.", t = "cond_stage_model.transformer.text_model."
        var ts: [String: Tensor] = [
            u + "input_blocks.0.0.weight": ramp([8, 4, 3, 3], 0), u + "out.2.weight": ramp([4, 8, 3, 3], 0),
            u + "input_blocks.1.0.in_layers.2.weight": ramp([8], 0),    // rank 1 where a conv is expected
            u + "output_blocks.0.0.in_layers.2.weight": ramp([8, 8, 3, 3], 0),
            v + "encoder.conv_in.weight": ramp([8, 3, 3, 3], 0),
            t + "embeddings.token_embedding.weight": ramp([10, 8], 0), t + "embeddings.position_embedding.weight": ramp([77, 8], 0),
            t + "encoder.layers.0.mlp.fc1.weight": ramp([16, 8], 0),
        ]
        let p = dir + "/odd.safetensors"
        try SafetensorsWriter.write(ts, path: p)
        IOTestSupport.assertThrows("model", [p, "down_blocks.0.resnets.0.conv1.weight", "[8]"]) { _ = try CheckpointLoader.load(path: p) }
        ts[u + "input_blocks.1.0.in_layers.2.weight"] = ramp([8, 8, 3, 3], 0)
        try SafetensorsWriter.write(ts, path: p)
        IOTestSupport.assertThrows("model", [p, "first_stage_model.encoder.down"]) { _ = try CheckpointLoader.load(path: p) }
        ts = ts.filter { !$0.key.hasPrefix(t) }
        ts["cond_stage_model.model.token_embedding.weight"] = ramp([10], 0)
        try SafetensorsWriter.write(ts, path: p)
        IOTestSupport.assertThrows("model", [p, "token_embedding.weight"]) { _ = try CheckpointLoader.load(path: p) }
    }
}
