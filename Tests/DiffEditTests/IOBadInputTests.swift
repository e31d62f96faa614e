import Foundation
import XCTest
@testable import DiffEdit

/// Bad safetensors files, generated at run time: each must give a typed error naming the file
/// (and tensor), never a crash or an out-of-bounds read.
final class IOBadInputTests: XCTestCase {
    var dir = ""
    override func setUpWithError() throws { dir = try IOTestSupport.tempDir("bad") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func path(_ n: String) -> String { (dir as NSString).appendingPathComponent(n) }

    func testMissingFile() {
        let p = path("nope.safetensors")
        IOTestSupport.assertThrows("io", [p, "no such file"]) { _ = try SafetensorsFile(path: p) }
        IOTestSupport.assertThrows("io", [p]) { _ = try CheckpointLoader.load(path: p) }
    }

    func testUnreadableFile() throws {
        let p = path("locked.safetensors")
        try SafetensorsWriter.write(["a": Tensor(shape: [1])], path: p)
        try FileManager.default.setAttributes([.posixPermissions: 0o000], ofItemAtPath: p)
        defer { try? FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: p) }
        if getuid() == 0 {
            // root can read anything: a directory in place of the file is the unreadable case then
            let d = path("dir.safetensors")
            try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
            IOTestSupport.assertThrows("io", [d, "directory"]) { _ = try SafetensorsFile(path: d) }
        } else {
            IOTestSupport.assertThrows("io", [p, "cannot open"]) { _ = try SafetensorsFile(path: p) }
        }
    }

    func testTooShortAndTruncated() throws {
        let p = path("short.safetensors")
        try IOTestSupport.write([1, 2, 3], p)
        IOTestSupport.assertThrows("io", [p, "truncated"]) { _ = try SafetensorsFile(path: p) }
        // a valid file cut in the middle of its data
        let q = path("cut.safetensors")
        try SafetensorsWriter.write(["w": Tensor(shape: [64]), "v": Tensor(shape: [64])], path: q)
        var bytes = [UInt8](FileManager.default.contents(atPath: q)!)
        bytes.removeLast(100)
        try IOTestSupport.write(bytes, q)
        IOTestSupport.assertThrows("io", [q, "outside the data area"]) { _ = try SafetensorsFile(path: q) }
        // cut inside the header
        let r = path("cuthead.safetensors")
        try IOTestSupport.write(Array(bytes.prefix(20)), r)
        IOTestSupport.assertThrows("io", [r, "past the end of the file"]) { _ = try SafetensorsFile(path: r) }
        // a huge header length (8 random bytes)
        let s = path("huge.safetensors")
        try IOTestSupport.write([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x7b, 0x7d], s)
        IOTestSupport.assertThrows("io", [s, "too large"]) { _ = try SafetensorsFile(path: s) }
    }

    func testNotJSON() throws {
        let p = path("nojson.safetensors")
        try IOTestSupport.write(IOTestSupport.rawSafetensors(header: "{not json at all", data: [0, 0, 0, 0]), p)
        IOTestSupport.assertThrows("io", [p, "JSON"]) { _ = try SafetensorsFile(path: p) }
        let q = path("array.safetensors")
        try IOTestSupport.write(IOTestSupport.rawSafetensors(header: "[1,2]", data: []), q)
        IOTestSupport.assertThrows("io", [q, "JSON object"]) { _ = try SafetensorsFile(path: q) }
    }

    func testOffsetsOutsideFile() throws {
        let p = path("outside.safetensors")
        try IOTestSupport.write(IOTestSupport.rawSafetensors(
            header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4096,4104]}}"#,
            data: [UInt8](repeating: 0, count: 16)), p)
        IOTestSupport.assertThrows("io", [p, "b", "outside"]) { _ = try SafetensorsFile(path: p) }
        let q = path("negative.safetensors")
        try IOTestSupport.write(IOTestSupport.rawSafetensors(
            header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#, data: [UInt8](repeating: 0, count: 8)), q)
        IOTestSupport.assertThrows("io", [q, "a", "out of order"]) { _ = try SafetensorsFile(path: q) }
        for (i, offs) in ["[0, 1e30]", "[0, 99999999999999999999999]", "[0.5, 8]", "[0]", "\"0,8\""].enumerated() {
            let r = path("offs\(i).safetensors")
            try IOTestSupport.write(IOTestSupport.rawSafetensors(
                header: "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":\(offs)}}", data: [UInt8](repeating: 0, count: 8)), r)
            IOTestSupport.assertThrows("io", [r, "a"]) { _ = try SafetensorsFile(path: r) }
        }
    }

    func testOverlappingOffsets() throws {
        let p = path("overlap.safetensors")
        try IOTestSupport.write(IOTestSupport.rawSafetensors(
            header: #"{"first":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"second":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}"#,
            data: [UInt8](repeating: 0, count: 24)), p)
        IOTestSupport.assertThrows("io", [p, "first", "second", "overlap"]) { _ = try SafetensorsFile(path: p) }
    }

    func testSizeContradictsShape() throws {
        let p = path("size.safetensors")
        try IOTestSupport.write(IOTestSupport.rawSafetensors(
            header: #"{"w":{"dtype":"F16","shape":[3,3],"data_offsets":[0,16]}}"#, data: [UInt8](repeating: 0, count: 16)), p)
        IOTestSupport.assertThrows("io", [p, "w", "[3, 3]", "F16"]) { _ = try SafetensorsFile(path: p) }
        let q = path("badshape.safetensors")
        try IOTestSupport.write(IOTestSupport.rawSafetensors(
            header: #"{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]), q)
        IOTestSupport.assertThrows("io", [q, "w", "dimension"]) { _ = try SafetensorsFile(path: q) }
    }

    func testUnsupportedDType() throws {
        let p = path("i8.safetensors")
        try IOTestSupport.write(IOTestSupport.rawSafetensors(
            header: #"{"ok":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"ids":{"dtype":"I8","shape":[4],"data_offsets":[4,8]}}"#,
            data: [0, 0, 128, 63, 1, 2, 3, 4]), p)
        let f = try SafetensorsFile(path: p)        // a defined dtype is fine in the header ...
        XCTAssertEqual(try f.tensor("ok").toArray(), [1])
        IOTestSupport.assertThrows("unsupported", [p, "ids", "I8"]) { _ = try f.tensor("ids") }   // ... but not loadable
        let q = path("weird.safetensors")
        try IOTestSupport.write(IOTestSupport.rawSafetensors(
            header: #"{"x":{"dtype":"Q4_K","shape":[1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]), q)
        // a dtype the format does not define is a malformed file: MODEL (issue 21), not UNSUPPORTED
        IOTestSupport.assertThrows("model", [q, "x", "Q4_K"]) { _ = try SafetensorsFile(path: q) }
    }

    func testPickleRefused() throws {
        for (name, bytes) in [("model.ckpt", [UInt8]([0x50, 0x4B, 3, 4, 0, 0])), ("model.pt", [0x80, 2, 0x7d]),
                              ("pytorch_model.bin", [0x80, 4, 0x95]), ("renamed.safetensor", [0x50, 0x4B, 3, 4])] {
            let p = path(name)
            try IOTestSupport.write(bytes, p)
            IOTestSupport.assertThrows("unsupported", [p, "pickle", "execute", ".safetensors", "diffusers folder"]) {
                _ = try CheckpointLoader.load(path: p)
            }
        }
    }

    func testFolderWithPickleWeightsOnlyRefused() throws {
        let f = path("pkl")
        for c in ["unet", "vae", "text_encoder"] {
            try FileManager.default.createDirectory(atPath: f + "/" + c, withIntermediateDirectories: true)
            try IOTestSupport.write(Array("{}".utf8), f + "/\(c)/config.json")
        }
        try IOTestSupport.write([0x50, 0x4B, 3, 4], f + "/unet/diffusion_pytorch_model.bin")
        IOTestSupport.assertThrows("unsupported", [f + "/unet/diffusion_pytorch_model.bin", "pickle"]) {
            _ = try CheckpointLoader.load(path: f)
        }
    }

    /// Deterministic mutation fuzzing: corrupted or cut safetensors/PNG/JPEG files must give an error
    /// or a valid result, never a crash or an out-of-bounds read (the process would die).
    func testMutatedFilesNeverCrash() throws {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> Int { state = state &* 6364136223846793005 &+ 1442695040888963407; return Int(state >> 33) }
        let st = path("good.safetensors")
        try SafetensorsWriter.write(["a.weight": Tensor(shape: [3, 4], values: (0..<12).map(Float.init)),
                                     "b": Tensor(shape: [5], values: [1, 2, 3, 4, 5])], dtype: "F16", path: st)
        let img = RGBImage(width: 16, height: 8, pixels: (0..<(16 * 8 * 3)).map { UInt8($0 % 251) })
        try ImageFile.write(img, path: path("good.png"))
        try ImageFile.write(img, path: path("good.jpg"))
        var errors = 0, successes = 0
        for name in ["good.safetensors", "good.png", "good.jpg"] {
            let orig = [UInt8](FileManager.default.contents(atPath: path(name))!)
            for i in 0..<150 {
                var b = orig
                switch i % 3 {
                case 0: b = Array(b.prefix(next() % b.count))                                  // truncate
                case 1: for _ in 0..<(1 + next() % 4) { b[next() % min(b.count, 160)] = UInt8(next() % 256) }   // header bytes
                default: for _ in 0..<(1 + next() % 8) { b[next() % b.count] = UInt8(next() % 256) }            // anywhere
                }
                let p = path("m\(i)-" + name)
                try IOTestSupport.write(b, p)
                do {
                    if name.hasSuffix(".safetensors") {
                        let f = try SafetensorsFile(path: p)
                        for n in f.names { _ = try f.tensor(n).toArray() }
                    } else {
                        _ = try ImageFile.readWithAlpha(path: p)
                    }
                    successes += 1
                } catch let e as DiffEditError {
                    XCTAssertTrue(e.message.contains(p), "error does not name the file: \(e.message)")
                    errors += 1
                }
                try? FileManager.default.removeItem(atPath: p)
            }
        }
        XCTAssertEqual(errors + successes, 450)
        XCTAssertGreaterThan(errors, 100)
    }
}
