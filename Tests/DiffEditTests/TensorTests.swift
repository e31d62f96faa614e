import XCTest
@testable import DiffEdit

final class TensorTests: XCTestCase {
    func testReshapeAndSliceShareStorage() {
        let t = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        let s = t.slice0(1, 1)
        XCTAssertEqual(s.shape, [1, 3])
        XCTAssertEqual(s.toArray(), [4, 5, 6])
        s.data[0] = 40
        XCTAssertEqual(t.reshaped([3, 2]).toArray(), [1, 2, 3, 40, 5, 6])
        XCTAssertEqual(t.reshaped([-1]).shape, [6])
    }

    /// A constant (Backend.constant) keeps its source for host reads; views address the handle at an offset.
    func testConstantStorageViewsAndHostReads() throws {
        var o = BackendOptions()
        o.threads = 1
        o.cpuStaged = true
        let be = try Backend(name: "cpu", options: o)
        let src = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        let c = try be.constant(src, kind: .param)
        XCTAssertTrue(c.storage.isConstant)
        XCTAssertTrue(c.isOnDevice)
        XCTAssertEqual(c.toArray(), [1, 2, 3, 4, 5, 6], "host reads see the source")
        XCTAssertEqual(c.data, src.data, "the source's host memory, not a copy")
        let row = c.slice0(1, 1)
        XCTAssertEqual(row.opData, c.opData + 3, "a view is the handle plus the element offset")
        XCTAssertEqual(row.toArray(), [4, 5, 6])
        XCTAssertEqual(c.reshaped([3, 2]).opData, c.opData)
        // an op reads the constant through the handle (the provider's own copy)
        let y = try be.add(try be.onDevice(Tensor(shape: [2, 3], values: [10, 20, 30, 40, 50, 60])), c)
        XCTAssertEqual(y.toArray(), [11, 22, 33, 44, 55, 66])
        // on the plain CPU backend a constant is the tensor itself
        XCTAssertTrue(try Backend(name: "cpu", options: BackendOptions()).constant(src, kind: .weight) === src)
    }
}
