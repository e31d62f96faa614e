import CDiffEditABI
import DiffEditC
import Foundation
import XCTest
@testable import DiffEdit

/// Issue 21: a failed allocation is DiffEditError.outOfMemory / DIFF_EDIT_ERR_OUT_OF_MEMORY naming the bytes and the
/// buffer, not a trap. Large host buffers go through HostMemory (posix_memalign: nil instead of SIGABRT); its test
/// limit (`HostMemory.testLimit`, DIFFEDIT_TEST_ALLOC_LIMIT in test_cabi) makes every allocation above it fail as a
/// real out-of-memory does. After the failure the process, the model and the context carry on.
final class HardeningAllocationTests: XCTestCase {
    override func tearDown() { HostMemory.testLimit = nil }

    static let sd1 = EditTestSupport.fixtures + "/sd1"

    /// A plain (not staged) CPU backend: op outputs are host memory, from HostMemory.
    static func model() throws -> StableDiffusionModel {
        try StableDiffusionModel.load(path: sd1, backend: try Backend(name: "cpu", threads: 2, staged: false))
    }

    func testAllocatorReturnsNilAboveTheLimitAndTensorsThrow() throws {
        HostMemory.testLimit = 1 << 20
        XCTAssertNil(HostMemory.allocate(1 << 20 + 1))
        let p = try XCTUnwrap(HostMemory.allocate(1 << 20))
        XCTAssertEqual(Int(bitPattern: p) % 64, 0, "64-byte aligned")
        HostMemory.free(p)
        IOTestSupport.assertThrows("outOfMemory", ["out of memory allocating 4194304 bytes for", "an op output", "[1024, 1024]"]) {
            _ = try Backend(name: "cpu", threads: 1, staged: false).output([1024, 1024])
        }
        IOTestSupport.assertThrows("outOfMemory", ["out of memory allocating", "a 1024x512 image as a tensor"]) {
            _ = try RGBImage(width: 1024, height: 512, fill: 3).tensor()
        }
        IOTestSupport.assertThrows("outOfMemory", ["out of memory allocating 3000000 bytes for the probe"]) {
            try HostMemory.reserve(3_000_000, what: "the probe")
        }
        // an absurd size (a product that overflows) is a failure too, not an overflow trap
        XCTAssertThrowsError(try Tensor.allocate([1 << 40, 1 << 30], what: "absurd"))
        HostMemory.testLimit = nil
        XCTAssertNotNil(try? Tensor.allocate([1024, 1024], zeroed: true, what: "fine"))
    }

    /// The Swift API: a full-resolution edit whose VAE activations (8 x 512 x 512 floats) are above the limit fails
    /// with outOfMemory at the first such op output; a small edit on the same editor then succeeds, under the same
    /// limit and without it, and gives the same bytes as an editor that never failed.
    func testEditOutOfMemoryIsAnErrorAndTheEditorStaysUsable() throws {
        let model = try Self.model()
        let editor = ImageEditor(model: model)
        var o = EditOptions()
        o.method = .sdedit; o.prompt = "a blue circle"; o.steps = 2; o.seed = 3; o.strength = 0.5
        let small = RGBImage(width: 64, height: 64, fill: 90)
        let reference = try ImageEditor(model: model).edit(small, options: o, progress: ProgressReporter())

        HostMemory.testLimit = 4 << 20
        var big = o
        big.fullResolution = true
        IOTestSupport.assertThrows("outOfMemory", ["out of memory allocating", "bytes for an op output", "512, 512]"]) {
            _ = try editor.edit(RGBImage(width: 512, height: 512, fill: 90), options: big, progress: ProgressReporter())
        }
        let under = try editor.edit(small, options: o, progress: ProgressReporter())
        XCTAssertEqual(under.image, reference.image, "an edit under the limit after the failure")
        HostMemory.testLimit = nil
        XCTAssertEqual(try editor.edit(small, options: o, progress: ProgressReporter()).image, reference.image)
    }

    /// The C ABI (in-process: the exports of libdiffedit.so): an input whose RGB copy is above the limit is
    /// DIFF_EDIT_ERR_OUT_OF_MEMORY with the message; the same context then edits a small input (DIFF_EDIT_OK).
    func testCABIOutOfMemoryThenSuccessOnTheSameContext() throws {
        try EntryPointEqualityTests.withCABI(model: Self.sd1) { ctxs in
            let cx = ctxs[0]
            func edit(_ w: Int, _ h: Int) -> diff_edit_status {
                var inPx = [UInt8](repeating: 120, count: w * h), outPx = [UInt8](repeating: 0, count: w * h)
                return inPx.withUnsafeMutableBytes { ib in outPx.withUnsafeMutableBytes { ob in
                    var i = diff_edit_buffer(width: UInt32(w), height: UInt32(h), stride: UInt32(w), format: DIFF_EDIT_GRAY8, data: ib.baseAddress)
                    var o = diff_edit_buffer(width: UInt32(w), height: UInt32(h), stride: UInt32(w), format: DIFF_EDIT_GRAY8, data: ob.baseAddress)
                    var p = diff_edit_params()
                    diffEditParamsDefault(&p)
                    return "a blue circle".withCString { pr in
                        p.method = DIFF_EDIT_METHOD_SDEDIT; p.prompt = pr; p.steps = 2; p.seed = 1; p.strength = 0.5
                        return diffEditImage(cx, &p, &i, &o)
                    }
                } }
            }
            HostMemory.testLimit = 1 << 20
            XCTAssertEqual(edit(1024, 1024), DIFF_EDIT_ERR_OUT_OF_MEMORY)
            let msg = String(cString: diffEditLastError(cx))
            XCTAssertTrue(msg.contains("out of memory allocating 3145728 bytes for input as RGB (1024x1024)"), msg)
            XCTAssertEqual(edit(64, 64), DIFF_EDIT_OK, String(cString: diffEditLastError(cx)))
            HostMemory.testLimit = nil
            XCTAssertEqual(edit(64, 64), DIFF_EDIT_OK, String(cString: diffEditLastError(cx)))
        }
    }
}
