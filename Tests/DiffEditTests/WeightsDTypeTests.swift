import XCTest
import Foundation
@testable import DiffEdit

/// `--weights-dtype` on the fixture models (fp16 safetensors) against diffusers' StableDiffusionPipeline
/// (ref/sd1 generate_ddim, computed in fp32 from the fp16-rounded weights):
/// - auto keeps every linear / conv weight and the token embedding table f16, read in place from the mapping
///   (no copy, no widening), and matches as f32 does (1e-3 latents / 40 dB, the PipelineTests bounds);
/// - f16 (on an fp16 file: the same weights as auto) within the same bounds;
/// - bf16: final latents rel err <= 1e-2, image >= 30 dB; q8_0: image >= 25 dB;
/// and bf16 / q8_0 really change the weights: their outputs move away from the f32 ones by more than 20x
/// the f32 path's own error, so a loader that ignored the option would fail.
final class WeightsDTypeTests: XCTestCase {
    struct Run { let latents: Tensor; let decoded: Tensor; let memory: WeightTally.Summary }

    nonisolated(unsafe) static var runs: [WeightsDType: Run] = [:]

    static func run(_ dtype: WeightsDType, layout: String = "sd1", backend: Backend? = nil) throws -> Run {
        if layout == "sd1", backend == nil, let r = runs[dtype] { return r }
        let man = try PipelineTests.manifest("sd1")
        let c = man["generate_ddim"] as! [String: Any]
        let m = try StableDiffusionModel.load(path: PipelineTests.path(layout), backend: backend ?? Backend.cpu,
                                              configFrom: layout == "sd1" ? nil : PipelineTests.path("sd1"), weightsDType: dtype)
        XCTAssertEqual(m.weightsDType, dtype)
        var o = GenerateOptions(prompt: c["prompt"] as! String)
        o.negativePrompt = c["negative_prompt"] as? String
        o.steps = (c["steps"] as! NSNumber).intValue
        o.guidance = Float((c["guidance"] as! NSNumber).doubleValue)
        o.width = (c["width"] as! NSNumber).intValue
        o.height = (c["height"] as! NSNumber).intValue
        o.scheduler = "ddim"
        o.initNoise = try NPY.readTensor(path: PipelineTests.path("ref/sd1/" + (c["noise"] as! String)))
        let widened0 = TensorStorage.transferStats.widenedWeights
        let r = try m.generate(o)
        XCTAssertEqual(TensorStorage.transferStats.widenedWeights, widened0, "\(dtype): a reduced weight was widened to f32")
        let run = Run(latents: r.latents, decoded: r.decoded, memory: m.weightMemory)
        if layout == "sd1", backend == nil { runs[dtype] = run }
        return run
    }

    /// The sd1 fixture's CLIP token embedding table in fp16: vocab_size x hidden_size x 2 bytes.
    static func tokenTableBytes() throws -> Int {
        let c = try ConfigFile.load(CLIPTextConfig.self, path: PipelineTests.path("sd1/text_encoder/config.json"))
        return c.vocab_size * c.hidden_size * 2
    }

    static func reference() throws -> (latents: Tensor, image: Tensor) {
        let c = try PipelineTests.manifest("sd1")["generate_ddim"] as! [String: Any]
        return (try NPY.readTensor(path: PipelineTests.path("ref/sd1/" + (c["latents"] as! String))),
                try NPY.readTensor(path: PipelineTests.path("ref/sd1/" + (c["image"] as! String))))
    }

    func score(_ d: WeightsDType, backend: Backend? = nil) throws -> (Float, Double, Run) {
        let r = try Self.run(d, backend: backend), ref = try Self.reference()
        let e = PipelineTests.relErr(r.latents, ref.latents)
        let p = PipelineTests.psnr(decoded: r.decoded, reference: ref.image)
        let how = backend.map { " compute \($0.options.compute.name) (\($0.bf16Kernel))" } ?? ""
        print("weights \(d.rawValue)\(how): latents rel err \(e), image PSNR \(p) dB, weights \(r.memory.bytes) (mapped \(r.memory.mappedBytes))")
        return (e, p, r)
    }

    /// Compute precision (BackendOptions.compute, cpu_bf16.c) on the fixtures, with issue 17's bounds for 16-bit
    /// weights (final latents rel err <= 1e-2, image >= 30 dB):
    /// - auto (AMX: bf16 / q8_0 weights times the activation as bf16 hi + lo, f16 weights hi + lo too, f32
    ///   accumulation) keeps the f32-compute parity of those weights (bf16: 1e-2 and 30 dB; q8_0: 25 dB; f16:
    ///   1e-4 and 80 dB), and leaves f32 weights in f32;
    /// - bf16 (everything rounded to bf16 once) keeps images >= 30 dB; its latents move by 2e-2 to 3e-2 on these
    ///   fixtures (above 1e-2: why it is not what auto does), asserted < 5e-2.
    /// Each run must really have used bf16 (the provider's bf16 GEMM counter) and moved the output away from
    /// f32 compute. Skipped on a CPU with neither AMX-BF16 nor AVX512_BF16 (Tests/OpCheck/bf16_check covers the
    /// kernels and the fallback).
    func testComputeBF16AndAutoWithinIssueBounds() throws {
        var o = BackendOptions.fromEnvironment()
        o.compute = .bf16
        let be = try Backend(name: "cpu", options: o)
        guard be.bf16Kernel != "none" else { throw XCTSkip("no AMX-BF16 / AVX512_BF16 on this CPU: bf16 compute is not offered") }
        let (e32, _, _) = try score(.auto, backend: .cpuF32)   // f32 compute, the same f16 weights
        for d in [WeightsDType.auto, .bf16] {
            let n0 = be.bf16GEMMs
            let (e, p, _) = try score(d, backend: be)
            XCTAssertLessThan(e, 5e-2, "\(d.rawValue) weights, compute bf16: latents")
            XCTAssertGreaterThanOrEqual(p, 30, "\(d.rawValue) weights, compute bf16: image")
            XCTAssertGreaterThan(be.bf16GEMMs - n0, 100, "compute bf16 did not run")
            if d == .auto { XCTAssertGreaterThan(e, 20 * max(e32, 1e-6), "compute bf16 did not change the output") }
        }
        o.compute = .auto
        let auto = try Backend(name: "cpu", options: o)
        let (ef, pf, _) = try score(.f32, backend: auto)
        XCTAssertEqual(auto.bf16GEMMs, 0, "compute auto: f32 weights stay f32")
        XCTAssertLessThanOrEqual(ef, 1e-3); XCTAssertGreaterThanOrEqual(pf, 40)
        // f16 weights (the fixture's own): on AMX three bf16 terms (activation and weight hi + lo), within 1e-4 of
        // diffusers (measured 4.2e-5 / 97 dB, f32 compute 1.7e-6 / 125 dB) and not f32's bits; f32 without AMX
        let n16 = auto.bf16GEMMs
        let (ea, pa, _) = try score(.auto, backend: auto)
        if auto.bf16Kernel == "amx" {
            XCTAssertGreaterThan(auto.bf16GEMMs - n16, 100, "compute auto on AMX: f16 weights compute in bf16 terms")
            XCTAssertLessThanOrEqual(ea, 1e-4, "f16 weights, compute auto: latents")
            XCTAssertGreaterThanOrEqual(pa, 80, "f16 weights, compute auto: image")
            XCTAssertNotEqual(ea, e32, "compute auto gave the f32 result bit for bit")
        } else {
            XCTAssertEqual(auto.bf16GEMMs, 0, "compute auto without AMX: f16 weights stay f32")
            XCTAssertEqual(ea, e32)
        }
        guard auto.bf16Kernel == "amx" else { return }
        let (eb32, _, _) = try score(.bf16, backend: .cpuF32)   // f32 compute, bf16 weights
        for (d, eb, pb) in [(WeightsDType.bf16, Float(1e-2), 30.0), (.q8_0, 1, 25)] {
            let n0 = auto.bf16GEMMs
            let (e, p, _) = try score(d, backend: auto)
            XCTAssertGreaterThan(auto.bf16GEMMs - n0, 100, "compute auto on AMX: \(d.rawValue) weights compute in bf16")
            XCTAssertLessThanOrEqual(e, eb, "\(d.rawValue) weights, compute auto: latents")
            XCTAssertGreaterThanOrEqual(p, pb, "\(d.rawValue) weights, compute auto: image")
            if d == .bf16 {   // the same parity as f32 compute of the same weights, not the same bits
                XCTAssertNotEqual(e, eb32, "compute auto gave the f32 result bit for bit")
                XCTAssertLessThan(abs(e - eb32), 0.1 * eb32, "compute auto moved bf16 weights' parity")
            }
        }
    }

    /// compute i16 (cpu_i16.c, AVX512-VNNI CPUs such as AMD Zen 4): both GEMM operands as 14 / 13-bit integers per
    /// 64-value block of k. Issue 17's bounds for 16-bit weights on the fixture (final latents <= 1e-2, image >= 30 dB;
    /// q8_0 >= 25 dB). Measured: f16 weights 1.3e-3 / 66 dB (f32 compute 1.7e-6; bf16 compute 2.0e-2), bf16 weights
    /// 9.4e-3 / 51 dB (their own rounding: 9.0e-3 under f32 compute), q8_0 45 dB. The output must move away from f32
    /// compute (the kernel really ran). Skipped without AVX512-VNNI (Tests/OpCheck/bf16_check covers the fallback).
    func testComputeI16WithinIssueBounds() throws {
        var o = BackendOptions.fromEnvironment()
        o.compute = .i16
        let be = try Backend(name: "cpu", options: o)
        guard be.computesInI16 else { throw XCTSkip("no AVX512-VNNI on this CPU: compute i16 stays f32") }
        let (e32, _, _) = try score(.auto, backend: .cpuF32)
        let (e, p, _) = try score(.auto, backend: be)
        XCTAssertLessThanOrEqual(e, 5e-3, "f16 weights, compute i16: latents")
        XCTAssertGreaterThanOrEqual(p, 50, "f16 weights, compute i16: image")
        XCTAssertGreaterThan(e, 100 * max(e32, 1e-6), "compute i16 did not change the output")
        let (eb, pb, _) = try score(.bf16, backend: be)
        XCTAssertLessThanOrEqual(eb, 1e-2, "bf16 weights, compute i16: latents")
        XCTAssertGreaterThanOrEqual(pb, 30, "bf16 weights, compute i16: image")
        let (_, pq, _) = try score(.q8_0, backend: be)
        XCTAssertGreaterThanOrEqual(pq, 25, "q8_0 weights, compute i16: image")
    }

    func testAutoKeepsF16InPlaceAndMatchesDiffusers() throws {
        let (e, p, r) = try score(.auto)
        XCTAssertLessThanOrEqual(e, 1e-3); XCTAssertGreaterThanOrEqual(p, 40)
        let (e32, p32, r32) = try score(.f32)
        XCTAssertLessThanOrEqual(e32, 1e-3); XCTAssertGreaterThanOrEqual(p32, 40)
        // f32 holds no 16-bit weights; auto holds the linear / conv weights and the token table as f16, all
        // read from the mapping
        XCTAssertNil(r32.memory.bytes["f16"])
        let f16 = try XCTUnwrap(r.memory.bytes["f16"])
        XCTAssertEqual(r.memory.mappedBytes, f16, "auto: every f16 weight is used in place from the file")
        XCTAssertEqual(r32.memory.mappedBytes, 0, "f32 from an fp16 file: every tensor a widened copy")
        XCTAssertGreaterThan(r.memory.tensors["f16"] ?? 0, 100)
        // the f16 weights take half their f32 bytes, so the whole model shrinks by that much
        XCTAssertEqual(r32.memory.totalBytes - r.memory.totalBytes, f16, "f16 weights must hold 2 bytes per element")
    }

    func testF16AndBF16WithinBounds() throws {
        let (e16, p16, r16) = try score(.f16)
        XCTAssertLessThanOrEqual(e16, 1e-3); XCTAssertGreaterThanOrEqual(p16, 40)
        XCTAssertGreaterThan(r16.memory.bytes["f16"] ?? 0, 0)
        let (eb, pb, rb) = try score(.bf16)
        XCTAssertLessThanOrEqual(eb, 1e-2); XCTAssertGreaterThanOrEqual(pb, 30)
        XCTAssertEqual(rb.memory.bytes["f16"], try Self.tokenTableBytes(), "bf16: only the token table stays f16")
        XCTAssertGreaterThan(rb.memory.bytes["bf16"] ?? 0, 0)
        // bf16 from an fp16 file is a converted copy; only the token embedding table (gathered on the host)
        // stays as the file stores it, in place
        XCTAssertEqual(rb.memory.mappedBytes, try Self.tokenTableBytes(), "bf16: only the token table is read in place")
        // bf16 moved the output: far more than the f32 path's own error
        let (e32, _, _) = try score(.f32)
        XCTAssertGreaterThan(eb, 20 * max(e32, 1e-6), "bf16 weights did not change the output")
    }

    func testQ8_0QuantizesAndStaysWithin25dB() throws {
        let (eq, pq, rq) = try score(.q8_0)
        XCTAssertGreaterThanOrEqual(pq, 25)
        let q8 = try XCTUnwrap(rq.memory.bytes["q8_0"])
        XCTAssertGreaterThan(q8, 0)
        // rows not a multiple of 32 (conv_in over 4 latent channels: 36) stay f16
        XCTAssertGreaterThan(rq.memory.tensors["f16"] ?? 0, 0)
        let (e32, _, r32) = try score(.f32)
        XCTAssertGreaterThan(eq, 20 * max(e32, 1e-6), "q8_0 weights did not change the output")
        // the reduced weights shrink below their f16 size (the f32 rest, mostly the token embedding, is unchanged)
        let r16 = try Self.run(.f16)
        XCTAssertLessThan(q8 + (rq.memory.bytes["f16"] ?? 0), r16.memory.bytes["f16"] ?? 0)
        XCTAssertEqual(rq.memory.bytes["f32"], r16.memory.bytes["f32"])
        XCTAssertGreaterThan(r32.memory.totalBytes, rq.memory.totalBytes)
    }

    func testSingleFileAutoAlsoInPlace() throws {
        let r = try Self.run(.auto, layout: "sd1.safetensors")
        let folder = try Self.run(.auto)
        XCTAssertEqual(r.memory.mappedBytes, r.memory.bytes["f16"] ?? -1)
        XCTAssertEqual(r.latents.toArray(), folder.latents.toArray(), "single file and folder hold the same weights")
    }
}
