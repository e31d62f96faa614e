import CDiffKernels
import DiffEdit
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
            de_backend *de_backend_cuda_init(int device, char *err, size_t len) { (void)device; (void)err; (void)len; abort(); }
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
            de_backend *de_backend_cuda_init(int device, char *err, size_t len) {
                (void)device; (void)err; (void)len; fake.api_version = 7; return &fake;
            }
            """)
        setenv("DIFFEDIT_BACKEND_PATH", dir.appendingPathComponent("libdiffedit_cuda.so").path, 1) // a file path works too
        let msg = backendError { try Backend(name: "cuda") }
        XCTAssertTrue(msg?.contains("API version 7") == true, msg ?? "nil")
    }

    func testProviderWithoutDeviceFallsBackWithItsReason() throws {
        let dir = try fakeProvider("""
            de_backend *de_backend_cuda_init(int device, char *err, size_t len) {
                snprintf(err, len, "fake: no CUDA device (device %d)", device); return NULL;
            }
            """)
        setenv("DIFFEDIT_BACKEND_PATH", "/nonexistent:" + dir.path, 1) // a list: the first existing one counts
        let be = try Backend(name: "auto")
        XCTAssertEqual(be.name, "cpu")
        XCTAssertTrue(be.fallbackReason.contains("no usable CUDA device 0: fake: no CUDA device (device 0)"), be.fallbackReason)
        let msg = backendError { try Backend(name: "cuda", device: 3) }
        XCTAssertTrue(msg?.contains("fake: no CUDA device (device 3)") == true, msg ?? "nil")
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
            de_backend *de_backend_cuda_init(int device, char *err, size_t len) {
                (void)device; (void)err; (void)len;
                fake.api_version = DE_BACKEND_API_VERSION;
                fake.iface.get_name = nm; fake.iface.free = fr; fake.iface.last_error = le;
                return &fake;
            }
            """)
        setenv("DIFFEDIT_BACKEND_PATH", dir.path, 1)
        let be = try Backend(name: "auto")
        XCTAssertEqual(be.name, "fakecuda")
        XCTAssertEqual(be.fallbackReason, "")
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
}
