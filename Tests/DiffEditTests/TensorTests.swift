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
}
