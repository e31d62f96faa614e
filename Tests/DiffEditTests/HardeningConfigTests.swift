import Foundation
import XCTest
@testable import DiffEdit

/// Config values that are wrong or absurd are refused when the model loads, as `.model` naming the file
/// and field, before anything is sized from them (issue 21): no trap on a huge allocation, no bad
/// scheduler config found only at edit time, no "not valid JSON" for a float where an integer belongs.
final class HardeningConfigTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = try IOTestSupport.tempDir("cfg") + "/sd1"
        try FileManager.default.copyItem(atPath: IOTestSupport.fixtures + "/sd1", toPath: dir)
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: (dir as NSString).deletingLastPathComponent) }

    var unet: String { dir + "/unet/config.json" }
    var vae: String { dir + "/vae/config.json" }
    var text: String { dir + "/text_encoder/config.json" }
    var sched: String { dir + "/scheduler/scheduler_config.json" }

    /// Writes `file` (a JSON object) with `key` set to the raw JSON text `json`.
    func patch(_ file: String, _ key: String, _ json: String) throws {
        let orig = try String(contentsOfFile: file, encoding: .utf8)
        var obj = try JSONSerialization.jsonObject(with: Data(orig.utf8)) as! [String: Any]
        obj[key] = "@@VALUE@@"
        var out = String(data: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), encoding: .utf8)!
        out = out.replacingOccurrences(of: "\"@@VALUE@@\"", with: json)
        try out.write(toFile: file, atomically: true, encoding: .utf8)
    }

    /// With `file`'s `key` set to `json`, loading the model must throw `kind` naming the file and every needle;
    /// the file is restored afterwards.
    func assertLoadRefuses(_ file: String, _ key: String, _ json: String, _ needles: [String], kind: String = "model",
                           line: UInt = #line) throws {
        let orig = try Data(contentsOf: URL(fileURLWithPath: file))
        defer { try? orig.write(to: URL(fileURLWithPath: file)) }
        try patch(file, key, json)
        IOTestSupport.assertThrows(kind, [file] + needles, line: line) {
            _ = try StableDiffusionModel.load(path: self.dir, backend: .cpu)
        }
    }

    func testFixtureStillLoads() throws {
        let m = try StableDiffusionModel.load(path: dir, backend: .cpu)
        XCTAssertEqual(m.unetConfig.sample_size, 8)
    }

    // MARK: item 2: wrong codes

    func testBadSchedulerConfigsAreRefusedAtLoad() throws {
        try assertLoadRefuses(sched, "num_train_timesteps", "0", ["field num_train_timesteps", "0"])
        try assertLoadRefuses(sched, "beta_end", "1.5", ["field beta_end", "1.5"])
        try assertLoadRefuses(sched, "beta_start", "-0.1", ["field beta_start", "-0.1"])
        try assertLoadRefuses(sched, "prediction_type", "\"banana\"", ["field prediction_type", "banana"])
        try assertLoadRefuses(sched, "timestep_spacing", "\"sideways\"", ["field timestep_spacing", "sideways"])
        try assertLoadRefuses(sched, "beta_schedule", "\"sigmoid\"", ["field beta_schedule", "sigmoid"])
        try assertLoadRefuses(sched, "steps_offset", "-3", ["field steps_offset", "-3"])
        // the config a scheduler would refuse is refused by the loader too (not only at edit time)
        var c = SchedulerConfig(); c.prediction_type = "banana"
        XCTAssertThrowsError(try SchedulerFactory.make(name: "ddim", config: c))
    }

    func testFloatWhereIntegerBelongsNamesTheField() throws {
        try assertLoadRefuses(unet, "layers_per_block", "1.5", ["field layers_per_block", "1.5"])
        try assertLoadRefuses(text, "num_hidden_layers", "2.5", ["field num_hidden_layers: expected an integer, got 2.5"])
        try assertLoadRefuses(unet, "block_out_channels", "[16, 32.5]", ["field block_out_channels[1]: expected an integer, got 32.5"])
        try assertLoadRefuses(sched, "num_train_timesteps", "1000.5", ["field num_train_timesteps: expected an integer, got 1000.5"])
        try assertLoadRefuses(unet, "transformer_layers_per_block", "1.5", ["field transformer_layers_per_block", "1.5"])
        try assertLoadRefuses(vae, "layers_per_block", "1e30", ["field layers_per_block: expected an integer, got 1e+30"])
        // a string where a number belongs says what it got too
        try assertLoadRefuses(unet, "sample_size", "\"big\"", ["field sample_size: expected an integer, got \"big\""])
        // a float in a float field is fine; broken JSON is still "not valid JSON", with the offset
        let orig = try Data(contentsOf: URL(fileURLWithPath: vae))
        try patch(vae, "scaling_factor", "0.5")
        XCTAssertEqual(try StableDiffusionModel.load(path: dir, backend: .cpu).vaeConfig.scaling_factor, 0.5)
        try "{\"hidden_size\": 32,".write(toFile: text, atomically: true, encoding: .utf8)
        IOTestSupport.assertThrows("model", [text, "not valid JSON", "byte"]) { _ = try CheckpointLoader.load(path: self.dir) }
        try orig.write(to: URL(fileURLWithPath: vae))
    }

    // MARK: item 3: values that would make Swift trap on a huge allocation

    func testHugeConfigValuesAreBoundedAtLoad() throws {
        let t0 = Date()
        try assertLoadRefuses(unet, "layers_per_block", "1000000000", ["field layers_per_block", "1000000000", "1...16"])
        try assertLoadRefuses(unet, "transformer_layers_per_block", "1000000000", ["field transformer_layers_per_block", "1000000000"])
        try assertLoadRefuses(unet, "transformer_layers_per_block", "[1, 1000000000]", ["field transformer_layers_per_block[1]", "1000000000"])
        try assertLoadRefuses(vae, "layers_per_block", "1000000000", ["field layers_per_block", "1000000000"])
        try assertLoadRefuses(text, "num_hidden_layers", "1000000000", ["field num_hidden_layers", "1000000000"])
        try assertLoadRefuses(unet, "sample_size", "4216", ["field sample_size", "4216", "1...512"])
        try assertLoadRefuses(unet, "sample_size", "1000000000", ["field sample_size", "1000000000"])
        try assertLoadRefuses(unet, "block_out_channels", "[16, 32, 64, 64, 64, 64, 64, 64, 64]", ["field block_out_channels", "9 entries"])
        try assertLoadRefuses(vae, "scaling_factor", "0", ["field scaling_factor", "non-zero"])
        XCTAssertLessThan(Date().timeIntervalSince(t0), 30)
    }

    /// A checkpoint whose configs come from code (not a file) is checked when the model is built.
    func testConfigsFromCodeAreCheckedWhenTheModelIsBuilt() throws {
        var ck = try CheckpointLoader.load(path: dir)
        ck.unetConfig.layers_per_block = .int(1_000_000_000)
        IOTestSupport.assertThrows("model", [dir, "unet config", "field layers_per_block"]) {
            _ = try StableDiffusionModel(checkpoint: ck, backend: .cpu)
        }
        ck = try CheckpointLoader.load(path: dir)
        ck.unetConfig.sample_size = 512
        ck.vaeConfig.block_out_channels = [8, 16, 16, 16, 16]   // factor 16: native 8192
        IOTestSupport.assertThrows("model", [dir, "field sample_size", "8192"]) {
            _ = try StableDiffusionModel(checkpoint: ck, backend: .cpu)
        }
    }

    /// A request whose working set could not fit is refused with .outOfMemory naming the number, before
    /// anything is allocated; the model stays usable.
    func testAbsurdGenerateIsRefusedBeforeAllocating() throws {
        let m = try StableDiffusionModel.load(path: dir, backend: .cpu)
        var o = GenerateOptions(prompt: "a cat")
        o.width = 16384; o.height = 16384; o.steps = 1
        o.maxMemory = 8 << 30   // the machine's memory when nil: fixed here so that the test holds on any machine
        let t0 = Date()
        do {
            _ = try m.generate(o)
            XCTFail("a 16384x16384 generate ran")
        } catch DiffEditError.outOfMemory(let msg) {
            XCTAssertTrue(msg.contains("16384x16384") && msg.contains("bytes") && msg.contains("width/height"), msg)
            XCTAssertTrue(msg.contains(String(m.estimatedWorkingSet(width: 16384, height: 16384, unetItems: 2))), msg)
        }
        XCTAssertLessThan(Date().timeIntervalSince(t0), 2)
        // the estimate grows with the size and the limit is honoured exactly
        let small = m.estimatedWorkingSet(width: 64, height: 64, unetItems: 2)
        XCTAssertGreaterThan(small, 0)
        XCTAssertLessThan(small, m.estimatedWorkingSet(width: 128, height: 128, unetItems: 2))
        XCTAssertNoThrow(try m.checkWorkingSet(width: 64, height: 64, unetItems: 2, limit: small))
        XCTAssertThrowsError(try m.checkWorkingSet(width: 64, height: 64, unetItems: 2, limit: small - 1))
        // with the machine's memory as the limit (nil), a request far above it is refused too
        if let phys = StableDiffusionModel.physicalMemory, m.estimatedWorkingSet(width: 16384, height: 16384, unetItems: 2) > phys {
            o.maxMemory = nil
            XCTAssertThrowsError(try m.generate(o)) { e in
                guard case .outOfMemory? = e as? DiffEditError else { return XCTFail("\(e)") }
            }
        }
        // and the model still works
        o.maxMemory = nil
        o.width = 64; o.height = 64; o.steps = 2
        XCTAssertEqual(try m.generate(o).image.width, 64)
    }
}
