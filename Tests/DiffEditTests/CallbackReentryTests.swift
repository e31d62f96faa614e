import CDiffEditABI
import DiffEditC
import Dispatch
import Foundation
import XCTest
@testable import DiffEdit

/// A progress callback may call diff_edit_image on another context of the same model (issue 21: the engine's
/// compute lock was held during callbacks, non-recursive, and this deadlocked). The compute lock is now let go
/// while a callback runs. The edit runs on its own thread with a deadline, so a regression fails instead of
/// hanging the suite (the hung thread holds only this test's own model).
final class CallbackReentryTests: XCTestCase {
    /// What the edit thread needs (raw pointers: not Sendable, handed over once).
    final class Run: @unchecked Sendable {
        var ctx1: OpaquePointer? = nil
        var user: UnsafeMutableRawPointer? = nil
        var callback: diff_edit_progress_fn? = nil
        var outer: diff_edit_status? = nil
        let done = DispatchSemaphore(value: 0)
    }

    final class Box {
        var ctx2: OpaquePointer? = nil
        var nestedStatus: diff_edit_status? = nil
        var nestedMessage = ""
        var calls = 0
        var pixels = [UInt8](repeating: 90, count: 64 * 64 * 3)
        var out = [UInt8](repeating: 0, count: 64 * 64 * 3)
    }

    func testProgressCallbackMayEditOnAnotherContextOfTheSameModel() throws {
        var mp = diff_edit_model_params()
        diffEditModelParamsDefault(&mp)
        var model: OpaquePointer? = nil
        let st = EntryPointEqualityTests.sd1.withCString { path -> diff_edit_status in
            "cpu".withCString { be in mp.path = path; mp.backend = be; return diffEditModelLoad(&mp, &model) }
        }
        XCTAssertEqual(st, DIFF_EDIT_OK)
        guard let m = model else { return }
        var c1: OpaquePointer? = nil, c2: OpaquePointer? = nil
        XCTAssertEqual(diffEditCtxCreate(m, &c1), DIFF_EDIT_OK)
        XCTAssertEqual(diffEditCtxCreate(m, &c2), DIFF_EDIT_OK)
        let box = Box()
        box.ctx2 = c2

        let callback: diff_edit_progress_fn = { user, _, _, _, _ in
            let b = Unmanaged<Box>.fromOpaque(user!).takeUnretainedValue()
            b.calls += 1
            guard b.nestedStatus == nil else { return true }
            var p = diff_edit_params()
            diffEditParamsDefault(&p)
            let st: diff_edit_status = "a blue circle".withCString { pr in
                p.prompt = pr; p.method = DIFF_EDIT_METHOD_SDEDIT; p.steps = 2
                return b.pixels.withUnsafeMutableBytes { ib in b.out.withUnsafeMutableBytes { ob in
                    var i = diff_edit_buffer(width: 64, height: 64, stride: 192, format: DIFF_EDIT_RGB8, data: ib.baseAddress)
                    var o = diff_edit_buffer(width: 64, height: 64, stride: 192, format: DIFF_EDIT_RGB8, data: ob.baseAddress)
                    return diffEditImage(b.ctx2, &p, &i, &o)
                } }
            }
            b.nestedStatus = st
            b.nestedMessage = String(cString: diffEditLastError(b.ctx2))
            return true
        }

        let run = Run()
        run.user = Unmanaged.passRetained(box).toOpaque()
        run.ctx1 = c1
        run.callback = callback
        let thread = Thread {
            var pixels = [UInt8](repeating: 200, count: 64 * 64 * 3), out = [UInt8](repeating: 0, count: 64 * 64 * 3)
            var p = diff_edit_params()
            diffEditParamsDefault(&p)
            run.outer = "a red circle".withCString { pr in
                p.prompt = pr; p.method = DIFF_EDIT_METHOD_SDEDIT; p.steps = 3; p.strength = 1
                p.progress = run.callback; p.progress_user = run.user
                return pixels.withUnsafeMutableBytes { ib in out.withUnsafeMutableBytes { ob in
                    var i = diff_edit_buffer(width: 64, height: 64, stride: 192, format: DIFF_EDIT_RGB8, data: ib.baseAddress)
                    var o = diff_edit_buffer(width: 64, height: 64, stride: 192, format: DIFF_EDIT_RGB8, data: ob.baseAddress)
                    return diffEditImage(run.ctx1, &p, &i, &o)
                } }
            }
            run.done.signal()
        }
        thread.start()
        guard run.done.wait(timeout: .now() + 120) == .success else {
            XCTFail("the edit with a re-entrant progress callback did not finish within 120 s (deadlock)")
            return   // model and contexts are left to the hung thread
        }
        Unmanaged<Box>.fromOpaque(run.user!).release()
        XCTAssertEqual(run.outer, DIFF_EDIT_OK)
        XCTAssertEqual(box.nestedStatus, DIFF_EDIT_OK, box.nestedMessage)
        XCTAssertEqual(box.calls, 3, "one progress report per step")
        XCTAssertTrue(box.out.contains { $0 != 0 }, "the nested edit wrote its output")
        diffEditCtxFree(c1)
        diffEditCtxFree(c2)
        diffEditModelFree(m)
    }
}
