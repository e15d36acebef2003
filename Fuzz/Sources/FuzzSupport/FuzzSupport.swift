internal import CLibFuzzer
#if canImport(Glibc)
    import Glibc
#endif

// Helpers shared by the fuzz targets. Each target is one executable whose
// `main` hands over to libFuzzer (`runFuzzer`), which then calls the target's
// `LLVMFuzzerTestOneInput` once per input.

/// A property a fuzz target checks was broken: print what, then abort, so
/// libFuzzer saves the input as a `crash-<sha1>` artifact.
public func fuzzCheck(
    _ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
    file: StaticString = #fileID, line: UInt = #line
) {
    if !condition() {
        fatalError("fuzz property broken: \(message())", file: file, line: line)
    }
}

/// The input as bytes, copied out of libFuzzer's buffer.
public func fuzzBytes(_ data: UnsafePointer<UInt8>?, _ size: Int) -> [UInt8] {
    guard let data, size > 0 else { return [] }
    return Array(UnsafeBufferPointer(start: data, count: size))
}

/// What a line framer hands on: the bytes before the first `"\n"`, at most
/// `limit` of them, as text when they are valid UTF-8 (the server answers
/// anything else `bad_request` before parsing, and the client drops it).
public func framedLine(_ bytes: [UInt8], limit: Int = 4096) -> String? {
    let end = bytes.firstIndex(of: UInt8(ascii: "\n")) ?? bytes.endIndex
    guard end <= limit else { return nil }
    return String(validating: bytes[..<end], as: UTF8.self)
}

/// Lower-case hex of `bytes`.
public func hex(_ bytes: some Sequence<UInt8>) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var text: [UInt8] = []
    for byte in bytes {
        text.append(digits[Int(byte >> 4)])
        text.append(digits[Int(byte & 0x0F)])
    }
    return String(decoding: text, as: UTF8.self)
}

/// Inputs that start with this line are "re-chained" by the journal targets:
/// the harness computes every line's `hash` itself, so that mutations reach
/// the field decoder and the ledger rules instead of stopping at the hash.
public let chainMarker = Array("#chain\n".utf8)

/// Hands the process to libFuzzer with `target` as the function it calls on
/// each input (the same function is exported as `LLVMFuzzerTestOneInput`, so
/// a target also links the usual way, with libFuzzer's own `main`).
public func runFuzzer(_ target: @escaping @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Never {
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    exit(LLVMFuzzerRunDriver(&argc, &argv, target))
}
