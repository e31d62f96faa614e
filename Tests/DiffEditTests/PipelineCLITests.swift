import XCTest
import Foundation
@testable import DiffEdit

/// The `diffedit` executable (built next to the test bundle by `swift build --build-tests` / `swift test`):
/// generate with --init-noise against the diffusers reference, tokenize against transformers' ids, info --json,
/// and failures that exit non-zero with a message naming the argument.
final class PipelineCLITests: XCTestCase {
    static var binary: URL? {
        // Linux: the test binary .build/<config>/diffeditPackageTests.xctest sits beside `diffedit`.
        let bundle = Bundle(for: PipelineCLITests.self).bundleURL
        let test = URL(fileURLWithPath: CommandLine.arguments.first ?? "")
        for dir in [bundle, bundle.deletingLastPathComponent(), test.deletingLastPathComponent()] {
            let exe = dir.appendingPathComponent("diffedit")
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: exe.path, isDirectory: &isDir), !isDir.boolValue,
               FileManager.default.isExecutableFile(atPath: exe.path) { return exe }
        }
        return nil
    }

    func run(_ args: [String]) throws -> (status: Int32, stdout: String, stderr: String) { try Self.run(args) }

    /// Runs the `diffedit` executable (skips the test when it is not built) and collects its exit status and output.
    static func run(_ args: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        guard let exe = Self.binary else { throw XCTSkip("diffedit executable not built next to the test bundle") }
        let p = Process()
        p.executableURL = exe
        p.arguments = args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    static func path(_ rel: String) -> String { PipelineTests.path(rel) }

    func testGenerateWithInitNoiseMatchesReference() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("diffedit-cli-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let png = dir.appendingPathComponent("out.png").path, lat = dir.appendingPathComponent("lat.npy").path
        let r = try run(["generate", "--model", Self.path("sd1"), "--prompt", "a red mug on a wooden table",
                         "--negative-prompt", "blurry, low quality", "--steps", "5", "--guidance", "7.5",
                         "--width", "64", "--height", "64", "--scheduler", "dpmpp-2m", "--backend", "cpu",
                         "--init-noise", Self.path("ref/sd1/generate_dpmpp-2m/noise.npy"),
                         "--save-latents", lat, "--output", png])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("step 5/5"), "progress bar on stderr: \(r.stderr)")
        let ours = try NPY.readTensor(path: lat)
        let ref = try NPY.readTensor(path: Self.path("ref/sd1/generate_dpmpp-2m/latents.npy"))
        XCTAssertLessThanOrEqual(PipelineTests.relErr(ours, ref), 1e-3)
        let img = try ImageFile.read(path: png)
        XCTAssertEqual(img.width, 64)
        XCTAssertEqual(img.height, 64)
    }

    func testTokenizePrintsTransformersIds() throws {
        let man = try PipelineTests.manifest("sd1")
        let prompts = (man["text"] as! [String: Any])["prompts"] as! [String]
        let ids = try NPY.readTensor(path: Self.path("ref/sd1/input_ids.npy"))
        for (i, prompt) in prompts.enumerated() {
            let r = try run(["tokenize", "--model", Self.path("sd1"), "--", prompt])
            XCTAssertEqual(r.status, 0, r.stderr)
            let printed = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [NSNumber]
            XCTAssertEqual(printed.count, 77)
            let ref = (0..<77).map { Int(ids.data[i * 77 + $0]) }
            XCTAssertEqual(printed.map(\.intValue), ref, prompt)
        }
    }

    func testInfoJSON() throws {
        let r = try run(["info", "--model", Self.path("sd2"), "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(obj["kind"] as? String, "sd2")
        XCTAssertEqual((obj["scheduler"] as! [String: Any])["prediction_type"] as? String, "v_prediction")
        let vae = try ConfigFile.load(VAEConfig.self, path: Self.path("sd2/vae/config.json"))
        XCTAssertEqual((obj["vae"] as! [String: Any])["latent_factor"] as? Int, vae.downsampleFactor)
        XCTAssertEqual((obj["unet"] as! [String: Any])["levels"] as? Int,
                       try ConfigFile.load(UNetConfig.self, path: Self.path("sd2/unet/config.json")).block_out_channels.count)
        XCTAssertGreaterThan(obj["parameters"] as! Int, 100_000)
    }

    func testFailuresExitNonZeroNamingTheArgument() throws {
        let base = ["generate", "--model", Self.path("sd1"), "--prompt", "x", "--backend", "cpu", "--quiet"]
        let cases: [([String], String)] = [
            (base + ["--steps", "0", "--output", "/tmp/x.png"], "steps"),
            (base + ["--steps", "5000", "--output", "/tmp/x.png"], "steps"),
            (base + ["--guidance", "nan", "--output", "/tmp/x.png"], "guidance"),
            (base + ["--width", "63", "--output", "/tmp/x.png"], "width"),
            (base + ["--output", "/tmp/x.gif"], "--output"),
            (base + ["--steps", "many", "--output", "/tmp/x.png"], "--steps"),
            (base + ["--scheduler", "plms", "--output", "/tmp/x.png"], "scheduler"),
            (base + ["--vae-tiling", "yes", "--output", "/tmp/x.png"], "--vae-tiling"),
            (base + ["--compute", "fp8", "--output", "/tmp/x.png"], "--compute"),
            (base + ["--vae-tile-size", "100", "--output", "/tmp/x.png"], "--vae-tile-size"),
            (["generate", "--prompt", "x"], "--output"),
            (["generate", "--model", "/nonexistent/model", "--prompt", "x", "--output", "/tmp/x.png"], "/nonexistent/model"),
            (["frobnicate"], "frobnicate"),
        ]
        for (args, needle) in cases {
            let r = try run(args)
            XCTAssertNotEqual(r.status, 0, args.joined(separator: " "))
            XCTAssertTrue(r.stderr.contains(needle), "stderr should name \(needle): \(r.stderr)")
        }
        let h = try run(["generate", "--help"])
        XCTAssertEqual(h.status, 0)
        XCTAssertTrue(h.stdout.contains("--init-noise"))
    }
}
