/// The value of `key=` in a line a child printed (`READY peer=3 park=futex`), if
/// the line has that field.
package func field(_ line: String?, _ key: String) -> String? {
    line?.split(separator: " ").first { $0.hasPrefix("\(key)=") }.map { String($0.dropFirst(key.count + 1)) }
}

/// The value of `key=` in a child's line, as a number.
package func numberField(_ line: String?, _ key: String) -> UInt64? {
    field(line, key).flatMap { UInt64($0) }
}
