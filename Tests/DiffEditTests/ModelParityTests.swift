import Foundation
import XCTest
@testable import DiffEdit

/// Parity of the three networks with diffusers/transformers on the committed tiny random-weight
/// fixtures (Tests/Fixtures/<model>/ diffusers folders, ref/<model>/*.npy made by tools/make_fixtures.py).
/// Error measure: max |out - ref| / max |ref|  (relative to the largest reference magnitude) < 1e-4.
final class ModelParityTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures").path

    static func path(_ rel: String) -> String { fixtures + "/" + rel }

    static func config<T: Decodable>(_ type: T.Type, _ rel: String) throws -> T {
        let p = path(rel)
        guard let data = FileManager.default.contents(atPath: p) else { throw DiffEditError.io("\(p): missing fixture") }
        return try JSONDecoder().decode(T.self, from: data)
    }

    static func npy(_ model: String, _ name: String) throws -> NPY.Array {
        try NPY.read(path: path("ref/\(model)/\(name).npy"))
    }

    static func manifest(_ model: String) throws -> [String: Any] {
        let p = path("ref/\(model)/manifest.json")
        guard let raw = FileManager.default.contents(atPath: p) else {
            throw DiffEditError.io("\(p): missing manifest")
        }
        // Python's json writes -Infinity/Infinity/NaN (scheduler configs); JSONSerialization rejects them.
        let text = String(decoding: raw, as: UTF8.self)
            .replacingOccurrences(of: "-Infinity", with: "null").replacingOccurrences(of: "Infinity", with: "null")
            .replacingOccurrences(of: "NaN", with: "null")
        guard let obj = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
            throw DiffEditError.io("\(p): missing or unreadable manifest")
        }
        return obj
    }

    /// max |a - ref| / max(max |ref|, 1e-6)
    static func relError(_ out: Tensor, _ ref: NPY.Array, file: StaticString = #filePath, line: UInt = #line) -> Float {
        XCTAssertEqual(out.shape, ref.shape, "shape", file: file, line: line)
        guard out.shape == ref.shape else { return .infinity }
        var maxDiff: Float = 0, maxRef: Float = 0
        for (a, r) in zip(out.buffer, ref.floats) {
            if !a.isFinite { return .infinity }
            maxDiff = max(maxDiff, abs(a - r)); maxRef = max(maxRef, abs(r))
        }
        let err = maxDiff / max(maxRef, 1e-6)
        print("parity: \(out.shape) max|diff| \(maxDiff) max|ref| \(maxRef) relative \(err)")
        return err
    }

    static func unet(_ model: String, backend: Backend = .cpu) throws -> UNet2DConditionModel {
        let cfg = try config(UNetConfig.self, "\(model)/unet/config.json")
        let w = try SafetensorsFile(path: path("\(model)/unet/diffusion_pytorch_model.safetensors"))
        return try UNet2DConditionModel(config: cfg, weights: w, backend: backend)
    }

    static func vae(_ model: String) throws -> AutoencoderKL {
        let cfg = try config(VAEConfig.self, "\(model)/vae/config.json")
        let w = try SafetensorsFile(path: path("\(model)/vae/diffusion_pytorch_model.safetensors"))
        return try AutoencoderKL(config: cfg, weights: w, backend: .cpu)
    }

    static func textEncoder(_ model: String) throws -> CLIPTextModel {
        let cfg = try config(CLIPTextConfig.self, "\(model)/text_encoder/config.json")
        let w = try SafetensorsFile(path: path("\(model)/text_encoder/model.safetensors"))
        return try CLIPTextModel(config: cfg, weights: w, backend: .cpu)
    }

    // MARK: parity

    func checkTextEncoder(_ model: String) throws {
        let te = try Self.textEncoder(model)
        let ids = try Self.npy(model, "input_ids")
        let rows = ids.shape[0], l = ids.shape[1]
        let idRows = (0..<rows).map { r in (0..<l).map { Int32(ids.ints[r * l + $0]) } }
        let out = try te.encode(ids: idRows)
        let err = Self.relError(out, try Self.npy(model, "text_embeds"))
        XCTAssertLessThan(err, 1e-4, "\(model) text encoder relative error \(err)")
    }

    func checkUNet(_ model: String) throws {
        let unet = try Self.unet(model)
        let m = try Self.manifest(model)
        let t = ((m["unet"] as? [String: Any])?["timestep"] as? NSNumber)?.floatValue ?? .nan
        let sample = try Self.npy(model, "unet_sample").tensor
        let ehs = try Self.npy(model, "unet_ehs").tensor
        let out = try unet.forward(sample, timesteps: [t], encoderHiddenStates: ehs)
        let err = Self.relError(out, try Self.npy(model, "unet_out"))
        XCTAssertLessThan(err, 1e-4, "\(model) UNet relative error \(err)")
    }

    func checkVAE(_ model: String) throws {
        let vae = try Self.vae(model)
        let mean = try vae.encodeMean(try Self.npy(model, "vae_image").tensor)
        let e1 = Self.relError(mean, try Self.npy(model, "vae_mean"))
        XCTAssertLessThan(e1, 1e-4, "\(model) VAE encode (posterior mean) relative error \(e1)")
        let decoded = try vae.decode(try Self.npy(model, "vae_latents").tensor)
        let e2 = Self.relError(decoded, try Self.npy(model, "vae_decoded"))
        XCTAssertLessThan(e2, 1e-4, "\(model) VAE decode relative error \(e2)")
    }

    func testSD1TextEncoder() throws { try checkTextEncoder("sd1") }
    func testSD1UNet() throws { try checkUNet("sd1") }
    func testSD1VAE() throws { try checkVAE("sd1") }
    func testSD2TextEncoder() throws { try checkTextEncoder("sd2") }
    func testSD2UNet() throws { try checkUNet("sd2") }
    func testSD2VAE() throws { try checkVAE("sd2") }

    /// layers_per_block as a per-block list ([2, 1, 1]: the 16 x 16 level has two resnet + attention pairs and
    /// its up block three), as diffusers saves it; transformer_layers_per_block [1, 2, 1] beside it.
    func testUNetWithPerBlockLayerCounts() throws {
        let unet = try Self.unet("unet_lpb")
        XCTAssertEqual(unet.config.layers_per_block, .list([2, 1, 1]))
        XCTAssertEqual(unet.downBlocks.map { $0.resnets.count }, [2, 1, 1])
        XCTAssertEqual(unet.upBlocks.map { $0.resnets.count }, [2, 2, 3])
        try checkUNet("unet_lpb")
    }

    /// A per-block list must have one entry per block, and every entry at least 1: the error names the field.
    func testPerBlockLayerCountsAreChecked() throws {
        var c = try Self.config(UNetConfig.self, "unet_lpb/unet/config.json")
        let w = try SafetensorsFile(path: Self.path("unet_lpb/unet/diffusion_pytorch_model.safetensors"))
        for (bad, words) in [(IntOrList.list([2, 1]), ["layers_per_block has 2 entries for 3 blocks"]),
                             (.list([]), ["layers_per_block has 0 entries for 3 blocks"]),
                             (.list([2, 0, 1]), ["layers_per_block", "must be positive"])] {
            c.layers_per_block = bad
            XCTAssertThrowsError(try UNet2DConditionModel(config: c, weights: w, backend: .cpu)) { e in
                let m = "\(e)"
                for word in words { XCTAssertTrue(m.contains(word), "\(bad): \(m)") }
            }
        }
        // one count for every block: every tensor it asks for exists with its shape (the extra pair is left
        // unread), so only the output tells, and it is far off: the fixture tests the per-block counts
        c.layers_per_block = .int(1)
        let one = try UNet2DConditionModel(config: c, weights: w, backend: .cpu)
        let out = try one.forward(try Self.npy("unet_lpb", "unet_sample").tensor, timesteps: [501],
                                  encoderHiddenStates: try Self.npy("unet_lpb", "unet_ehs").tensor)
        XCTAssertGreaterThan(Self.relError(out, try Self.npy("unet_lpb", "unet_out")), 0.05)
    }

    /// The same weights in the original layout (unet_lpb/unet_ldm.safetensors, written by tools/ldm_names.py):
    /// input_blocks 1, 2 | 3 (down) | 4 | 5 (down) | 6, output_blocks 0-1 | 2-3 | 4-6, numbered per level as the
    /// original UNetModel numbers a num_res_blocks list. The single-file reader finds the counts in the
    /// numbering, detection agrees with the config, and the UNet built from it matches diffusers. One count for
    /// every level (the first level's, 2) would put output_blocks.2 in up block 0.
    func testPerBlockLayerCountsFromTheOriginalLayout() throws {
        let file = try SafetensorsFile(path: Self.path("unet_lpb/unet_ldm.safetensors"))
        let refs = try SingleFileCheckpoint.unetRefs(file)
        XCTAssertEqual(refs.count, file.names.count, "every tensor placed")
        XCTAssertEqual(refs["up_blocks.0.resnets.1.conv1.weight"]?.name, "model.diffusion_model.output_blocks.1.0.in_layers.2.weight")
        XCTAssertEqual(refs["up_blocks.1.resnets.0.conv1.weight"]?.name, "model.diffusion_model.output_blocks.2.0.in_layers.2.weight")
        XCTAssertEqual(refs["up_blocks.1.upsamplers.0.conv.weight"]?.name, "model.diffusion_model.output_blocks.3.2.conv.weight")
        XCTAssertEqual(refs["down_blocks.1.resnets.0.conv1.weight"]?.name, "model.diffusion_model.input_blocks.4.0.in_layers.2.weight")
        XCTAssertEqual(refs["down_blocks.1.downsamplers.0.conv.weight"]?.name, "model.diffusion_model.input_blocks.5.0.op.weight")
        let src = MappedWeightSource(origin: file.path, refs: refs)
        let detected = try SingleFileCheckpoint.detectUNet(src, path: file.path, sd2: false)
        XCTAssertEqual((0..<3).map { detected.resnets(block: $0) }, [2, 1, 1])
        let c = try Self.config(UNetConfig.self, "unet_lpb/unet/config.json")
        let unet = try UNet2DConditionModel(config: c, weights: src, backend: .cpu)
        let t = ((try Self.manifest("unet_lpb")["unet"] as? [String: Any])?["timestep"] as? NSNumber)?.floatValue ?? .nan
        let out = try unet.forward(try Self.npy("unet_lpb", "unet_sample").tensor, timesteps: [t],
                                   encoderHiddenStates: try Self.npy("unet_lpb", "unet_ehs").tensor)
        let err = Self.relError(out, try Self.npy("unet_lpb", "unet_out"))
        XCTAssertLessThan(err, 1e-4, "unet_lpb from the original layout: relative error \(err)")
    }

    /// Hostile numbering in an original-layout file: an error that names the tensor or the blocks at fault.
    func testImplausibleLDMBlockNumberingIsRefused() throws {
        let w = Tensor(shape: [4, 4, 3, 3])
        let pre = SingleFileCheckpoint.unetPrefix
        for (names, words) in [([pre + "input_blocks.1.0.in_layers.2.weight", pre + "input_blocks.99999999999.0.in_layers.2.weight"],
                                ["input_blocks.99999999999", "not plausible"]),
                               ([pre + "input_blocks.1.0.in_layers.2.weight", pre + "input_blocks.2.0.op.weight", pre + "input_blocks.3.0.op.weight",
                                 pre + "input_blocks.4.0.in_layers.2.weight"], ["level without resnets", "input_blocks.2, 3"]),
                               ([pre + "output_blocks.7.0.in_layers.2.weight"], ["cannot find the UNet's input_blocks"])] {
            let tmp = NSTemporaryDirectory() + "ldm_bad_\(getpid()).safetensors"
            defer { try? FileManager.default.removeItem(atPath: tmp) }
            try SafetensorsWriter.write(Dictionary(uniqueKeysWithValues: names.map { ($0, w) }), path: tmp)
            XCTAssertThrowsError(try SingleFileCheckpoint.unetRefs(try SafetensorsFile(path: tmp))) { e in
                for word in words { XCTAssertTrue("\(e)".contains(word), "\(names): \(e)") }
            }
        }
    }

    /// The LDM block numbering, one count per level or one for all (SD 1.x: 2 on 4 levels).
    func testLDMBlockLayout() {
        let sd1 = SingleFileCheckpoint.LDMBlockLayout(resnets: [2, 2, 2, 2])
        let inputs = (1...11).map { sd1.input($0).map { "\($0.level).\($0.layer)\($0.down ? "d" : "")" } ?? "-" }
        XCTAssertEqual(inputs, ["0.0", "0.1", "0.0d", "1.0", "1.1", "1.0d", "2.0", "2.1", "2.0d", "3.0", "3.1"])
        XCTAssertNil(sd1.input(12)); XCTAssertNil(sd1.input(0))
        XCTAssertEqual((0...11).map { sd1.output($0).map { "\($0.block).\($0.layer)" } ?? "-" },
                       ["0.0", "0.1", "0.2", "1.0", "1.1", "1.2", "2.0", "2.1", "2.2", "3.0", "3.1", "3.2"])
        XCTAssertNil(sd1.output(12)); XCTAssertNil(sd1.output(-1))
        let lpb = SingleFileCheckpoint.LDMBlockLayout(resnets: [2, 1, 1])
        XCTAssertEqual((1...6).map { lpb.input($0).map { "\($0.level).\($0.layer)\($0.down ? "d" : "")" } ?? "-" },
                       ["0.0", "0.1", "0.0d", "1.0", "1.0d", "2.0"])
        XCTAssertEqual((0...6).map { lpb.output($0).map { "\($0.block).\($0.layer)" } ?? "-" },
                       ["0.0", "0.1", "1.0", "1.1", "2.0", "2.1", "2.2"])
    }
}
