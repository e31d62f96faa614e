import Foundation
import XCTest
@testable import DiffEdit

/// The committed tiny checkpoints (tools/make_fixtures.py): the diffusers folder and the single-file
/// original layout of the same weights must give the same clean names, bit-identical tensors and
/// the same architecture.
final class LoaderFixtureTests: XCTestCase {
    func pair(_ name: String) throws -> (folder: LoadedCheckpoint, single: LoadedCheckpoint) {
        let root = IOTestSupport.fixtures
        let folder = (root as NSString).appendingPathComponent(name)
        let single = folder + ".safetensors"
        guard FileManager.default.fileExists(atPath: folder + "/model_index.json"), FileManager.default.fileExists(atPath: single) else {
            throw XCTSkip("fixtures \(folder) and \(single) not present (run tools/make_fixtures.py)")
        }
        return (try CheckpointLoader.load(path: folder), try CheckpointLoader.load(path: single))
    }

    func assertSameWeights(_ a: WeightSource, _ b: WeightSource, _ what: String, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(Set(a.names), Set(b.names), "\(what): name sets differ: only folder \(Set(a.names).subtracting(b.names).sorted().prefix(5)), only single \(Set(b.names).subtracting(a.names).sorted().prefix(5))", file: file, line: line)
        XCTAssertFalse(a.names.isEmpty, file: file, line: line)
        var mismatches: [String] = []
        for n in a.names where b.contains(n) {
            let x = try a.tensor(n), y = try b.tensor(n, expectedShape: x.shape)
            let same = x.count == y.count && memcmp(x.data, y.data, x.count * MemoryLayout<Float>.size) == 0   // bit-identical
            withExtendedLifetime((x, y)) { if !same { mismatches.append(n) } }
        }
        XCTAssertEqual(mismatches, [], "\(what): tensors differ", file: file, line: line)
    }

    /// The fields tensor shapes determine (head counts and norm groups they cannot).
    func assertSameArchitecture(_ f: LoadedCheckpoint, _ s: LoadedCheckpoint, file: StaticString = #filePath, line: UInt = #line) {
        let u = f.unetConfig, v = s.unetConfig
        XCTAssertEqual(v.in_channels, u.in_channels, file: file, line: line)
        XCTAssertEqual(v.out_channels, u.out_channels, file: file, line: line)
        XCTAssertEqual(v.block_out_channels, u.block_out_channels, file: file, line: line)
        XCTAssertEqual(v.layers_per_block, u.layers_per_block, file: file, line: line)
        XCTAssertEqual(v.down_block_types, u.down_block_types, file: file, line: line)
        XCTAssertEqual(v.up_block_types, u.up_block_types, file: file, line: line)
        XCTAssertEqual(v.cross_attention_dim, u.cross_attention_dim, file: file, line: line)
        XCTAssertEqual(v.use_linear_projection, u.use_linear_projection, file: file, line: line)
        XCTAssertEqual(s.vaeConfig.block_out_channels, f.vaeConfig.block_out_channels, file: file, line: line)
        XCTAssertEqual(s.vaeConfig.layers_per_block, f.vaeConfig.layers_per_block, file: file, line: line)
        XCTAssertEqual(s.vaeConfig.latent_channels, f.vaeConfig.latent_channels, file: file, line: line)
        let t = f.textConfig, w = s.textConfig
        XCTAssertEqual(w.hidden_size, t.hidden_size, file: file, line: line)
        XCTAssertEqual(w.num_hidden_layers, t.num_hidden_layers, file: file, line: line)
        XCTAssertEqual(w.intermediate_size, t.intermediate_size, file: file, line: line)
        XCTAssertEqual(w.hidden_act, t.hidden_act, file: file, line: line)
        XCTAssertEqual(w.vocab_size, t.vocab_size, file: file, line: line)
        XCTAssertEqual(w.max_position_embeddings, t.max_position_embeddings, file: file, line: line)
        XCTAssertEqual(s.schedulerConfig.prediction_type, f.schedulerConfig.prediction_type, file: file, line: line)
        XCTAssertEqual(s.kind, f.kind, file: file, line: line)
        XCTAssertEqual(s.padToken, f.padToken, file: file, line: line)
    }

    func check(_ name: String) throws {
        let (f, s) = try pair(name)
        XCTAssertEqual(f.layout, "folder"); XCTAssertEqual(s.layout, "single-file")
        XCTAssertNil(s.tokenizerVocabPath)
        XCTAssertNotNil(f.tokenizerVocabPath)
        try assertSameWeights(f.unet, s.unet, "\(name) unet")
        try assertSameWeights(f.vae, s.vae, "\(name) vae")
        try assertSameWeights(f.textEncoder, s.textEncoder, "\(name) text encoder")
        assertSameArchitecture(f, s)
        // with the folder's configs for what shapes cannot tell: everything equal, weights still the file's
        let sc = try CheckpointLoader.load(path: s.origin, configFrom: f.origin)
        XCTAssertEqual(sc.unetConfig, f.unetConfig)
        XCTAssertEqual(sc.vaeConfig, f.vaeConfig)
        XCTAssertEqual(sc.textConfig, f.textConfig)
        XCTAssertEqual(sc.schedulerConfig, f.schedulerConfig)
        XCTAssertEqual(sc.padToken, f.padToken)
        XCTAssertEqual(sc.tokenizerVocabPath, f.tokenizerVocabPath)
        XCTAssertEqual(sc.kind, f.kind)
        XCTAssertTrue(sc.unet.origin.hasPrefix(s.origin))
        try assertSameWeights(f.textEncoder, sc.textEncoder, "\(name) text encoder (configFrom)")
        // the clean names the models use
        XCTAssertTrue(f.unet.contains("conv_in.weight"))
        XCTAssertTrue(f.unet.contains("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight"))
        XCTAssertTrue(f.unet.contains("mid_block.attentions.0.proj_in.weight"))
        XCTAssertTrue(f.vae.contains("encoder.down_blocks.0.resnets.0.conv1.weight"))
        XCTAssertTrue(f.vae.contains("decoder.mid_block.attentions.0.to_q.weight"))
        XCTAssertEqual(f.vae.shape(of: "decoder.mid_block.attentions.0.to_q.weight")?.count, 2)
        XCTAssertTrue(f.textEncoder.contains("text_model.embeddings.token_embedding.weight"))
        XCTAssertTrue(f.textEncoder.contains("text_model.encoder.layers.0.self_attn.q_proj.weight"))
        XCTAssertTrue(f.textEncoder.contains("text_model.final_layer_norm.weight"))
    }

    func testSD1FolderAndSingleFileAgree() throws {
        try check("sd1")
        let (f, _) = try pair("sd1")
        XCTAssertEqual(f.kind, "sd1")
        XCTAssertEqual(f.schedulerConfig.prediction_type, "epsilon")
    }

    func testSD2FolderAndSingleFileAgree() throws {
        try check("sd2")
        let (f, s) = try pair("sd2")
        XCTAssertEqual(f.kind, "sd2")
        XCTAssertEqual(s.textConfig.hidden_act, "gelu")
        XCTAssertEqual(s.schedulerConfig.prediction_type, "v_prediction")
        let eps = try CheckpointLoader.load(path: s.origin, predictionType: "epsilon")
        XCTAssertEqual(eps.schedulerConfig.prediction_type, "epsilon")
    }

    func testConfigFromContradictingTheShapesIsAnError() throws {
        let (f1, s1) = try pair("sd1")
        _ = f1
        let sd2 = (IOTestSupport.fixtures as NSString).appendingPathComponent("sd2")
        IOTestSupport.assertThrows("model", [sd2 + "/unet/config.json", "block_out_channels", s1.origin]) {
            _ = try CheckpointLoader.load(path: s1.origin, configFrom: sd2)
        }
    }

    func testConfigsInMetadataAreUsedAndChecked() throws {
        let (f, s) = try pair("sd1")
        let dir = try IOTestSupport.tempDir("meta")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // rewrite the single file with the folder's configs in __metadata__
        let src = try SafetensorsFile(path: s.origin)
        var tensors: [String: Tensor] = [:]
        for n in src.names where SafetensorsFile.convertibleDTypes.contains(src.dtype(of: n)!) { tensors[n] = try src.tensor(n) }
        func json<T: Encodable>(_ v: T) throws -> String { String(decoding: try JSONEncoder().encode(v), as: UTF8.self) }
        var text = f.textConfig
        let p = dir + "/meta.safetensors"
        try SafetensorsWriter.write(tensors, dtype: "F16", metadata: [
            SingleFileCheckpoint.metadataKeys.unet: try json(f.unetConfig), SingleFileCheckpoint.metadataKeys.vae: try json(f.vaeConfig),
            SingleFileCheckpoint.metadataKeys.text: try json(text), SingleFileCheckpoint.metadataKeys.scheduler: try json(f.schedulerConfig)], path: p)
        let m = try CheckpointLoader.load(path: p)
        XCTAssertEqual(m.unetConfig, f.unetConfig)
        XCTAssertEqual(m.textConfig, f.textConfig)
        XCTAssertEqual(m.schedulerConfig, f.schedulerConfig)
        try assertSameWeights(f.unet, m.unet, "metadata unet")
        text.num_hidden_layers += 1
        let q = dir + "/bad.safetensors"
        try SafetensorsWriter.write(tensors, dtype: "F16", metadata: [SingleFileCheckpoint.metadataKeys.text: try json(text)], path: q)
        IOTestSupport.assertThrows("model", [q, "num_hidden_layers"]) { _ = try CheckpointLoader.load(path: q) }
    }
}
