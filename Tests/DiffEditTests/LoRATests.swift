import XCTest
import Foundation
@testable import DiffEdit

/// LoRA fusing against diffusers (Tests/Fixtures/lora, tools/make_lora_fixtures.py): PEFT, kohya and kohya
/// LDM-named files for the tiny SD1 model, UNet + text encoder, scale 0.7, final latents of the ref/sd1
/// generate_ddim case within 1e-3 relative error of diffusers' load_lora_weights + fuse_lora(lora_scale=0.7).
/// Each file moves the latents by 0.32-0.56 (relative; manifest.json "moved"), so ignoring it fails. Plus
/// re-fusing at another scale and unfusing giving back exactly the base output, and bad files refused
/// with the model unchanged.
final class LoRATests: XCTestCase {
    static func path(_ rel: String) -> String { PipelineTests.path(rel) }

    static func manifest() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path("lora/manifest.json")))
        return try JSONSerialization.jsonObject(with: data) as! [String: Any]
    }

    /// A model of its own (LoRA changes its weights; PipelineTests' cached models stay untouched).
    static func freshModel(backend: Backend = Backend.cpu) throws -> StableDiffusionModel {
        try StableDiffusionModel.load(path: path("sd1"), backend: backend)
    }

    static func options(_ man: [String: Any]) throws -> GenerateOptions {
        var o = GenerateOptions(prompt: man["prompt"] as! String)
        o.negativePrompt = man["negative_prompt"] as? String
        o.steps = (man["steps"] as! NSNumber).intValue
        o.guidance = Float((man["guidance"] as! NSNumber).doubleValue)
        o.width = (man["width"] as! NSNumber).intValue
        o.height = (man["height"] as! NSNumber).intValue
        o.scheduler = "ddim"
        o.initNoise = try NPY.readTensor(path: path("lora/" + (man["noise"] as! String)))
        return o
    }

    static func bitEqual(_ a: Tensor, _ b: Tensor) -> Bool {
        a.shape == b.shape && (0..<a.count).allSatisfy { a.data[$0].bitPattern == b.data[$0].bitPattern }
    }

    func checkParity(_ name: String) throws {
        let man = try Self.manifest()
        let c = (man["cases"] as! [String: Any])[name] as! [String: Any]
        let scale = Float((man["scale"] as! NSNumber).doubleValue)
        let m = try Self.freshModel()
        let o = try Self.options(man)
        let base = try m.generate(o).latents
        try m.setLoRAs([LoRASpec(path: Self.path("lora/" + (c["file"] as! String)), scale: scale)])
        let r = try m.generate(o).latents
        let ref = try NPY.readTensor(path: Self.path("lora/" + (c["latents"] as! String)))
        let e = PipelineTests.relErr(r, ref)
        let moved = PipelineTests.relErr(base, ref)
        print("LoRA \(name) at scale \(scale): latents rel err \(e) vs diffusers; the LoRA moves them by \(moved)")
        XCTAssertLessThanOrEqual(e, 1e-3, name)
        XCTAssertGreaterThan(moved, 0.1, "\(name): the fixture must move the latents far more than the tolerance")
    }

    func testPEFTParity() throws { try checkParity("peft") }
    func testKohyaParity() throws { try checkParity("kohya") }
    func testKohyaLDMNamesParity() throws { try checkParity("kohya_ldm") }

    /// Both kohya spellings of the same adapters (the upsampler of an UpBlock2D included, which diffusers'
    /// SGM mapping misplaces) give bit-identical weights.
    func testKohyaLDMAndDiffusersNamesGiveTheSameWeights() throws {
        let src = try SafetensorsFile(path: Self.path("lora/kohya_ldm.safetensors"))
        let k = try SafetensorsFile(path: Self.path("lora/kohya.safetensors"))
        var tensors: [String: Tensor] = [:]
        for n in src.names { tensors[n] = try src.tensor(n) }
        for s in [".lora_down.weight", ".lora_up.weight", ".alpha"] {
            tensors["lora_unet_output_blocks_2_1_conv" + s] = try k.tensor("lora_unet_up_blocks_0_upsamplers_0_conv" + s)
        }
        let tmp = NSTemporaryDirectory() + "lora_ldm_\(getpid()).safetensors"
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        try SafetensorsWriter.write(tensors, dtype: "F16", path: tmp)
        let a = try Self.freshModel(), b = try Self.freshModel()
        try a.setLoRAs([LoRASpec(path: tmp, scale: 0.7)])
        try b.setLoRAs([LoRASpec(path: Self.path("lora/kohya.safetensors"), scale: 0.7)])
        var changed = 0
        for (ra, rb) in [(a.unet.parameters, b.unet.parameters), (a.textEncoder.parameters, b.textEncoder.parameters)] {
            for n in ra.names {
                XCTAssertTrue(Self.bitEqual(ra.tensor(n)!, rb.tensor(n)!), n)
            }
        }
        let base = try Self.freshModel()
        for n in base.unet.parameters.names where !Self.bitEqual(base.unet.parameters.tensor(n)!, a.unet.parameters.tensor(n)!) { changed += 1 }
        XCTAssertEqual(changed, 18, "every UNet module of kohya.safetensors placed")
    }

    /// kohya LDM-numbered keys on a UNet whose levels have different resnet counts (Tests/Fixtures/unet_lpb,
    /// layers_per_block [2, 1, 1]): every weight of its original-layout file, as a rank-1 LoRA module named
    /// after the LDM key, lands on the clean name the single-file reader gives that key (which
    /// ModelParityTests checks against diffusers). One count for all levels would misplace the up blocks.
    func testKohyaLDMNamesOnPerLevelResnetCounts() throws {
        let unet = try ModelParityTests.unet("unet_lpb")
        var shapes: [String: [Int]] = [:]
        for n in unet.parameters.names { if let t = unet.parameters.tensor(n), t.rank == 2 || t.rank == 4 { shapes[n] = t.shape } }
        let targets = LoRAFile.Targets(unet: shapes, text: [:], resnetsPerLevel: [2, 1, 1])
        let ldm = try SafetensorsFile(path: Self.path("unet_lpb/unet_ldm.safetensors"))
        let refs = try SingleFileCheckpoint.unetRefs(ldm)
        var expected: [String: String] = [:], tensors: [String: Tensor] = [:]
        for (clean, ref) in refs {
            guard let shape = shapes[clean], ref.name.hasSuffix(".weight") else { continue }
            let module = "lora_unet_" + ref.name.dropFirst(SingleFileCheckpoint.unetPrefix.count).dropLast(".weight".count)
                .replacingOccurrences(of: ".", with: "_")
            let rest = Array(shape.dropFirst(2))
            tensors[module + ".lora_down.weight"] = Tensor(shape: [1, shape[1]] + rest)
            tensors[module + ".lora_up.weight"] = Tensor(shape: [shape[0], 1] + rest.map { _ in 1 })
            expected[module + ".lora_down.weight"] = clean
        }
        XCTAssertGreaterThan(expected.count, 100)
        XCTAssertTrue(expected.keys.contains("lora_unet_output_blocks_3_2_conv.lora_down.weight"), "up block 1's upsampler")
        let tmp = NSTemporaryDirectory() + "lora_lpb_\(getpid()).safetensors"
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        try SafetensorsWriter.write(tensors, path: tmp)
        let updates = try LoRAFile.load(path: tmp, targets: targets)
        XCTAssertEqual(updates.count, expected.count)
        for u in updates { XCTAssertEqual(u.target, expected[u.key], u.key) }
    }

    /// Re-fusing at another scale and unfusing go back exactly, on the plain CPU backend and on the staged
    /// one (weights as uploaded constants, as on CUDA).
    func testRefuseAndUnfuseGiveExactOutputs() throws {
        for staged in [false, true] {
            let be = staged ? try Backend(name: "cpu", staged: true) : Backend.cpu
            let man = try Self.manifest()
            let m = try Self.freshModel(backend: be)
            let o = try Self.options(man)
            let peft = Self.path("lora/peft.safetensors"), kohya = Self.path("lora/kohya.safetensors")
            let base = try m.generate(o).latents
            try m.setLoRAs([LoRASpec(path: peft, scale: 0.7)])
            let a = try m.generate(o).latents
            let ref = try NPY.readTensor(path: Self.path("lora/peft_latents.npy"))
            XCTAssertLessThanOrEqual(PipelineTests.relErr(a, ref), 1e-3, "staged \(staged)")
            try m.setLoRAs([LoRASpec(path: peft, scale: 0.3)])
            let b = try m.generate(o).latents
            XCTAssertGreaterThan(PipelineTests.relErr(b, a), 0.05, "scale 0.3 differs from 0.7")
            try m.setLoRAs([LoRASpec(path: peft, scale: 0.7)])
            XCTAssertTrue(Self.bitEqual(try m.generate(o).latents, a), "re-fused at 0.7: exactly the first fuse (staged \(staged))")
            try m.setLoRAs([LoRASpec(path: peft, scale: 0.7), LoRASpec(path: kohya, scale: 0.5)])
            let two = try m.generate(o).latents
            XCTAssertGreaterThan(PipelineTests.relErr(two, a), 0.05, "the second file counts")
            XCTAssertEqual(m.loras.count, 2)
            try m.setLoRAs([])
            XCTAssertTrue(Self.bitEqual(try m.generate(o).latents, base), "unfused: exactly the base output (staged \(staged))")
            XCTAssertEqual(m.loras, [])
        }
    }

    /// Bad files and scales: an error naming the file / key / tensor; the model keeps what it had.
    func testBadInputLeavesTheModelAsItWas() throws {
        let man = try Self.manifest()
        let m = try Self.freshModel()
        var o = try Self.options(man)
        o.steps = 2
        let base = try m.generate(o).latents
        let kohya = Self.path("lora/kohya.safetensors")
        func expect(_ specs: [LoRASpec], _ contains: [String], _ check: (DiffEditError) -> Bool, _ ref: Tensor) throws {
            XCTAssertThrowsError(try m.setLoRAs(specs)) { e in
                guard let d = e as? DiffEditError else { return XCTFail("\(e)") }
                XCTAssertTrue(check(d), "\(d)")
                for s in contains { XCTAssertTrue(d.message.contains(s), "\(d.message) should name \(s)") }
            }
            XCTAssertTrue(Self.bitEqual(try m.generate(o).latents, ref), "unchanged after \(contains)")
        }
        for round in 0..<2 {
            // round 1: with a LoRA fused, a failed change keeps it
            let ref = round == 0 ? base : try { try m.setLoRAs([LoRASpec(path: kohya, scale: 0.7)]); return try m.generate(o).latents }()
            let missing = Self.path("lora/no_such_lora.safetensors")
            try expect([LoRASpec(path: missing, scale: 1)], ["no_such_lora.safetensors"], { if case .io = $0 { true } else { false } }, ref)
            try expect([LoRASpec(path: Self.path("lora/unknown_key.safetensors"), scale: 1)],
                       ["lora_unet_down_blocks_7_attentions_0_proj_in.lora_down.weight", "cannot place"],
                       { if case .model = $0 { true } else { false } }, ref)
            try expect([LoRASpec(path: Self.path("lora/sd2_arch.safetensors"), scale: 1)],
                       ["unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight", "[4, 32]", "[16, 16]"],
                       { if case .model = $0 { true } else { false } }, ref)
            try expect([LoRASpec(path: Self.path("lora/loha.safetensors"), scale: 1)], ["hada_w1_a", "LoHa"],
                       { if case .unsupported = $0 { true } else { false } }, ref)
            try expect([LoRASpec(path: kohya, scale: .nan)], ["scale", "nan"],
                       { if case .invalidArgument = $0 { true } else { false } }, ref)
            try expect([LoRASpec(path: kohya, scale: 1), LoRASpec(path: missing, scale: 1)], ["no_such_lora"],
                       { if case .io = $0 { true } else { false } }, ref)
            try expect([LoRASpec(path: Self.path("sd1/unet/config.json"), scale: 1)], ["config.json"], { _ in true }, ref)
        }
    }

    /// `diffedit generate --lora PATH:SCALE` (repeatable) gives diffusers' fused latents; a bad file fails naming it.
    func testCLIGenerateWithLoRA() throws {
        let man = try Self.manifest()
        let dir = NSTemporaryDirectory() + "lora_cli_\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func generate(_ loras: [String]) throws -> (Int32, String, Tensor?) {
            let lat = dir + "/lat.npy"
            try? FileManager.default.removeItem(atPath: lat)
            var args = ["generate", "--model", Self.path("sd1"), "--prompt", man["prompt"] as! String,
                        "--negative-prompt", man["negative_prompt"] as! String, "--steps", "\(man["steps"]!)",
                        "--guidance", "\(man["guidance"]!)", "--width", "64", "--height", "64", "--scheduler", "ddim",
                        "--init-noise", Self.path("lora/" + (man["noise"] as! String)), "--save-latents", lat,
                        "--output", dir + "/out.png", "--quiet"]
            for l in loras { args += ["--lora", l] }
            let r = try PipelineCLITests.run(args)
            return (r.status, r.stderr, r.status == 0 ? try NPY.readTensor(path: lat) : nil)
        }
        let (st, err, lat) = try generate([Self.path("lora/kohya.safetensors") + ":0.7"])
        XCTAssertEqual(st, 0, err)
        let ref = try NPY.readTensor(path: Self.path("lora/kohya_latents.npy"))
        XCTAssertLessThanOrEqual(PipelineTests.relErr(lat!, ref), 1e-3)
        // two files: the same as the library with the same two
        let (st2, err2, lat2) = try generate([Self.path("lora/kohya.safetensors") + ":0.7", Self.path("lora/peft.safetensors")])
        XCTAssertEqual(st2, 0, err2)
        let m = try Self.freshModel()
        try m.setLoRAs([LoRASpec(path: Self.path("lora/kohya.safetensors"), scale: 0.7),
                        LoRASpec(path: Self.path("lora/peft.safetensors"), scale: 1)])
        XCTAssertLessThanOrEqual(PipelineTests.relErr(lat2!, try m.generate(try Self.options(man)).latents), 1e-5)
        let (st3, err3, _) = try generate([Self.path("lora/unknown_key.safetensors")])
        XCTAssertNotEqual(st3, 0)
        XCTAssertTrue(err3.contains("lora_unet_down_blocks_7_attentions_0_proj_in"), err3)
        let (st4, err4, _) = try generate([Self.path("lora/kohya.safetensors") + ":inf"])
        XCTAssertNotEqual(st4, 0)
        XCTAssertTrue(err4.contains("--lora") && err4.contains("inf"), err4)
        // edit and video take --lora too
        let scene = Self.path("../hosts/scene.png")
        func edit(_ loras: [String]) throws -> (Int32, String, Data?) {
            let out = dir + "/edit_\(loras.count).png"
            var args = ["edit", "--model", Self.path("sd1"), "--input", scene, "--method", "sdedit", "--prompt", "a blue circle",
                        "--steps", "2", "--seed", "3", "--output", out, "--quiet"]
            for l in loras { args += ["--lora", l] }
            let r = try PipelineCLITests.run(args)
            return (r.status, r.stderr, FileManager.default.contents(atPath: out))
        }
        let (e0, m0, plain) = try edit([]), (e1, m1, fused) = try edit([Self.path("lora/kohya.safetensors") + ":0.7"])
        XCTAssertEqual(e0, 0, m0); XCTAssertEqual(e1, 0, m1)
        XCTAssertNotNil(plain); XCTAssertNotEqual(plain, fused, "edit --lora changes the result")
        let (e2, m2, _) = try edit([Self.path("lora/sd2_arch.safetensors")])
        XCTAssertNotEqual(e2, 0)
        XCTAssertTrue(m2.contains("lora_A.weight"), m2)
        XCTAssertTrue(try PipelineCLITests.run(["video", "--help"]).stdout.contains("--lora PATH[:SCALE]"))
    }

    /// The fused weight is W0 + scale * alpha/r * up @ down (computed here in Double, independently of the
    /// fuse's GEMM), on the sd2 single file: a text-encoder q_proj that is a row slice of OpenCLIP's fused
    /// in_proj, and a LoCon 3x3 entry under an LDM name (input_blocks_1_0_in_layers_2 = down_blocks.0.resnets.0.conv1
    /// with layers_per_block 1). Unfused: the original values bit for bit.
    func testFusedWeightIsBasePlusScaledProduct() throws {
        let m = try StableDiffusionModel.load(path: Self.path("sd2.safetensors"), backend: Backend.cpu,
                                              configFrom: Self.path("sd2"))
        var rng = RNG(seed: 77)
        let r = 2
        let qName = "text_model.encoder.layers.0.self_attn.q_proj.weight", cName = "down_blocks.0.resnets.0.conv1.weight"
        let q = m.textEncoder.parameters.tensor(qName)!, c = m.unet.parameters.tensor(cName)!
        XCTAssertEqual(q.shape, [16, 16]); XCTAssertEqual(c.shape, [16, 16, 3, 3])
        let tensors: [String: Tensor] = [
            "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": rng.normal([r, 16]),
            "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight": rng.normal([16, r]),
            "lora_te_text_model_encoder_layers_0_self_attn_q_proj.alpha": Tensor(shape: [], values: [3]),
            "lora_unet_input_blocks_1_0_in_layers_2.lora_down.weight": rng.normal([r, 16, 3, 3]),
            "lora_unet_input_blocks_1_0_in_layers_2.lora_up.weight": rng.normal([16, r, 1, 1]),
        ]
        let tmp = NSTemporaryDirectory() + "lora_sd2_\(getpid()).safetensors"
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        try SafetensorsWriter.write(tensors, path: tmp)
        let q0 = Tensor(shape: q.shape, values: Array(q.buffer)), c0 = Tensor(shape: c.shape, values: Array(c.buffer))
        try m.setLoRAs([LoRASpec(path: tmp, scale: 0.5)])
        for (w, w0, key, coef) in [(m.textEncoder.parameters.tensor(qName)!, q0, "lora_te_text_model_encoder_layers_0_self_attn_q_proj", 0.5 * 3.0 / 2),
                                   (m.unet.parameters.tensor(cName)!, c0, "lora_unet_input_blocks_1_0_in_layers_2", 0.5)] {
            let down = tensors[key + ".lora_down.weight"]!, up = tensors[key + ".lora_up.weight"]!
            let rows = w.shape[0], cols = w.count / rows
            var maxErr = 0.0, maxDelta = 0.0
            for i in 0..<rows {
                for j in 0..<cols {
                    var d = 0.0
                    for k in 0..<r { d += Double(up.data[i * r + k]) * Double(down.data[k * cols + j]) }
                    let want = Double(w0.data[i * cols + j]) + coef * d
                    maxErr = max(maxErr, abs(Double(w.data[i * cols + j]) - want))
                    maxDelta = max(maxDelta, abs(coef * d))
                }
            }
            XCTAssertLessThan(maxErr, 1e-5, key)
            XCTAssertGreaterThan(maxDelta, 0.1, key)
        }
        try m.setLoRAs([])
        XCTAssertTrue(Self.bitEqual(m.textEncoder.parameters.tensor(qName)!, q0))
        XCTAssertTrue(Self.bitEqual(m.unet.parameters.tensor(cName)!, c0))
    }

    func testSpecParsing() throws {
        XCTAssertEqual(try LoRASpec(parsing: "a/b.safetensors"), LoRASpec(path: "a/b.safetensors", scale: 1))
        XCTAssertEqual(try LoRASpec(parsing: "a/b.safetensors:0.7"), LoRASpec(path: "a/b.safetensors", scale: 0.7))
        XCTAssertEqual(try LoRASpec(parsing: "c:/x.safetensors:-1"), LoRASpec(path: "c:/x.safetensors", scale: -1))
        XCTAssertThrowsError(try LoRASpec(parsing: "a.safetensors:nan"))
        XCTAssertThrowsError(try LoRASpec(parsing: ":0.5"))
    }
}
