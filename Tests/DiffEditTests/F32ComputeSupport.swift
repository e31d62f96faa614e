import Foundation
@testable import DiffEdit

/// f32 compute for the tests that need it. The default compute is auto (BackendOptions.Compute): on an AMX CPU
/// the GEMMs with f16 / bf16 / q8_0 weights take bf16 terms (4e-5 from diffusers on the sd1 fixture, against
/// 1.7e-6 in f32). Tests pin f32 where their bound is f32's own (a q8_0 kernel against the f32 product of the
/// dequantized weight, SDXL DDIM inversion at 1e-3, identities at 1e-4 / 1e-5) or where they compare two paths
/// bit for bit that take different GEMMs under auto (the staged backend holds weights as f32 constants; a text
/// encoder from an f32 dictionary against its f16 file). Auto itself is checked against diffusers by
/// WeightsDTypeTests and against double references by Tests/OpCheck/bf16_check.c; every other test runs the
/// default.
extension BackendOptions {
    /// The environment's options (DIFFEDIT_*) with f32 compute.
    static func f32Compute(staged: Bool? = nil) -> BackendOptions {
        var o = BackendOptions.fromEnvironment()
        o.compute = .f32
        if let staged { o.cpuStaged = staged }
        return o
    }
}

extension Backend {
    /// Backend.cpu with f32 compute, created once per process.
    nonisolated(unsafe) static let cpuF32: Backend = try! Backend(name: "cpu", options: .f32Compute())
}
