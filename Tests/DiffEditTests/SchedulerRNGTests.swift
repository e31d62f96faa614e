import XCTest
import Foundation
@testable import DiffEdit

/// Core/RNG.swift against torch.randn with seeded CPU generators (Tests/Fixtures/randn_pipeline.json).
final class SchedulerRNGTests: XCTestCase {
    func testMatchesTorchRandn() throws {
        let url = SchedulerTests.fixtureDir.appendingPathComponent("randn_pipeline.json")
        let data = try Data(contentsOf: url)
        let doc = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        let cases = doc["cases"] as! [[String: Any]]
        XCTAssertEqual(cases.count, 4)
        var worst: Float = 0
        for c in cases {
            let seed = (c["seed"] as! NSNumber).uint64Value
            var rng = RNG(seed: seed)
            let shapes = (c["shapes"] as! [[NSNumber]]).map { $0.map(\.intValue) }
            let values = (c["values"] as! [[NSNumber]]).map { $0.map { Float($0.doubleValue) } }
            for (shape, ref) in zip(shapes, values) {
                let t = rng.normal(shape)
                XCTAssertEqual(t.shape, shape)
                XCTAssertEqual(t.count, ref.count)
                for (a, b) in zip(t.toArray(), ref) {
                    let e = abs(a - b) / max(1, abs(b))
                    worst = max(worst, e)
                    XCTAssertLessThanOrEqual(e, 1e-5, "seed \(seed) shape \(shape)")
                }
            }
        }
        print("RNG vs torch.randn: worst error \(worst)")
    }

    func testSameSeedIsBitIdenticalAndSeedsDiffer() {
        var a = RNG(seed: 7), b = RNG(seed: 7), c = RNG(seed: 8)
        let x = a.normal([1, 4, 9, 9]), y = b.normal([1, 4, 9, 9]), z = c.normal([1, 4, 9, 9])
        XCTAssertEqual(x.toArray(), y.toArray())
        XCTAssertNotEqual(x.toArray(), z.toArray())
        let v = x.toArray()
        let mean = v.reduce(0, +) / Float(v.count)
        let varc = v.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(v.count)
        XCTAssertEqual(mean, 0, accuracy: 0.15)
        XCTAssertEqual(varc, 1, accuracy: 0.2)
    }
}
