import CDiffKernels
@testable import DiffEdit
import Foundation
import XCTest

/// The CUDA provider loader in CSources/CDiffKernels/registry.c (de_backend_load), as the Swift Backend
/// sees it: "auto" falls back to the CPU with a reason, "cuda" fails with one, and a provider with another
/// API version is refused. Fake providers are compiled here with `cc` from a few lines of C against
/// de_backend.h; the real provider (build/lib/libdiffedit_cuda.so, `make cuda`) is tried when it was built.
final class BackendLoaderTests: XCTestCase {
    private var savedPath: String?
    private var tempDirs: [URL] = []

    private static var repoRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    override func setUp() {
        super.setUp()
        savedPath = ProcessInfo.processInfo.environment["DIFFEDIT_BACKEND_PATH"]
    }

    override func tearDown() {
        if let s = savedPath { setenv("DIFFEDIT_BACKEND_PATH", s, 1) } else { unsetenv("DIFFEDIT_BACKEND_PATH") }
        for d in tempDirs { try? FileManager.default.removeItem(at: d) }
        super.tearDown()
    }

    private func tempDir() throws -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("diffedit-loader-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        tempDirs.append(d)
        return d
    }

    /// Compiles `body` (C, after #include "de_backend.h") into DIR/libdiffedit_cuda.so; skips without cc.
    private func fakeProvider(_ body: String) throws -> URL {
        let dir = try tempDir()
        let src = dir.appendingPathComponent("fake.c"), lib = dir.appendingPathComponent("libdiffedit_cuda.so")
        try ("#include \"de_backend.h\"\n#include <stdio.h>\n#include <stdlib.h>\n" + body).write(to: src, atomically: true, encoding: .utf8)
        let include = Self.repoRoot.appendingPathComponent("CSources/CDiffKernels/include").path
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["cc", "-shared", "-fPIC", "-O0", "-I", include, src.path, "-o", lib.path]
        let errPipe = Pipe()
        p.standardError = errPipe
        do { try p.run() } catch { throw XCTSkip("cc not runnable: \(error)") }
        p.waitUntilExit()
        if p.terminationStatus != 0 {
            let msg = String(decoding: errPipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            if msg.contains("not found") || p.terminationStatus == 127 { throw XCTSkip("no C compiler: \(msg)") }
            XCTFail("fake provider did not compile: \(msg)")
        }
        return dir
    }

    private func backendError(_ body: () throws -> Backend) -> String? {
        do {
            _ = try body()
            return nil
        } catch let e as DiffEditError {
            guard case .backend(let m) = e else { return "wrong case: \(e)" }
            return m
        } catch {
            return "unexpected \(error)"
        }
    }

    func testAutoFallsBackToCPUWhenProviderIsAbsent() throws {
        let empty = try tempDir()
        setenv("DIFFEDIT_BACKEND_PATH", empty.path, 1)
        // The folder of the test bundle must not hold a provider for this test to mean anything.
        let be = try Backend(name: "auto")
        XCTAssertEqual(be.name, "cpu")
        XCTAssertTrue(be.fallbackReason.contains("libdiffedit_cuda.so not found"), be.fallbackReason)
        XCTAssertTrue(be.fallbackReason.contains(empty.path), "the reason lists where it looked: \(be.fallbackReason)")
        XCTAssertTrue(be.fallbackReason.hasSuffix("using CPU"), be.fallbackReason)
        // The CPU backend that came back works.
        let y = try be.scale(Tensor(shape: [3], values: [1, 2, 3]), 2)
        XCTAssertEqual(y.toArray(), [2, 4, 6])
    }

    func testCPUNeverLooksForAProvider() throws {
        setenv("DIFFEDIT_BACKEND_PATH", "/nonexistent/diffedit", 1)
        let be = try Backend(name: "cpu")
        XCTAssertEqual(be.name, "cpu")
        XCTAssertEqual(be.fallbackReason, "")
    }

    func testCudaFailsWithTheReasonWhenProviderIsAbsent() throws {
        let empty = try tempDir()
        setenv("DIFFEDIT_BACKEND_PATH", empty.path, 1)
        let msg = backendError { try Backend(name: "cuda") }
        XCTAssertNotNil(msg)
        XCTAssertTrue(msg?.contains("backend cuda") == true && msg?.contains("libdiffedit_cuda.so not found") == true, msg ?? "")
    }

    func testProviderWithWrongAPIVersionExportIsRefused() throws {
        let dir = try fakeProvider("""
            int de_backend_api_version(void) { return 999; }
            de_backend *de_backend_cuda_init(const de_backend_options *o, char *err, size_t len) { (void)o; (void)err; (void)len; abort(); }
            """)
        setenv("DIFFEDIT_BACKEND_PATH", dir.path, 1)
        let msg = backendError { try Backend(name: "cuda") }
        XCTAssertTrue(msg?.contains("API version 999") == true, msg ?? "nil")
        // "auto" survives the same provider (init is never called: it would abort) and names the reason.
        let be = try Backend(name: "auto")
        XCTAssertEqual(be.name, "cpu")
        XCTAssertTrue(be.fallbackReason.contains("API version 999") && be.fallbackReason.hasSuffix("using CPU"), be.fallbackReason)
    }

    func testBackendWithWrongAPIVersionIsRefused() throws {
        let dir = try fakeProvider("""
            static de_backend fake;
            de_backend *de_backend_cuda_init(const de_backend_options *o, char *err, size_t len) {
                (void)o; (void)err; (void)len; fake.api_version = 7; return &fake;
            }
            """)
        setenv("DIFFEDIT_BACKEND_PATH", dir.appendingPathComponent("libdiffedit_cuda.so").path, 1) // a file path works too
        let msg = backendError { try Backend(name: "cuda") }
        XCTAssertTrue(msg?.contains("API version 7") == true, msg ?? "nil")
    }

    func testProviderWithoutDeviceFallsBackWithItsReason() throws {
        let dir = try fakeProvider("""
            de_backend *de_backend_cuda_init(const de_backend_options *o, char *err, size_t len) {
                snprintf(err, len, "fake: no CUDA device (device %d, dtype %d, sync %d)", o->device, o->cuda_dtype, o->cuda_sync);
                return NULL;
            }
            """)
        setenv("DIFFEDIT_BACKEND_PATH", "/nonexistent:" + dir.path, 1) // a list: the first existing one counts
        let be = try Backend(name: "auto")
        XCTAssertEqual(be.name, "cpu")
        XCTAssertTrue(be.fallbackReason.contains("no usable CUDA device 0: fake: no CUDA device (device 0"), be.fallbackReason)
        let msg = backendError { try Backend(name: "cuda", device: 3) }
        XCTAssertTrue(msg?.contains("fake: no CUDA device (device 3, dtype 1, sync 0)") == true, msg ?? "nil")
        // the options struct reaches the provider's entry point
        var o = BackendOptions()
        o.device = 2
        o.cudaBF16 = true
        o.cudaSync = true
        o.backendPath = dir.path
        unsetenv("DIFFEDIT_BACKEND_PATH")
        let msg2 = backendError { try Backend(name: "cuda", options: o) }
        XCTAssertTrue(msg2?.contains("fake: no CUDA device (device 2, dtype 2, sync 1)") == true, msg2 ?? "nil")
    }

    func testProviderWithoutEntryPointIsRefused() throws {
        let dir = try fakeProvider("int not_the_entry_point(void) { return 1; }\n")
        setenv("DIFFEDIT_BACKEND_PATH", dir.path, 1)
        let msg = backendError { try Backend(name: "cuda") }
        XCTAssertTrue(msg?.contains("de_backend_cuda_init not exported") == true, msg ?? "nil")
    }

    func testWorkingProviderIsUsedAndMissingOpsAreUnsupported() throws {
        let dir = try fakeProvider("""
            static const char *nm(de_backend *b) { (void)b; return "fakecuda"; }
            static void fr(de_backend *b) { (void)b; }
            static const char *le(de_backend *b) { (void)b; return "fake provider has no ops"; }
            static de_backend fake;
            int de_backend_api_version(void) { return DE_BACKEND_API_VERSION; }
            de_backend *de_backend_cuda_init(const de_backend_options *o, char *err, size_t len) {
                (void)o; (void)err; (void)len;
                fake.api_version = DE_BACKEND_API_VERSION;
                fake.iface.get_name = nm; fake.iface.free = fr; fake.iface.last_error = le;
                return &fake;
            }
            """)
        setenv("DIFFEDIT_BACKEND_PATH", dir.path, 1)
        let be = try Backend(name: "auto")
        XCTAssertEqual(be.name, "fakecuda")
        XCTAssertEqual(be.fallbackReason, "")
        XCTAssertFalse(be.resident, "no caps slot: not resident, whatever the name")
        XCTAssertFalse(be.wantsConstants)
        let w = Tensor(shape: [2], values: [1, 2])
        XCTAssertTrue(try be.constant(w, kind: .weight) === w, "no constant slot: the host tensor itself")
        XCTAssertThrowsError(try be.scale(Tensor(shape: [2], values: [1, 2]), 2)) { e in
            guard case DiffEditError.unsupported(let m)? = e as? DiffEditError else { return XCTFail("\(e)") }
            XCTAssertTrue(m.hasPrefix("unary"), m)
        }
    }

    /// The real provider, when `make cuda` built it: without a GPU it must report no usable device
    /// (and "auto" must fall back); with one it must load.
    func testRealProviderReportsDeviceOrFallsBack() throws {
        let lib = Self.repoRoot.appendingPathComponent("build/lib/libdiffedit_cuda.so")
        guard FileManager.default.fileExists(atPath: lib.path) else {
            throw XCTSkip("build/lib/libdiffedit_cuda.so not built (make cuda)")
        }
        setenv("DIFFEDIT_BACKEND_PATH", lib.path, 1)
        let be = try Backend(name: "auto")
        if be.name == "cuda" {
            XCTAssertEqual(be.fallbackReason, "")
            let y = try be.scale(Tensor(shape: [3], values: [1, 2, 3]), 2, plus: 1)
            XCTAssertEqual(y.toArray(), [3, 5, 7])
        } else {
            XCTAssertEqual(be.name, "cpu")
            // Either no device (the normal case on CI) or the CUDA libraries are missing at run time.
            XCTAssertTrue(be.fallbackReason.contains(lib.path), be.fallbackReason)
            XCTAssertTrue(be.fallbackReason.contains("no usable CUDA device") || be.fallbackReason.contains("cannot be loaded"),
                          be.fallbackReason)
            let msg = backendError { try Backend(name: "cuda") }
            XCTAssertTrue(msg?.contains(lib.path) == true, msg ?? "nil")
        }
    }

    /// The DIFFEDIT_* variables fill the options once, when a backend is created without options;
    /// explicit options never read the environment; no op reads it afterwards.
    func testOptionsAreFilledFromTheEnvironmentOnce() throws {
        let names = ["DIFFEDIT_CPU_STAGED", "DIFFEDIT_WINOGRAD", "DIFFEDIT_NO_WINOGRAD", "DIFFEDIT_WINOGRAD_TILES",
                     "DIFFEDIT_IM2COL_ROWS", "DIFFEDIT_CUDA_DTYPE", "DIFFEDIT_CUDA_WEIGHT_CACHE", "DIFFEDIT_CUDA_SYNC",
                     "DIFFEDIT_CUDA_RESIDENT", "DIFFEDIT_KERNEL_PROFILE", "DIFFEDIT_COMPUTE", "DIFFEDIT_BF16_KERNEL",
                     "DIFFEDIT_CPU_SIMD", "DIFFEDIT_WINOGRAD_CHANNELS"]
        let saved = names.map { ($0, ProcessInfo.processInfo.environment[$0]) }
        defer { for (n, v) in saved { if let v { setenv(n, v, 1) } else { unsetenv(n) } } }
        for n in names { unsetenv(n) }
        let defaults = BackendOptions.fromEnvironment()
        XCTAssertEqual(defaults, BackendOptions(), "no variables: the defaults")
        XCTAssertTrue(defaults.cudaWeightCache && defaults.cudaResident && !defaults.cpuStaged)

        setenv("DIFFEDIT_CPU_STAGED", "1", 1)
        setenv("DIFFEDIT_WINOGRAD", "4", 1)
        setenv("DIFFEDIT_WINOGRAD_TILES", "7", 1)
        setenv("DIFFEDIT_IM2COL_ROWS", "3", 1)
        setenv("DIFFEDIT_WINOGRAD_CHANNELS", "5", 1)
        setenv("DIFFEDIT_CUDA_DTYPE", "bf16", 1)
        setenv("DIFFEDIT_CUDA_WEIGHT_CACHE", "0", 1)
        setenv("DIFFEDIT_CUDA_SYNC", "1", 1)
        setenv("DIFFEDIT_CUDA_RESIDENT", "0", 1)
        setenv("DIFFEDIT_BACKEND_PATH", "/a:/b", 1)
        setenv("DIFFEDIT_COMPUTE", "auto", 1)
        setenv("DIFFEDIT_BF16_KERNEL", "avx512bf16", 1)
        setenv("DIFFEDIT_CPU_SIMD", "256", 1)
        let e = BackendOptions.fromEnvironment()
        XCTAssertEqual(e.cpuSIMD, 256)
        XCTAssertEqual(e.compute, .auto)
        XCTAssertEqual(e.bf16Kernel, 1)
        setenv("DIFFEDIT_COMPUTE", "bf16", 1)
        setenv("DIFFEDIT_BF16_KERNEL", "none", 1)
        XCTAssertEqual(BackendOptions.fromEnvironment().compute, .bf16)
        XCTAssertEqual(BackendOptions.fromEnvironment().bf16Kernel, -1)
        let noKernel = try Backend(name: "cpu", options: BackendOptions.fromEnvironment())
        XCTAssertEqual(noKernel.bf16Kernel, "none")
        XCTAssertFalse(noKernel.computesInBF16(weights: .bf16), "bf16 asked for, no kernel allowed: f32")
        XCTAssertTrue(e.cpuStaged)
        XCTAssertEqual(e.winograd, .f4)
        XCTAssertEqual(e.winogradTiles, 7)
        XCTAssertEqual(e.im2colRows, 3)
        XCTAssertEqual(e.winogradChannels, 5)
        XCTAssertTrue(e.cudaBF16)
        XCTAssertFalse(e.cudaWeightCache)
        XCTAssertTrue(e.cudaSync)
        XCTAssertFalse(e.cudaResident)
        XCTAssertEqual(e.backendPath, "/a:/b")
        XCTAssertFalse(e.kernelProfile)
        setenv("DIFFEDIT_NO_WINOGRAD", "1", 1)
        XCTAssertEqual(BackendOptions.fromEnvironment().winograd, .off, "DIFFEDIT_NO_WINOGRAD wins")

        // Backend(name:) without options: the environment, read at creation
        let fromEnv = try Backend(name: "cpu", threads: 1)
        XCTAssertTrue(fromEnv.resident, "DIFFEDIT_CPU_STAGED=1 makes the default CPU backend staged")
        XCTAssertEqual(fromEnv.options.winograd, .off)
        XCTAssertEqual(fromEnv.options.threads, 1)
        XCTAssertFalse(try Backend(name: "cpu", threads: 1, staged: false).resident, "an explicit staged: wins")
        // explicit options: the environment is not consulted
        XCTAssertFalse(try Backend(name: "cpu", options: BackendOptions()).resident)
        // read once: changing the environment later changes nothing for a backend that exists
        for n in names { unsetenv(n) }
        XCTAssertTrue(fromEnv.resident)
        let x = Tensor(shape: [1, 2, 30, 30], values: (0..<1800).map { Float($0 % 13) * 0.1 })
        let w = Tensor(shape: [3, 2, 3, 3], values: (0..<54).map { Float($0 % 7) * 0.1 - 0.3 })
        let y = try fromEnv.conv2d(x, w, nil, padding: 1).toArray()   // Winograd off, as created
        let ref = try Backend(name: "cpu", options: { var o = BackendOptions(); o.winograd = .off; return o }())
            .conv2d(x, w, nil, padding: 1).toArray()
        XCTAssertEqual(y, ref)
        // the C struct round-trips every field
        var o = BackendOptions()
        o.threads = 3; o.device = 1; o.cpuStaged = true; o.winograd = .f2; o.winogradTiles = 5; o.im2colRows = 4
        o.kernelProfile = false; o.cudaBF16 = true; o.cudaWeightCache = false; o.cudaSync = true; o.cudaResident = false
        o.backendPath = "/x/libdiffedit_cuda.so"; o.compute = .bf16; o.bf16Kernel = 1
        XCTAssertEqual(BackendOptions(o.c), o)
        XCTAssertThrowsError(try BackendOptions.Compute.parse("fp8")) { e in
            XCTAssertTrue("\(e)".contains("--compute") && "\(e)".contains("auto, f32, bf16 or i16"), "\(e)")
        }
        XCTAssertEqual(try BackendOptions.Compute.parse("BF16"), .bf16)
        XCTAssertEqual(try BackendOptions.Compute.parse("i16"), .i16)
        o.compute = .i16
        XCTAssertEqual(BackendOptions(o.c), o)
    }
}
