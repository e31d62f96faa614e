import CDiffEditABI
import DiffEdit

/// A `diff_edit_buffer` whose every field has been checked: size within limits, known format,
/// stride at least one row, non-NULL data. Only a CheckedBuffer is ever read or written.
struct CheckedBuffer {
    let width: Int
    let height: Int
    let stride: Int
    let format: PixelFormat
    let data: UnsafeMutableRawPointer
    /// What messages call it ("input", "frames_in[3]").
    let name: String

    /// Checks `buffer` (named `name` in messages, e.g. "input" or "frames_in[3]").
    init(_ buffer: UnsafePointer<diff_edit_buffer>?, name: String) throws {
        guard let b = buffer?.pointee else { throw DiffEditError.invalidArgument("\(name) is NULL") }
        let maxDim = ABIInfo.maxDimension
        guard b.width >= 1 else { throw DiffEditError.invalidArgument("\(name)->width is 0") }
        guard b.height >= 1 else { throw DiffEditError.invalidArgument("\(name)->height is 0") }
        guard Int(b.width) <= maxDim else {
            throw DiffEditError.invalidArgument("\(name)->width (\(b.width)) is above the maximum \(maxDim) (DIFF_EDIT_MAX_DIMENSION)")
        }
        guard Int(b.height) <= maxDim else {
            throw DiffEditError.invalidArgument("\(name)->height (\(b.height)) is above the maximum \(maxDim) (DIFF_EDIT_MAX_DIMENSION)")
        }
        guard let f = PixelFormat(rawValue: b.format.rawValue) else {
            throw DiffEditError.invalidArgument("\(name)->format (\(b.format.rawValue)) is not a diff_edit_pixel_format (0..4)")
        }
        let row = Int(b.width) * f.bytesPerPixel
        guard Int(b.stride) >= row else {
            throw DiffEditError.invalidArgument("\(name)->stride (\(b.stride)) is smaller than width * \(f.bytesPerPixel) (\(row)) for \(f.name)")
        }
        guard let d = b.data else { throw DiffEditError.invalidArgument("\(name)->data is NULL") }
        width = Int(b.width); height = Int(b.height); stride = Int(b.stride); format = f; data = d
        self.name = name
    }

    var rowBytes: Int { width * format.bytesPerPixel }

    /// Throws unless this buffer has the size of `other` (named `otherName`).
    func requireSize(of other: CheckedBuffer, name: String, otherName: String) throws {
        guard width == other.width && height == other.height else {
            throw DiffEditError.invalidArgument("\(name) size (\(width)x\(height)) must equal \(otherName) size (\(other.width)x\(other.height))")
        }
    }

    func requireFormat(_ f: PixelFormat, name: String) throws {
        guard format == f else {
            throw DiffEditError.invalidArgument("\(name)->format (\(format.name)) must be \(f.name)")
        }
    }
}
