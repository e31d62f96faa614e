import Foundation
import XCTest
@testable import DiffEdit

/// Provenance: the native dwtDctSvd watermark (against fixtures of the invisible-watermark package, made by
/// tools/make_provenance_fixtures.py), SHA-256 and the model-hash cache, XMP packets (new, extended, malformed),
/// XMP in PNG and JPEG files, and the CLI's record on generate/edit/info --provenance.
final class ProvenanceTests: XCTestCase {
    static func fixture(_ name: String) -> String { PipelineTests.path("provenance/" + name) }

    static func bits(_ s: String) -> [UInt8] { s.map { $0 == "1" ? 1 : 0 } }

    /// imwatermark's readings, recorded by the fixture script.
    static func expected() throws -> [String: String] {
        let data = try Data(contentsOf: URL(fileURLWithPath: fixture("expected.json")))
        let obj = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        return obj["imwatermark_bits"] as! [String: String]
    }

    func testMessageIsDiffusersSDXLBits() throws {
        let e = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Self.fixture("expected.json")))) as! [String: Any]
        XCTAssertEqual(InvisibleWatermark.message, Self.bits(e["message"] as! String))
        XCTAssertEqual(InvisibleWatermark.message.count, 48)
    }

    /// The native decoder gives imwatermark's exact bits on the same files: the package's own mark (48/48), the
    /// unmarked picture (noise-like bits, so the check can fail) and diffedit's mark.
    func testNativeDecoderMatchesImwatermark() throws {
        let exp = try Self.expected()
        for name in ["py_marked.png", "native_marked.png", "source.png"] {
            let img = try ImageFile.read(path: Self.fixture(name))
            let d = try XCTUnwrap(InvisibleWatermark.decode(img))
            XCTAssertEqual(d.bits, Self.bits(exp[name]!), "\(name): native decode differs from imwatermark's")
        }
        XCTAssertEqual(InvisibleWatermark.matchingBits(try ImageFile.read(path: Self.fixture("py_marked.png"))), 48)
        let unmarked = try XCTUnwrap(InvisibleWatermark.matchingBits(try ImageFile.read(path: Self.fixture("source.png"))))
        XCTAssertLessThan(unmarked, 40, "an unmarked picture must not read as marked")
    }

    /// The native encoder, run now on the fixture's source, reproduces the committed native_marked.png that
    /// imwatermark read as the full message (expected.json, also after JPEG q90).
    func testNativeEncoderReproducesFixtureImwatermarkReads() throws {
        let exp = try Self.expected()
        XCTAssertEqual(Self.bits(exp["native_marked.png"]!), InvisibleWatermark.message)
        XCTAssertGreaterThanOrEqual(zip(Self.bits(exp["native_marked.png after JPEG q90"]!), InvisibleWatermark.message).filter { $0 == $1 }.count, 44)
        let source = try ImageFile.read(path: Self.fixture("source.png"))
        let marked = InvisibleWatermark.embed(source)
        XCTAssertEqual(marked, try ImageFile.read(path: Self.fixture("native_marked.png")))
        XCTAssertGreaterThanOrEqual(Self.psnr(marked, source), 38)
    }

    static func psnr(_ a: RGBImage, _ b: RGBImage) -> Double {
        var se = 0.0
        for i in 0..<a.pixels.count { let d = Double(a.pixels[i]) - Double(b.pixels[i]); se += d * d }
        let mse = se / Double(a.pixels.count)
        return mse == 0 ? .infinity : 10 * log10(255 * 255 / mse)
    }

    /// Round trip on flat, smooth and textured pictures of several sizes (odd ones included: the decoder reads
    /// the top-left rows//4*4 x cols//4*4), PSNR >= 38 dB; under 256 px nothing changes.
    func testRoundTripOnPictureKinds() throws {
        var rng = SplitMix(seed: 5)
        for (w, h) in [(256, 256), (301, 259)] {
            var kinds: [(String, RGBImage)] = [("flat-grey", RGBImage(width: w, height: h, fill: 128)),
                                               ("flat-white", RGBImage(width: w, height: h, fill: 255))]
            var smooth = [UInt8](repeating: 0, count: w * h * 3), noise = smooth
            for y in 0..<h { for x in 0..<w {
                let i = (y * w + x) * 3
                smooth[i] = UInt8(x * 255 / w); smooth[i + 1] = UInt8(y * 255 / h); smooth[i + 2] = UInt8((x + y) * 255 / (w + h))
                for c in 0..<3 { noise[i + c] = UInt8(truncatingIfNeeded: rng.next()) }
            } }
            kinds.append(("smooth", RGBImage(width: w, height: h, pixels: smooth)))
            kinds.append(("textured-noise", RGBImage(width: w, height: h, pixels: noise)))
            for (name, img) in kinds where w == 256 || name == "smooth" {   // the odd size once (CI time)
                let marked = InvisibleWatermark.embed(img)
                XCTAssertEqual(InvisibleWatermark.matchingBits(marked), 48, "\(name) \(w)x\(h)")
                XCTAssertGreaterThanOrEqual(Self.psnr(marked, img), 38, "\(name) \(w)x\(h)")
            }
        }
        let small = RGBImage(width: 255, height: 400, fill: 90)
        XCTAssertEqual(InvisibleWatermark.embed(small), small)
        XCTAssertNil(InvisibleWatermark.decode(small))
    }

    struct SplitMix { var seed: UInt64; mutating func next() -> UInt64 {
        seed &+= 0x9E3779B97F4A7C15; var z = seed
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9; z = (z ^ (z >> 27)) &* 0x94D049BB133111EB; return z ^ (z >> 31)
    } }

    func testSHA256Vectors() {
        XCTAssertEqual(SHA256.hex(of: []), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex(of: Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hex(of: Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        // streaming in odd pieces == one shot (a million 'a')
        var s = SHA256()
        let a = [UInt8](repeating: 0x61, count: 1_000_000)
        var i = 0
        while i < a.count { let n = min(777, a.count - i); s.update(Array(a[i..<(i + n)])); i += n }
        XCTAssertEqual(SHA256.hex(s.finalize()), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    /// The hash is computed once and read from the cache while size and mtime match; a changed file is hashed
    /// again; a read-only folder puts the cache in DIFFEDIT_CACHE_DIR.
    func testModelHashCache() throws {
        let dir = try IOTestSupport.tempDir("hash")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let f = dir + "/model.safetensors"
        try IOTestSupport.write(Array("weights v1".utf8), f)
        var hashed: [String] = []
        let h1 = try ModelHash.sha256(modelPath: f, hashed: { hashed.append($0) })
        XCTAssertEqual(h1, SHA256.hex(of: Array("weights v1".utf8)))
        XCTAssertEqual(hashed, [f])
        let cache = f + ModelHash.cacheSuffix
        XCTAssertTrue(FileManager.default.fileExists(atPath: cache))
        // a second request reads the cache: prove it by planting a different hash with the same size and mtime
        let planted = String(repeating: "ab", count: 32)
        let text = try String(contentsOfFile: cache, encoding: .utf8).replacingOccurrences(of: h1, with: planted)
        try text.write(toFile: cache, atomically: false, encoding: .utf8)
        XCTAssertEqual(try ModelHash.sha256(modelPath: f, hashed: { hashed.append($0) }), planted)
        XCTAssertEqual(hashed.count, 1)
        // the file changes (same size, new mtime): hashed again
        usleep(20_000)
        try IOTestSupport.write(Array("weights v2".utf8), f)
        XCTAssertEqual(try ModelHash.sha256(modelPath: f, hashed: { hashed.append($0) }), SHA256.hex(of: Array("weights v2".utf8)))
        XCTAssertEqual(hashed.count, 2)
        // a diffusers-like folder: sha256sum listing of its weight files, sorted
        let m = dir + "/folder"
        try FileManager.default.createDirectory(atPath: m + "/unet", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: m + "/vae", withIntermediateDirectories: true)
        try IOTestSupport.write(Array("u".utf8), m + "/unet/diffusion_pytorch_model.safetensors")
        try IOTestSupport.write(Array("v".utf8), m + "/vae/diffusion_pytorch_model.safetensors")
        try IOTestSupport.write(Array("{}".utf8), m + "/model_index.json")
        let listing = SHA256.hex(of: Array("u".utf8)) + "  unet/diffusion_pytorch_model.safetensors\n"
            + SHA256.hex(of: Array("v".utf8)) + "  vae/diffusion_pytorch_model.safetensors\n"
        XCTAssertEqual(try ModelHash.sha256(modelPath: m), SHA256.hex(of: Array(listing.utf8)))
        // read-only folder: the cache goes to DIFFEDIT_CACHE_DIR
        if getuid() != 0 {   // root writes anywhere
            let ro = dir + "/ro"
            try FileManager.default.createDirectory(atPath: ro, withIntermediateDirectories: true)
            try IOTestSupport.write(Array("ro".utf8), ro + "/w.safetensors")
            chmod(ro, 0o555)
            defer { chmod(ro, 0o755) }
            setenv("DIFFEDIT_CACHE_DIR", dir + "/cache", 1)
            defer { unsetenv("DIFFEDIT_CACHE_DIR") }
            _ = try ModelHash.sha256(modelPath: ro + "/w.safetensors")
            XCTAssertFalse(FileManager.default.fileExists(atPath: ro + "/w.safetensors" + ModelHash.cacheSuffix))
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir + "/cache/hashes").count, 1)
        }
    }

    static func record(_ command: String = "edit") -> ProvenanceRecord {
        var r = ProvenanceRecord(command: command, model: "sd1 <&>", modelSHA256: String(repeating: "0", count: 64),
                                 method: "p2p", prompt: "a \"blue\" cat & <dog>\n", sourcePrompt: "a cat", seed: 42, steps: 20,
                                 guidance: 7.5, watermark: false)
        r.loras = [.init(name: "style.safetensors", scale: 0.8)]
        return r
    }

    func testNewPacketParsesAndCarriesTheRecord() throws {
        let r = Self.record()
        let packet = XMPPacket.make(r)
        let tree = try XMLTree(parsing: packet)
        XCTAssertEqual(tree.root.name, "x:xmpmeta")
        let fields = try XMPPacket.read(packet)
        let dict = Dictionary(fields, uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(dict["DigitalSourceType"], "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia")
        XCTAssertEqual(dict["Prompt"], "a \"blue\" cat & <dog>\n")
        XCTAssertEqual(dict["Model"], "sd1 <&>")
        XCTAssertEqual(dict["Seed"], "42")
        XCTAssertEqual(dict["Guidance"], "7.5")
        XCTAssertEqual(dict["LoRAs"], "Name=style.safetensors Scale=0.8")
        XCTAssertEqual(Dictionary(try XMPPacket.read(XMPPacket.make(Self.record("generate"))), uniquingKeysWith: { a, _ in a })["DigitalSourceType"],
                       "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia")
    }

    /// A foreign packet keeps its properties; its DigitalSourceType is replaced; an earlier diffedit record
    /// moves into History.
    func testExtendKeepsForeignPropertiesAndHistory() throws {
        let foreign = try XCTUnwrap(ImageFile.readXMP(path: Self.fixture("foreign_xmp.jpg")))
        let once = try XMPPacket.extend(foreign, with: Self.record("generate"))
        XCTAssertTrue(once.contains("Ada Example") && once.contains("xmp:CreatorTool=\"Some Camera 1.0\""), once)
        XCTAssertEqual(Dictionary(try XMPPacket.read(once), uniquingKeysWith: { a, _ in a })["DigitalSourceType"],
                       ProvenanceRecord.trainedAlgorithmicMedia)
        let twice = try XMPPacket.extend(once, with: Self.record("edit"))
        let tree = try XMLTree(parsing: twice)
        var types: [String] = []
        func walk(_ e: XMLElement) { if e.localName == "DigitalSourceType" && e.prefix == "Iptc4xmpExt" { types.append(e.text) }; e.elements.forEach(walk) }
        walk(tree.root)
        XCTAssertEqual(types, [ProvenanceRecord.compositeWithTrainedAlgorithmicMedia], "one DigitalSourceType, the newest")
        let history = try XMPPacket.read(twice).filter { $0.0 == "History" }.map { $0.1 }
        XCTAssertEqual(history.count, 2, "\(history)")
        XCTAssertTrue(history[0].contains("digitalCapture"), history[0])
        XCTAssertTrue(history[1].contains("Command=generate"), history[1])
        XCTAssertTrue(twice.contains("Ada Example"))
    }

    func testMalformedPacketsAreRejected() throws {
        let corrupt = try XCTUnwrap(ImageFile.readXMP(path: Self.fixture("corrupt_xmp.png")))
        XCTAssertThrowsError(try XMPPacket.extend(corrupt, with: Self.record()))
        for bad in ["", "<a>", "<a></b>", "<a x=1/>", "<a x='1' x='2'/>", "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\"/>", "text"] {
            XCTAssertThrowsError(try XMPPacket.extend(bad, with: Self.record()), bad)
        }
    }

    /// XMP in PNG (iTXt) and JPEG (APP1): written, read back byte for byte, pixels unchanged (PNG).
    func testImageFilesCarryThePacket() throws {
        let dir = try IOTestSupport.tempDir("xmp")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let img = try ImageFile.read(path: Self.fixture("source.png"))
        let packet = XMPPacket.make(Self.record())
        for ext in ["png", "jpg"] {
            let p = dir + "/out." + ext
            try ImageFile.write(img, path: p, xmp: packet)
            XCTAssertEqual(try ImageFile.readXMP(path: p), packet)
            if ext == "png" { XCTAssertEqual(try ImageFile.read(path: p), img) }
            try ImageFile.write(img, path: p)
            XCTAssertNil(try ImageFile.readXMP(path: p))
        }
        // a broken container is an error naming the file, not a crash
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: Self.fixture("corrupt_xmp.png"))))
        bytes[35] = 0x7F   // the iTXt chunk's length now runs past the end
        try IOTestSupport.write(bytes, dir + "/broken.png")
        IOTestSupport.assertThrows("io", ["broken.png"]) { _ = try ImageFile.readXMP(path: dir + "/broken.png") }
        let big = String(repeating: "x", count: ImageFile.maxJPEGXMP + 1)
        IOTestSupport.assertThrows("io", ["XMP"]) { try ImageFile.write(img, path: dir + "/big.jpg", xmp: big) }
    }

    /// The CLI: generate marks and records; edit keeps a foreign packet, replaces a corrupt one with a line on
    /// stderr (the edit succeeds); --no-metadata writes none; info --provenance reads it back.
    func testCLIRecords() throws {
        let dir = try IOTestSupport.tempDir("cli")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let model = PipelineTests.path("sd1")
        let g = dir + "/g.png"
        var r = try PipelineCLITests.run(["generate", "--model", model, "--prompt", "a red cup", "--steps", "1",
                                          "--width", "256", "--height", "256", "--seed", "3", "--output", g, "--quiet"])
        XCTAssertEqual(r.status, 0, r.stderr)
        r = try PipelineCLITests.run(["info", "--provenance", g, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let info = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        let rec = info["record"] as! [String: Any]
        XCTAssertEqual(rec["DigitalSourceType"] as? String, ProvenanceRecord.trainedAlgorithmicMedia)
        XCTAssertEqual(rec["Prompt"] as? String, "a red cup")
        XCTAssertEqual(rec["Seed"] as? String, "3")
        XCTAssertEqual(rec["Model"] as? String, "sd1")
        XCTAssertEqual(rec["ModelSHA256"] as? String, try ModelHash.sha256(modelPath: model))
        XCTAssertEqual((info["watermark"] as! [String: Any])["matching_bits"] as? Int, 48)

        for (input, keeps) in [(Self.fixture("foreign_xmp.jpg"), "Ada Example"), (Self.fixture("corrupt_xmp.png"), nil as String?)] {
            let out = dir + "/e.png"
            // the second edit with a LoRA: the record names it with its scale and hash
            let lora = keeps == nil ? ["--lora", PipelineTests.path("lora/kohya.safetensors") + ":0.5"] : []
            r = try PipelineCLITests.run(["edit", "--model", model, "--input", input, "--method", "sdedit", "--prompt", "a cup",
                                          "--steps", "2", "--output", out, "--quiet"] + lora)
            XCTAssertEqual(r.status, 0, r.stderr)
            let packet = try XCTUnwrap(ImageFile.readXMP(path: out))
            let dict = Dictionary(try XMPPacket.read(packet), uniquingKeysWith: { a, _ in a })
            XCTAssertEqual(dict["DigitalSourceType"], ProvenanceRecord.compositeWithTrainedAlgorithmicMedia)
            XCTAssertEqual(dict["Method"], "sdedit")
            if !lora.isEmpty {
                XCTAssertEqual(dict["LoRAs"], "Name=kohya.safetensors Scale=0.5 SHA256="
                               + (try ModelHash.fileSHA256(PipelineTests.path("lora/kohya.safetensors"))))
            }
            if let k = keeps { XCTAssertTrue(packet.contains(k)) }
            else { XCTAssertTrue(r.stderr.contains("malformed") && r.stderr.contains("corrupt_xmp.png"), r.stderr) }
            // edits are not marked by default
            XCTAssertEqual(dict["Watermark"], "none")
        }
        let n = dir + "/n.png"
        r = try PipelineCLITests.run(["edit", "--model", model, "--input", Self.fixture("source.png"), "--method", "sdedit",
                                      "--prompt", "a cup", "--steps", "2", "--output", n, "--quiet", "--no-metadata"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertNil(try ImageFile.readXMP(path: n))
    }
}
