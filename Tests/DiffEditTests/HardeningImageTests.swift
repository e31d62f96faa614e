import Foundation
import XCTest
@testable import DiffEdit

/// Image "bombs": small files whose header claims a huge size are refused from the header, before
/// any pixel memory is allocated, with an error naming the file and the size (issue 21).
final class HardeningImageTests: XCTestCase {
    var dir = ""
    override func setUpWithError() throws { dir = try IOTestSupport.tempDir("bomb") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func path(_ n: String) -> String { (dir as NSString).appendingPathComponent(n) }

    // MARK: PNG building (CRC-32 as PNG and zlib define it)

    static let crcTable: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = crcTable[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }

    static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let td = Array(type.utf8) + data
        return be32(UInt32(data.count)) + td + be32(crc32(td))
    }

    /// zlib stream of `count` zero bytes (stored deflate blocks: no compressor needed; the decoder is
    /// refused before it would read them, and they stay small as long as `count` is).
    static func zlibZeros(_ count: Int) -> [UInt8] {
        var out: [UInt8] = [0x78, 0x01]
        var left = count
        repeat {
            let n = min(left, 65535)
            left -= n
            out += [left == 0 ? 1 : 0, UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8((~n >> 8) & 0xFF)]
            out += [UInt8](repeating: 0, count: n)
        } while left > 0
        var a: UInt32 = 1, b: UInt32 = 0
        for _ in 0..<count { b = (b + a) % 65521 }   // adler32 of zeros: a stays 1
        return out + be32(b << 16 | a)
    }

    /// An 8-bit RGB PNG whose IHDR says width x height, with a small IDAT (the first rows' zeros).
    static func pngBomb(width: UInt32, height: UInt32) -> [UInt8] {
        let ihdr = be32(width) + be32(height) + [8, 2, 0, 0, 0]
        let rows = min(Int(height), 4) * (Int(width) * 3 + 1)
        return [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", ihdr)
            + chunk("IDAT", zlibZeros(rows)) + chunk("IEND", [])
    }

    /// A real JPEG of 16x8 whose SOF0 is patched to say width x height.
    func jpegBomb(width: UInt16, height: UInt16, name: String) throws -> String {
        let p = path(name)
        try ImageFile.write(RGBImage(width: 16, height: 8, pixels: [UInt8](repeating: 128, count: 16 * 8 * 3)), path: p)
        var b = [UInt8](FileManager.default.contents(atPath: p)!)
        guard let sof = (0..<(b.count - 9)).first(where: { b[$0] == 0xFF && b[$0 + 1] == 0xC0 }) else {
            throw DiffEditError.io("test: no SOF0 in \(p)")
        }
        b[sof + 5] = UInt8(height >> 8); b[sof + 6] = UInt8(height & 0xFF)
        b[sof + 7] = UInt8(width >> 8); b[sof + 8] = UInt8(width & 0xFF)
        try IOTestSupport.write(b, p)
        return p
    }

    static func maxRSSKiB() -> Int {
        var u = rusage()
        getrusage(__rusage_who_t(0), &u)   // RUSAGE_SELF
        return u.ru_maxrss
    }

    /// Decodes `p` expecting the `kind` error with every needle; returns the seconds it took.
    func refuse(_ p: String, _ kind: String, _ needles: [String], file: StaticString = #filePath, line: UInt = #line) -> Double {
        let t0 = Date()
        for read in [{ _ = try ImageFile.read(path: p) }, { _ = try ImageFile.readGray(path: p) }] as [() throws -> Void] {
            do {
                try read()
                XCTFail("\(p) was decoded", file: file, line: line)
            } catch let e as DiffEditError {
                let k: String
                switch e { case .outOfMemory: k = "outOfMemory"; case .unsupported: k = "unsupported"; default: k = "other" }
                XCTAssertEqual(k, kind, "wrong error kind: \(e.message)", file: file, line: line)
                for n in [p] + needles {
                    XCTAssertTrue(e.message.contains(n), "message \"\(e.message)\" does not name \"\(n)\"", file: file, line: line)
                }
            } catch {
                XCTFail("unexpected error \(error)", file: file, line: line)
            }
        }
        return Date().timeIntervalSince(t0)
    }

    func testPNGBombIsRefusedFromTheHeader() throws {
        let bomb = path("bomb16000.png")
        let bytes = Self.pngBomb(width: 16000, height: 16000)
        XCTAssertLessThan(bytes.count, 300_000)
        try IOTestSupport.write(bytes, bomb)
        let wide = path("wide20000x10.png")
        try IOTestSupport.write(Self.pngBomb(width: 20000, height: 10), wide)
        let huge = path("huge.png")   // beyond libpng's own default limit of 1,000,000 a side: still named
        try IOTestSupport.write(Self.pngBomb(width: 3_000_000, height: 1), huge)

        let rss0 = Self.maxRSSKiB()
        var secs = refuse(bomb, "outOfMemory", ["16000x16000", "256000000 pixels", "67108864"])
        secs += refuse(wide, "unsupported", ["20000x10", "16384"])
        secs += refuse(huge, "unsupported", ["3000000x1", "16384"])
        let grewMiB = Double(Self.maxRSSKiB() - rss0) / 1024
        XCTAssertLessThan(secs, 1.0, "refusing from the header took \(secs) s")
        XCTAssertLessThan(grewMiB, 64, "peak RSS grew by \(grewMiB) MiB")
        print("HardeningImageTests: PNG bombs refused in \(String(format: "%.4f", secs)) s, peak RSS grew \(grewMiB) MiB")

        // at the limits: 16384 a side and 64 Mpixel are what the header check lets through (the file
        // is then refused only because its pixel data is short)
        let edge = path("edge.png")
        try IOTestSupport.write(Self.pngBomb(width: 16384, height: 16), edge)
        XCTAssertThrowsError(try ImageFile.read(path: edge)) { e in
            guard case .io(let m)? = e as? DiffEditError else { return XCTFail("\(e)") }
            XCTAssertTrue(m.contains(edge), m)
        }
    }

    func testJPEGBombIsRefusedFromTheHeader() throws {
        let bomb = try jpegBomb(width: 16000, height: 16000, name: "bomb.jpg")
        let wide = try jpegBomb(width: 20000, height: 10, name: "wide.jpg")
        let rss0 = Self.maxRSSKiB()
        var secs = refuse(bomb, "outOfMemory", ["16000x16000", "256000000 pixels"])
        secs += refuse(wide, "unsupported", ["20000x10", "16384"])
        let grewMiB = Double(Self.maxRSSKiB() - rss0) / 1024
        XCTAssertLessThan(secs, 1.0)
        XCTAssertLessThan(grewMiB, 64, "peak RSS grew by \(grewMiB) MiB")
        // an ordinary file still decodes
        let ok = path("ok.jpg")
        try ImageFile.write(RGBImage(width: 16, height: 8, pixels: [UInt8](repeating: 99, count: 16 * 8 * 3)), path: ok)
        XCTAssertEqual(try ImageFile.read(path: ok).width, 16)
    }
}
