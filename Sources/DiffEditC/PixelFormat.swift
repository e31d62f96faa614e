import CDiffEditABI

/// The five `diff_edit_pixel_format` values as a closed Swift enum.
enum PixelFormat: UInt32 {
    case rgb8 = 0, rgba8 = 1, bgr8 = 2, bgra8 = 3, gray8 = 4

    var bytesPerPixel: Int {
        switch self {
        case .rgb8, .bgr8: return 3
        case .rgba8, .bgra8: return 4
        case .gray8: return 1
        }
    }

    var name: String {
        switch self {
        case .rgb8: return "DIFF_EDIT_RGB8"
        case .rgba8: return "DIFF_EDIT_RGBA8"
        case .bgr8: return "DIFF_EDIT_BGR8"
        case .bgra8: return "DIFF_EDIT_BGRA8"
        case .gray8: return "DIFF_EDIT_GRAY8"
        }
    }

    var hasAlpha: Bool { self == .rgba8 || self == .bgra8 }

    /// Byte offsets of R, G, B inside a pixel (GRAY8: all 0), and of alpha (nil without alpha).
    var channelOffsets: (r: Int, g: Int, b: Int, a: Int?) {
        switch self {
        case .rgb8: return (0, 1, 2, nil)
        case .rgba8: return (0, 1, 2, 3)
        case .bgr8: return (2, 1, 0, nil)
        case .bgra8: return (2, 1, 0, 3)
        case .gray8: return (0, 0, 0, nil)
        }
    }
}
