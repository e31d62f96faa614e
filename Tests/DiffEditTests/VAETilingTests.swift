import Foundation
import XCTest
@testable import DiffEdit

/// Tiled VAE decode / encode against diffusers' `vae.enable_tiling()` (Tests/Fixtures/vae_tiling, made by
/// tools/make_vae_tiling_fixtures.py: a tiny VAE with 16 px tiles, inputs of 2 x 4 tiles). The tiled and the
/// whole outputs differ by ~0.6 relative there, so ignoring tiling, or blending differently, fails the 1e-4 bound.
final class VAETilingTests: XCTestCase {
    static func vae() throws -> AutoencoderKL {
        let cfg = try ModelParityTests.config(VAEConfig.self, "vae_tiling/vae/config.json")
        let w = try SafetensorsFile(path: ModelParityTests.path("vae_tiling/vae/diffusion_pytorch_model.safetensors"))
        return try AutoencoderKL(config: cfg, weights: w, backend: .cpu)
    }

    static func npy(_ name: String) throws -> NPY.Array {
        try NPY.read(path: ModelParityTests.path("vae_tiling/\(name).npy"))
    }

    func testTiledDecodeMatchesDiffusers() throws {
        let vae = try Self.vae()
        let z = try Self.npy("latents").tensor                       // [2, 4, 12, 20]: 2 x 4 tiles of 8 latents
        vae.tiling = VAETiling(mode: .on)                            // tiles of sample_size 16 px, as diffusers
        let tiled = try vae.decode(z)
        XCTAssertLessThan(ModelParityTests.relError(tiled, try Self.npy("decoded_tiled")), 1e-4, "tiled decode vs diffusers")
        // the fixture really is tiled: the whole decode is far from the tiled reference
        XCTAssertGreaterThan(ModelParityTests.relError(tiled, try Self.npy("decoded_whole")), 0.1)
        vae.tiling = VAETiling(mode: .off)
        XCTAssertLessThan(ModelParityTests.relError(try vae.decode(z), try Self.npy("decoded_whole")), 1e-4, "whole decode")
    }

    func testTiledEncodeMatchesDiffusers() throws {
        let vae = try Self.vae()
        let image = try Self.npy("image").tensor                     // [1, 3, 24, 40]: 2 x 4 tiles of 16 px
        vae.tiling = VAETiling(mode: .on)
        let tiled = try vae.encodeMean(image)
        XCTAssertLessThan(ModelParityTests.relError(tiled, try Self.npy("mean_tiled")), 1e-4, "tiled encode vs diffusers")
        XCTAssertGreaterThan(ModelParityTests.relError(tiled, try Self.npy("mean_whole")), 0.1)
        vae.tiling = VAETiling(mode: .off)
        XCTAssertLessThan(ModelParityTests.relError(try vae.encodeMean(image), try Self.npy("mean_whole")), 1e-4, "whole encode")
    }

    /// auto (the default) leaves images of up to 512x512 pixels whole: this fixture decodes as without tiling.
    func testAutoKeepsSmallImagesWhole() throws {
        let vae = try Self.vae()
        XCTAssertEqual(vae.tiling, VAETiling(mode: .auto))
        XCTAssertLessThan(ModelParityTests.relError(try vae.decode(try Self.npy("latents").tensor), try Self.npy("decoded_whole")), 1e-4)
    }

    /// The stated thresholds: auto tiles above 512x512 pixels with tiles of min(512, sample_size); on tiles
    /// above one tile; off never.
    func testPlans() throws {
        let sd = VAEConfig()   // SD 1.x/2.x: factor 8, sample_size 512
        let auto = VAETiling()
        XCTAssertNil(auto.plan(width: 512, height: 512, config: sd))
        XCTAssertNil(auto.plan(width: 256, height: 768, config: sd), "256x768 has fewer pixels than 512x512")
        XCTAssertEqual(auto.plan(width: 768, height: 512, config: sd), VAETilePlan(samplePixels: 512, factor: 8))
        XCTAssertEqual(auto.plan(width: 1024, height: 1024, config: sd)?.latent, 64)
        XCTAssertNil(VAETiling(mode: .off).plan(width: 4096, height: 4096, config: sd))
        XCTAssertNil(VAETiling(mode: .on).plan(width: 512, height: 512, config: sd), "on: one tile is not tiled")
        XCTAssertEqual(VAETiling(mode: .on, tileSize: 256).plan(width: 512, height: 512, config: sd)?.sample, 256)
        var xl = VAEConfig(); xl.sample_size = 1024
        XCTAssertEqual(auto.plan(width: 1024, height: 1024, config: xl)?.sample, 512, "auto caps the tile at 512 px")
        XCTAssertEqual(VAETiling(mode: .on).plan(width: 1536, height: 1024, config: xl)?.sample, 1024)
        // diffusers' SD numbers: decode tiles every 48 latents, blend 128 px, keep 384 px
        let p = VAETilePlan(samplePixels: 512, factor: 8)
        XCTAssertEqual([p.decodeStep, p.decodeBlend, p.decodeKeep, p.encodeStep, p.encodeBlend, p.encodeKeep], [48, 128, 384, 384, 16, 48])
    }

    func testBadSettingsAreErrorsNamingTheFlag() {
        XCTAssertThrowsError(try VAETiling.parseMode("yes")) { e in
            XCTAssertTrue("\(e)".contains("--vae-tiling") && "\(e)".contains("auto, on, off"), "\(e)")
        }
        XCTAssertThrowsError(try VAETiling.checkTileSize(100, factor: 8)) { e in
            XCTAssertTrue("\(e)".contains("--vae-tile-size") && "\(e)".contains("32"), "\(e)")
        }
        XCTAssertThrowsError(try VAETiling.checkTileSize(0, factor: 8))
        XCTAssertNoThrow(try VAETiling.checkTileSize(256, factor: 8))
        XCTAssertEqual(try VAETiling.parseMode(""), .auto)
    }
}
