import XCTest
import Foundation
@testable import DiffEdit

/// Schedulers against diffusers 0.42.1 (Tests/Fixtures/schedulers_pipeline.json, made by
/// tools/make_scheduler_fixtures.py): alphas_cumprod, timesteps, sigmas, init_noise_sigma, scaled model
/// inputs and every step of short trajectories, img2img timestep selection and add_noise.
final class SchedulerTests: XCTestCase {
    static let fixtureDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures")

    static func loadFixture() throws -> [String: Any] {
        for name in ["schedulers_pipeline.json", "schedulers.json"] {
            let url = fixtureDir.appendingPathComponent(name)
            if let data = try? Data(contentsOf: url),
               let obj = try JSONSerialization.jsonObject(with: data) as? [String: Any], obj["cases"] != nil {
                return obj
            }
        }
        throw DiffEditError.io("\(fixtureDir.path): no scheduler fixture (tools/make_scheduler_fixtures.py writes schedulers_pipeline.json)")
    }

    static func config(_ any: Any?) throws -> SchedulerConfig {
        let data = try JSONSerialization.data(withJSONObject: any as Any)
        return try JSONDecoder().decode(SchedulerConfig.self, from: data)
    }

    static func floats(_ any: Any?) -> [Float] { (any as? [Any] ?? []).map { Float(($0 as! NSNumber).doubleValue) } }

    /// max |a-b| / max(|b|_inf, 1e-6)
    func relErr(_ a: [Float], _ b: [Float]) -> Float {
        XCTAssertEqual(a.count, b.count)
        var num: Float = 0, den: Float = 1e-6
        for (x, y) in zip(a, b) { num = max(num, abs(x - y)); den = max(den, abs(y)) }
        return num / den
    }

    func testAlphasCumprodMatchDiffusers() throws {
        let fx = try Self.loadFixture()
        let schedules = fx["schedules"] as! [[String: Any]]
        XCTAssertGreaterThanOrEqual(schedules.count, 4)
        for s in schedules {
            let cfg = try Self.config(s["config"])
            let ref = Self.floats(s["alphas_cumprod"])
            let ours = try NoiseSchedule(config: cfg).alphasCumprod
            XCTAssertEqual(ours.count, ref.count)
            let e = relErr(ours, ref)
            XCTAssertLessThanOrEqual(e, 1e-6, "\(cfg.beta_schedule) zsnr=\(cfg.rescale_betas_zero_snr)")
        }
    }

    func testTrajectoriesMatchDiffusers() throws {
        let fx = try Self.loadFixture()
        let cases = fx["cases"] as! [[String: Any]]
        XCTAssertGreaterThan(cases.count, 20)
        var worst: Float = 0
        for c in cases {
            let kind = c["scheduler"] as! String
            let steps = (c["steps"] as! NSNumber).intValue
            let cfg = try Self.config(c["config"])
            let label = "\(kind) steps=\(steps) \(cfg.timestep_spacing) \(cfg.prediction_type) \(cfg.beta_schedule)\(cfg.use_karras_sigmas ? " karras" : "")"
            let s = try SchedulerFactory.make(name: kind, config: cfg)
            if let ns = c["noise_seed"] as? NSNumber, let e = s as? EulerDiscreteScheduler {
                e.rng = RNG(seed: ns.uint64Value)                                 // diffusers' generator=
            }
            try s.setTimesteps(steps)
            if (cfg.use_karras_sigmas && kind == "euler") || kind == "edm-euler" {
                // fractional timesteps (log-sigma interpolation): equal up to float32 rounding
                XCTAssertLessThanOrEqual(relErr(s.timesteps, Self.floats(c["timesteps"])), 1e-6, label)
            } else {
                XCTAssertEqual(s.timesteps, Self.floats(c["timesteps"]), label)
            }
            XCTAssertEqual(s.initNoiseSigma, Float((c["init_noise_sigma"] as! NSNumber).doubleValue),
                           accuracy: 1e-6 * max(1, s.initNoiseSigma), label)
            if let sig = c["sigmas"] {
                let ours = (s as? EulerDiscreteScheduler)?.sigmas ?? (s as? DPMSolverMultistepScheduler)?.sigmas
                    ?? (s as? EDMEulerScheduler)?.sigmas ?? []
                XCTAssertLessThanOrEqual(relErr(ours, Self.floats(sig)), 1e-6, label)
            }
            let shape = (c["shape"] as! [NSNumber]).map(\.intValue)
            var x = Tensor(shape: shape, values: Self.floats(c["sample"]))
            let outs = (c["model_outputs"] as! [Any]).map { Tensor(shape: shape, values: Self.floats($0)) }
            let scaled = (c["scaled"] as! [Any]).map { Self.floats($0) }
            let samples = (c["samples"] as! [Any]).map { Self.floats($0) }
            XCTAssertEqual(outs.count, s.timesteps.count, label)
            for (i, t) in s.timesteps.enumerated() {
                let xin = try s.scaleModelInput(x, timestep: t)
                XCTAssertLessThanOrEqual(relErr(xin.toArray(), scaled[i]), 1e-5, "\(label) scaled step \(i)")
                x = try s.step(modelOutput: outs[i], timestep: t, sample: x)
                let e = relErr(x.toArray(), samples[i])
                worst = max(worst, e)
                XCTAssertLessThanOrEqual(e, 1e-5, "\(label) step \(i) t=\(t)")
            }
        }
        print("scheduler trajectories: worst relative error \(worst)")
    }

    func testImg2ImgTimestepsAndAddNoise() throws {
        let fx = try Self.loadFixture()
        let cases = fx["img2img"] as! [[String: Any]]
        XCTAssertFalse(cases.isEmpty)
        for c in cases {
            let kind = c["scheduler"] as! String
            let steps = (c["steps"] as! NSNumber).intValue
            let strength = Float((c["strength"] as! NSNumber).doubleValue)
            let s = try SchedulerFactory.make(name: kind, config: try Self.config(c["config"]))
            try s.setTimesteps(steps)
            let (ts, start) = try s.img2imgTimesteps(strength: strength)
            let label = "\(kind) steps=\(steps) strength=\(strength)"
            XCTAssertEqual(ts, Self.floats(c["timesteps"]), label)
            XCTAssertEqual(start, (c["start_index"] as! NSNumber).intValue, label)
            let x0 = Tensor(shape: [1, 2, 3, 3], values: Self.floats(c["original"]))
            let n = Tensor(shape: [1, 2, 3, 3], values: Self.floats(c["noise"]))
            let noisy = try s.addNoise(original: x0, noise: n, timestep: ts[0])
            XCTAssertLessThanOrEqual(relErr(noisy.toArray(), Self.floats(c["noisy"])), 1e-6, label)
        }
    }

    func testStepsOutOfRangeAreRejectedNamingSteps() throws {
        for name in ["ddim", "ddim-inverse", "euler", "dpmpp-2m"] {
            let s = try SchedulerFactory.make(name: name, config: SchedulerConfig())
            for bad in [0, -3, 1001, 5000] {
                XCTAssertThrowsError(try s.setTimesteps(bad), "\(name) \(bad)") { err in
                    guard case DiffEditError.invalidArgument(let m) = err else { return XCTFail("\(err)") }
                    XCTAssertTrue(m.hasPrefix("steps"), m)
                }
            }
            XCTAssertNoThrow(try s.setTimesteps(1000))
        }
    }

    func testStepBeforeSetTimestepsAndShapeMismatchThrow() throws {
        let s = try SchedulerFactory.make(name: "ddim", config: SchedulerConfig())
        let x = Tensor.zeros([1, 4, 2, 2])
        XCTAssertThrowsError(try s.step(modelOutput: x, timestep: 1, sample: x))
        try s.setTimesteps(10)
        XCTAssertThrowsError(try s.step(modelOutput: Tensor.zeros([1, 4, 2, 3]), timestep: 901, sample: x)) { err in
            XCTAssertTrue("\(err)".contains("shape"), "\(err)")
        }
        XCTAssertThrowsError(try s.img2imgTimesteps(strength: 0)) { err in
            XCTAssertTrue("\(err)".hasPrefix("strength"), "\(err)")
        }
        XCTAssertThrowsError(try s.img2imgTimesteps(strength: 1.5))
    }

    func testFactoryNamesAndClassNames() throws {
        XCTAssertEqual(SchedulerFactory.name(forClassName: "PNDMScheduler"), "ddim")
        XCTAssertEqual(SchedulerFactory.name(forClassName: "EulerDiscreteScheduler"), "euler")
        XCTAssertEqual(SchedulerFactory.name(forClassName: "DPMSolverMultistepScheduler"), "dpmpp-2m")
        var cfg = SchedulerConfig()
        cfg._class_name = "EulerDiscreteScheduler"
        XCTAssertEqual(try SchedulerFactory.make(name: nil, config: cfg).name, "euler")
        XCTAssertEqual(try SchedulerFactory.make(name: "dpm++2m", config: cfg).name, "dpmpp-2m")
        XCTAssertThrowsError(try SchedulerFactory.make(name: "plms", config: cfg)) { err in
            XCTAssertTrue("\(err)".hasPrefix("scheduler"), "\(err)")
        }
        cfg.beta_schedule = "sigmoid"
        XCTAssertThrowsError(try SchedulerFactory.make(name: "ddim", config: cfg)) { err in
            XCTAssertTrue("\(err)".contains("beta_schedule"), "\(err)")
        }
    }

    /// DDIM inversion followed by DDIM sampling with the same (exact) noise prediction returns the start.
    func testInverseThenForwardRoundTrips() throws {
        let cfg = SchedulerConfig()
        let inv = try SchedulerFactory.make(name: "ddim-inverse", config: cfg)
        let fwd = try SchedulerFactory.make(name: "ddim", config: cfg)
        try inv.setTimesteps(20); try fwd.setTimesteps(20)
        XCTAssertEqual(inv.timesteps, Array(fwd.timesteps.reversed()))
        let eps = Tensor(shape: [1, 1, 2, 2], values: [0.3, -0.5, 1.1, 0.0])
        let x0 = Tensor(shape: [1, 1, 2, 2], values: [0.2, -0.7, 0.4, 0.9])
        var x = x0
        for t in inv.timesteps { x = try inv.step(modelOutput: eps, timestep: t, sample: x) }
        for t in fwd.timesteps { x = try fwd.step(modelOutput: eps, timestep: t, sample: x) }
        XCTAssertLessThanOrEqual(relErr(x.toArray(), x0.toArray()), 1e-4)
    }
}
