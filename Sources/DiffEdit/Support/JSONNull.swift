/// JSON `null` as read by `JSONAny.parse` (JSONSerialization's NSNull).
package struct JSONNull: Equatable, Sendable {
    package init() {}
}
