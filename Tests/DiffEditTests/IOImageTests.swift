import Foundation
import XCTest
@testable import DiffEdit

final class IOImageTests: XCTestCase {
    var dir = ""
    override func setUpWithError() throws { dir = try IOTestSupport.tempDir("img") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }
    func path(_ n: String) -> String { (dir as NSString).appendingPathComponent(n) }

    // Hand-made by PIL: 4x3 palette PNG (2-bit), the same with tRNS alpha [255, 128, 0, 255],
    // a 2x2 gray+alpha PNG, and a 16x8 RGB JPEG of (16x, 32y, 128).
    static let palettePNG = "iVBORw0KGgoAAAANSUhEUgAAAAQAAAADAgMAAADJmkZVAAAADFBMVEX/AAAA/wAAAP8KFB4iiCkEAAAADklEQVR42mOQZnjC/AIABCcB657O/MsAAAAASUVORK5CYII="
    static let paletteAlphaPNG = "iVBORw0KGgoAAAANSUhEUgAAAAQAAAADAgMAAADJmkZVAAAADFBMVEX/AAAA/wAAAP8KFB4iiCkEAAAABHRSTlP/gAD/oaGUZgAAAA5JREFUeNpjkGZ4wvwCAAQnAeuezvzLAAAAAElFTkSuQmCC"
    static let grayAlphaPNG = "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAQAAADYv8WvAAAAEklEQVR4nGNg+J9ixHCC4f9/ABIHBFylnzHnAAAAAElFTkSuQmCC"
    static let gradientJPEG = "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAIBAQEBAQIBAQECAgICAgQDAgICAgUEBAMEBgUGBgYFBgYGBwkIBgcJBwYGCAsICQoKCgoKBggLDAsKDAkKCgr/2wBDAQICAgICAgUDAwUKBwYHCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgr/wAARCAAIABADASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwDwP4Uf8Eqf9UB4b9P+WVfTPwo/4JU/6r/im/T/AJZUUV81xj4m8X+9+/8Az/zPzn6NvjFx5+5/2nt38vM//9k="

    // 4x1 16-bit RGB (0, 0x8080, 0x4040, 0xffff grays, no gAMA) and a 3x2 1-bit black/white PNG.
    static let rgb16PNG = "iVBORw0KGgoAAAANSUhEUgAAAAQAAAABEAIAAAAmzkTZAAAAE0lEQVR4nGNgAIMGMHAAg/9gAABRxAp74THllgAAAABJRU5ErkJggg=="
    static let bitPNG = "iVBORw0KGgoAAAANSUhEUgAAAAMAAAACAQAAAAC1D1u3AAAADElEQVR4nGNwYDgAAAGEAQEKf5BQAAAAAElFTkSuQmCC"

    /// Like PIL (what diffusers reads images with): 16-bit samples keep their high byte, no gamma transform.
    func testSixteenBitAndOneBitPNG() throws {
        let a = try ImageFile.read(path: try fixture(Self.rgb16PNG, "rgb16.png"))
        XCTAssertEqual(a.pixels, [0, 0, 0, 128, 128, 128, 64, 64, 64, 255, 255, 255])
        let b = try ImageFile.readGray(path: try fixture(Self.bitPNG, "bw.png"))
        XCTAssertEqual(b.pixels, [0, 255, 0, 255, 255, 0])
    }

    func fixture(_ b64: String, _ name: String) throws -> String {
        let p = path(name)
        try IOTestSupport.write([UInt8](Data(base64Encoded: b64)!), p)
        return p
    }

    func gradient(_ w: Int, _ h: Int) -> RGBImage {
        var px = [UInt8]()
        let dw = max(w - 1, 1), dh = max(h - 1, 1)
        for y in 0..<h {
            for x in 0..<w {
                let r = UInt8(x * 255 / dw), g = UInt8(y * 255 / dh), b = UInt8((x * 7 + y * 13) % 256)
                px.append(r); px.append(g); px.append(b)
            }
        }
        return RGBImage(width: w, height: h, pixels: px)
    }

    func testPNGRoundTripRGBAndGray() throws {
        let img = gradient(13, 7)
        try ImageFile.write(img, path: path("a.png"))
        XCTAssertEqual(try ImageFile.read(path: path("a.png")), img)
        XCTAssertNil(try ImageFile.readWithAlpha(path: path("a.png")).alpha)
        let mask = GrayImage(width: 5, height: 3, pixels: (0..<15).map { UInt8($0 * 17) })
        try ImageFile.write(mask, path: path("m.PNG"))
        XCTAssertEqual(try ImageFile.readGray(path: path("m.PNG")), mask)
        // gray read as RGB replicates
        let rgb = try ImageFile.read(path: path("m.PNG"))
        XCTAssertEqual(Array(rgb.pixels[6..<9]), [34, 34, 34])
        // colour read as a mask: luma
        let luma = try ImageFile.readGray(path: path("a.png"))
        let r0 = Int(img.pixels[3]), g0 = Int(img.pixels[4]), b0 = Int(img.pixels[5])
        XCTAssertEqual(Int(luma.pixels[1]), (299 * r0 + 587 * g0 + 114 * b0 + 500) / 1000)
    }

    func testRGBAKeepsAlphaSeparately() throws {
        let img = gradient(4, 4)
        let alpha = GrayImage(width: 4, height: 4, pixels: (0..<16).map { UInt8($0 * 16) })
        try ImageFile.write(img, alpha: alpha, path: path("rgba.png"))
        let (r, a) = try ImageFile.readWithAlpha(path: path("rgba.png"))
        XCTAssertEqual(r, img)
        XCTAssertEqual(a, alpha)
        XCTAssertEqual(try ImageFile.read(path: path("rgba.png")), img)
    }

    func testPaletteAndGrayAlpha() throws {
        let pal = try ImageFile.readWithAlpha(path: try fixture(Self.palettePNG, "pal.png"))
        XCTAssertEqual(pal.image.width, 4); XCTAssertEqual(pal.image.height, 3)
        XCTAssertNil(pal.alpha)
        XCTAssertEqual(Array(pal.image.pixels[0..<12]), [255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30])
        XCTAssertEqual(Array(pal.image.pixels[12..<15]), [10, 20, 30])
        let pt = try ImageFile.readWithAlpha(path: try fixture(Self.paletteAlphaPNG, "palt.png"))
        XCTAssertEqual(Array(pt.alpha!.pixels[0..<4]), [255, 128, 0, 255])
        XCTAssertEqual(Array(pt.image.pixels[0..<3]), [255, 0, 0])
        let ga = try ImageFile.readWithAlpha(path: try fixture(Self.grayAlphaPNG, "ga.png"))
        XCTAssertEqual(ga.image.pixels, [0, 0, 0, 100, 100, 100, 200, 200, 200, 255, 255, 255])
        XCTAssertEqual(ga.alpha?.pixels, [255, 50, 0, 255])
    }

    func testJPEGReadAndRoundTrip() throws {
        let j = try ImageFile.read(path: try fixture(Self.gradientJPEG, "g.jpg"))
        XCTAssertEqual(j.width, 16); XCTAssertEqual(j.height, 8)
        // PIL (libjpeg-turbo, the same default IDCT and upsampling) decodes these first pixels identically
        XCTAssertEqual(Array(j.pixels[0..<12]), [0, 4, 115, 6, 6, 118, 25, 5, 120, 40, 6, 119])
        var err = 0
        for y in 0..<8 { for x in 0..<16 {
            let i = 3 * (y * 16 + x)
            err += abs(Int(j.pixels[i]) - x * 16) + abs(Int(j.pixels[i + 1]) - y * 32) + abs(Int(j.pixels[i + 2]) - 128)
        } }
        XCTAssertLessThan(Double(err) / (16 * 8 * 3), 8, "decoded JPEG far from its source")
        let img = gradient(32, 24)
        try ImageFile.write(img, path: path("rt.jpeg"), quality: 95)
        let back = try ImageFile.read(path: path("rt.jpeg"))
        XCTAssertEqual(back.width, 32)
        let mae = zip(back.pixels, img.pixels).map { abs(Int($0) - Int($1)) }.reduce(0, +)
        XCTAssertLessThan(Double(mae) / Double(img.pixels.count), 6)
        let mask = GrayImage(width: 8, height: 8, pixels: [UInt8](repeating: 200, count: 64))
        try ImageFile.write(mask, path: path("m.jpg"))
        XCTAssertTrue(try ImageFile.readGray(path: path("m.jpg")).pixels.allSatisfy { abs(Int($0) - 200) <= 2 })
    }

    func testBadImages() throws {
        let missing = path("none.png")
        IOTestSupport.assertThrows("io", [missing, "no such file"]) { _ = try ImageFile.read(path: missing) }
        let text = path("notimage.png")
        try IOTestSupport.write(Array("hello world, not a PNG".utf8), text)
        IOTestSupport.assertThrows("io", [text, "not a PNG or JPEG"]) { _ = try ImageFile.read(path: text) }
        try ImageFile.write(gradient(40, 30), path: path("full.png"))
        let png = [UInt8](FileManager.default.contents(atPath: path("full.png"))!)
        let cut = path("cut.png")
        try IOTestSupport.write(Array(png.prefix(png.count / 2)), cut)
        IOTestSupport.assertThrows("io", [cut, "PNG"]) { _ = try ImageFile.read(path: cut) }
        try ImageFile.write(gradient(64, 64), path: path("full.jpg"))
        let jpg = [UInt8](FileManager.default.contents(atPath: path("full.jpg"))!)
        let cutj = path("cut.jpg")
        try IOTestSupport.write(Array(jpg.prefix(jpg.count / 2)), cutj)
        IOTestSupport.assertThrows("io", [cutj, "JPEG"]) { _ = try ImageFile.read(path: cutj) }
        let headerOnly = path("hdr.jpg")
        try IOTestSupport.write(Array(jpg.prefix(40)), headerOnly)
        IOTestSupport.assertThrows("io", [headerOnly, "JPEG"]) { _ = try ImageFile.read(path: headerOnly) }
        IOTestSupport.assertThrows("invalidArgument", [path("x.gif"), "extension"]) { try ImageFile.write(self.gradient(2, 2), path: self.path("x.gif")) }
        let nodir = path("no/such/dir/out.png")
        IOTestSupport.assertThrows("io", [nodir]) { try ImageFile.write(self.gradient(2, 2), path: nodir) }
    }

    func testTensorConversions() throws {
        let img = RGBImage(width: 2, height: 1, pixels: [0, 128, 255, 10, 20, 30])
        let t = try img.tensor(range: .signed)
        XCTAssertEqual(t.shape, [1, 3, 1, 2])
        let v = t.toArray()
        XCTAssertEqual(v[0], -1); XCTAssertEqual(v[1], Float(10) / 255 * 2 - 1)        // R plane
        XCTAssertEqual(v[2], Float(128) / 255 * 2 - 1); XCTAssertEqual(v[4], 1)        // G, B planes
        XCTAssertEqual(try RGBImage(tensor: t, range: .signed), img)
        let u = try img.tensor(range: .unit)
        XCTAssertEqual(u.toArray()[4], 1); XCTAssertEqual(u.toArray()[1], Float(10) / 255)
        XCTAssertEqual(try RGBImage(tensor: u, range: .unit), img)
        let big = gradient(9, 5)
        XCTAssertEqual(try RGBImage(tensor: try big.tensor(), range: .signed), big)
        // clamping and NaN
        let wild = Tensor(shape: [1, 3, 1, 1], values: [3, -7, .nan])
        XCTAssertEqual(try RGBImage(tensor: wild, range: .signed).pixels, [255, 0, 0])
        // batch index and bad shapes
        let two = Tensor.cat0([try img.tensor(), try RGBImage(width: 2, height: 1, fill: 255).tensor()])
        XCTAssertEqual(try RGBImage(tensor: two, batch: 1).pixels, [UInt8](repeating: 255, count: 6))
        IOTestSupport.assertThrows("invalidArgument", ["[2, 3, 1, 2]"]) { _ = try RGBImage(tensor: two, batch: 2) }
        IOTestSupport.assertThrows("invalidArgument", ["[4, 4]"]) { _ = try RGBImage(tensor: Tensor(shape: [4, 4])) }
        let m = GrayImage(width: 3, height: 1, pixels: [0, 51, 255])
        XCTAssertEqual(try m.tensor().toArray(), [0, 0.2, 1])
        XCTAssertEqual(try GrayImage(tensor: try m.tensor()), m)
    }

    // MARK: EXIF orientation (applied like PIL's ImageOps.exif_transpose, which diffusers' load_image uses)

    /// PIL's exif_transpose of the 3x2 gray image [10 20 30; 40 50 60] for orientations 1...8.
    static let pilOriented: [(w: Int, h: Int, px: [UInt8])] = [
        (3, 2, [10, 20, 30, 40, 50, 60]), (3, 2, [30, 20, 10, 60, 50, 40]), (3, 2, [60, 50, 40, 30, 20, 10]),
        (3, 2, [40, 50, 60, 10, 20, 30]), (2, 3, [10, 40, 20, 50, 30, 60]), (2, 3, [40, 10, 50, 20, 60, 30]),
        (2, 3, [60, 30, 50, 20, 40, 10]), (2, 3, [30, 60, 20, 50, 10, 40]),
    ]

    static func tiff(orientation o: UInt8, bigEndian: Bool) -> [UInt8] {
        bigEndian
            ? [0x4D, 0x4D, 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, o, 0, 0, 0, 0, 0, 0]
            : [0x49, 0x49, 42, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, o, 0, 0, 0, 0, 0, 0, 0]
    }

    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            c ^= UInt32(b)
            for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0xEDB8_8320 : c >> 1 }
        }
        return ~c
    }

    func testEXIFOrientationPNGAndJPEG() throws {
        let base = GrayImage(width: 3, height: 2, pixels: [10, 20, 30, 40, 50, 60])
        try ImageFile.write(base, path: path("base.png"))
        try ImageFile.write(base, path: path("base.jpg"), quality: 100)
        let png = [UInt8](FileManager.default.contents(atPath: path("base.png"))!)
        let jpg = [UInt8](FileManager.default.contents(atPath: path("base.jpg"))!)
        let plainJPEG = try ImageFile.readGray(path: path("base.jpg"))
        for o in 1...8 {
            let want = Self.pilOriented[o - 1]
            // PNG: an eXIf chunk (little-endian TIFF) after IHDR
            let data = Self.tiff(orientation: UInt8(o), bigEndian: false)
            let type: [UInt8] = Array("eXIf".utf8)
            var chunk: [UInt8] = [0, 0, 0, UInt8(data.count)] + type + data
            let crc = Self.crc32(type + data)
            chunk += [UInt8(crc >> 24), UInt8((crc >> 16) & 0xff), UInt8((crc >> 8) & 0xff), UInt8(crc & 0xff)]
            let p = path("o\(o).png")
            try IOTestSupport.write(Array(png[0..<33]) + chunk + Array(png[33...]), p)
            let g = try ImageFile.readGray(path: p)
            XCTAssertEqual(g.width, want.w, "PNG orientation \(o)"); XCTAssertEqual(g.height, want.h)
            XCTAssertEqual(g.pixels, want.px, "PNG orientation \(o)")
            // JPEG: an APP1 Exif segment (big-endian TIFF) after SOI; same permutation of the decoded pixels
            let app1 = [UInt8](Array("Exif".utf8)) + [0, 0] + Self.tiff(orientation: UInt8(o), bigEndian: true)
            let seg: [UInt8] = [0xFF, 0xE1, 0, UInt8(app1.count + 2)] + app1
            let q = path("o\(o).jpg")
            try IOTestSupport.write(Array(jpg[0..<2]) + seg + Array(jpg[2...]), q)
            let j = try ImageFile.readGray(path: q)
            XCTAssertEqual(j.width, want.w); XCTAssertEqual(j.height, want.h)
            let expect = want.px.map { plainJPEG.pixels[Int($0) / 10 - 1] }
            XCTAssertEqual(j.pixels, expect, "JPEG orientation \(o)")
        }
    }
}
