import Foundation
import XCTest
@testable import DiffEdit

final class IOSafetensorsTests: XCTestCase {
    var dir = ""
    override func setUpWithError() throws { dir = try IOTestSupport.tempDir("st") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func testRoundTripF32F16BF16() throws {
        let values: [Float] = [0, 1, -2, 0.5, 3.140625, -0.0078125, 65504, 1e-3]
        let t = Tensor(shape: [2, 4], values: values)
        for dt in ["F32", "F16", "BF16"] {
            let p = (dir as NSString).appendingPathComponent("\(dt).safetensors")
            try SafetensorsWriter.write(["w": t, "b": Tensor(shape: [3], values: [1, 2, 3])], dtype: dt, metadata: ["format": "pt"], path: p)
            let f = try SafetensorsFile(path: p)
            XCTAssertEqual(f.names.sorted(), ["b", "w"])
            XCTAssertEqual(f.metadata["format"], "pt")
            XCTAssertEqual(f.dtype(of: "w"), dt)
            XCTAssertEqual(f.shape(of: "w"), [2, 4])
            let r = try f.tensor("w", [2, 4])
            for (i, v) in values.enumerated() {
                let expect: Float
                switch dt {
                case "F16": expect = Float(Float16(v))
                case "BF16": expect = Float(bitPattern: (v.bitPattern &+ 0x7FFF &+ ((v.bitPattern >> 16) & 1)) & 0xFFFF_0000)
                default: expect = v
                }
                XCTAssertEqual(r.data[i], expect, "\(dt) element \(i)")
            }
            XCTAssertEqual(try f.tensor("b").toArray(), [1, 2, 3])
        }
    }

    func testF16SpecialValuesMatchReference() throws {
        // hand-written f16 bit patterns: 1, -2, smallest subnormal, max, +0, -0, inf, 1/3
        let bits: [UInt16] = [0x3C00, 0xC000, 0x0001, 0x7BFF, 0x0000, 0x8000, 0x7C00, 0x3555]
        var data = [UInt8]()
        for b in bits { data += [UInt8(b & 0xff), UInt8(b >> 8)] }
        let p = (dir as NSString).appendingPathComponent("h.safetensors")
        try IOTestSupport.write(IOTestSupport.rawSafetensors(header: #"{"h":{"dtype":"F16","shape":[8],"data_offsets":[0,16]}}"#, data: data), p)
        // a weight file with an infinity is refused (issue 21: non-finite weights are MODEL naming the tensor) ...
        IOTestSupport.assertThrows("model", [p, "tensor h", "1 infinite", "element 6"]) { _ = try SafetensorsFile(path: p).tensor("h") }
        // ... so the conversion of every pattern, infinity included, is checked on the converter itself
        var r = [Float](repeating: .nan, count: 8)
        data.withUnsafeBytes { src in r.withUnsafeMutableBufferPointer { HalfConversion.f16ToF32(src, $0.baseAddress!, 8) } }
        XCTAssertEqual(r[0], 1); XCTAssertEqual(r[1], -2); XCTAssertEqual(r[2], 5.960464477539063e-08)
        XCTAssertEqual(r[3], 65504); XCTAssertEqual(r[4].bitPattern, 0); XCTAssertEqual(r[5].bitPattern, 0x8000_0000)
        XCTAssertEqual(r[6], .infinity); XCTAssertEqual(r[7], 0.333251953125)
        XCTAssertEqual(try SafetensorsFile(path: p).tensor("h", elements: 0, count: 6, shape: [6]).toArray(), Array(r[0..<6]))
    }

    func testElementRangeAndOddAlignment() throws {
        // a 1-byte-longer header puts the data at an odd offset: conversions must still be right
        let p = (dir as NSString).appendingPathComponent("odd.safetensors")
        var data = [UInt8]()
        for v in [Float](arrayLiteral: 1, 2, 3, 4, 5, 6) { withUnsafeBytes(of: v.bitPattern.littleEndian) { data += $0 } }
        try IOTestSupport.write(IOTestSupport.rawSafetensors(header: #"{"x":{"dtype":"F32","shape":[3,2],"data_offsets":[0,24]}} "#, data: data), p)
        let f = try SafetensorsFile(path: p)
        XCTAssertEqual(try f.tensor("x").toArray(), [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(try f.tensor("x", elements: 2, count: 2, shape: [1, 2]).toArray(), [3, 4])
        IOTestSupport.assertThrows("model", [p, "x"]) { _ = try f.tensor("x", elements: 4, count: 4, shape: [2, 2]) }
    }

    func testF32IsBorrowedFromTheMappingAndWritable() throws {
        let p = (dir as NSString).appendingPathComponent("f.safetensors")
        try SafetensorsWriter.write(["a": Tensor(shape: [4], values: [1, 2, 3, 4])], path: p)
        let f = try SafetensorsFile(path: p)
        let a = try f.tensor("a")
        a.data[0] = 42   // private copy-on-write mapping: allowed, file unchanged
        XCTAssertEqual(try SafetensorsFile(path: p).tensor("a").toArray(), [1, 2, 3, 4])
    }

    func testZeroSizeTensorAndEmptyHeader() throws {
        let p = (dir as NSString).appendingPathComponent("z.safetensors")
        try IOTestSupport.write(IOTestSupport.rawSafetensors(header: #"{"__metadata__":{"a":"b"},"z":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]}}"#, data: []), p)
        let f = try SafetensorsFile(path: p)
        XCTAssertEqual(f.names, ["z"])
        XCTAssertEqual(try f.tensor("z").count, 0)
        XCTAssertFalse(f.contains("__metadata__"))
    }

    func testWeightSourceShapeCheckAndMissing() throws {
        let p = (dir as NSString).appendingPathComponent("w.safetensors")
        try SafetensorsWriter.write(["conv.weight": Tensor(shape: [2, 3, 1, 1])], path: p)
        let ws: WeightSource = try SafetensorsFile(path: p)
        IOTestSupport.assertThrows("model", [p, "conv.weight", "[2, 3, 1, 1]", "[3, 2, 1, 1]"]) { _ = try ws.tensor("conv.weight", [3, 2, 1, 1]) }
        IOTestSupport.assertThrows("model", [p, "conv.bias"]) { _ = try ws.tensor("conv.bias") }
        XCTAssertEqual(try ws.tensor("conv.weight", [2, 3, 1, 1]).shape, [2, 3, 1, 1])
    }

    /// The C kernels' conversion must be in use and agree with the reference on every f16 bit pattern.
    func testHalfConversionAllF16AndBF16Patterns() {
        XCTAssertTrue(HalfConversion.cKernelsWork, "de_f16_to_f32/de_bf16_to_f32 fail the self-check; loading falls back to Swift")
        let all = (0..<65536).map { UInt16($0) }
        var out = [Float](repeating: 0, count: all.count)
        all.withUnsafeBytes { src in out.withUnsafeMutableBufferPointer { HalfConversion.f16ToF32(src, $0.baseAddress!, all.count) } }
        var bad = 0
        for (i, h) in all.enumerated() {
            let ref = Float(Float16(bitPattern: h))
            if !(ref.isNaN ? out[i].isNaN : out[i].bitPattern == ref.bitPattern) { bad += 1 }
        }
        XCTAssertEqual(bad, 0)
        all.withUnsafeBytes { src in out.withUnsafeMutableBufferPointer { HalfConversion.bf16ToF32(src, $0.baseAddress!, all.count) } }
        XCTAssertTrue(all.enumerated().allSatisfy { out[$0.offset].bitPattern == UInt32($0.element) << 16 })
    }
}
