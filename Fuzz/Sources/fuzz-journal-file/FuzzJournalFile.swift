import CarteiraCore
import CarteiraJournal
import Crypto
import FuzzSupport
import Glibc

/// Fuzzes the whole-file scan behind `JournalVerifier.verify(directory:)`:
/// the input is written to `DIR/ledger.journal` in one temporary directory
/// (on /dev/shm when there is one), reused for every input.
///
/// Input forms: `#chain\n` then lines: the harness replaces or adds every
/// whole line's ` hash=` so that the chain holds and mutations reach `seq`,
/// the fields and the ledger rules; the bytes after the last `"\n"` are kept
/// as they are (a torn tail). Anything else is the file as it is.
///
/// Properties: the result is deterministic; a journal that verifies has one
/// event a line and ends on the last line's hash; a torn tail starts at a
/// line boundary and cutting it (what `journal repair` does) leaves a journal
/// that verifies; a corrupt line `N` is within the file and the `N - 1` lines
/// before it verify; no journal the scan accepts breaks a ledger invariant.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJournalFile(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    var bytes = fuzzBytes(data, size)
    if bytes.starts(with: chainMarker) { bytes = rechained(bytes[chainMarker.count...]) }
    let outcome = verify(bytes)
    fuzzCheck(verify(bytes) == outcome, "verify is not deterministic")
    let newlines = bytes.indices.filter { bytes[$0] == UInt8(ascii: "\n") }
    switch outcome {
    case let .verified(events, lastSeq, lastHash, totalMoney, balances):
        fuzzCheck(
            bytes.last == UInt8(ascii: "\n") || bytes.isEmpty, "verified a journal whose last line has no newline")
        fuzzCheck(events == newlines.count, "\(events) events in \(newlines.count) lines")
        fuzzCheck(lastSeq == Int64(events) - 1, "last seq \(lastSeq) after \(events) events")
        let expectedHash =
            bytes.isEmpty ? JournalCodec.zeroHash : String(decoding: bytes.dropLast().suffix(64), as: UTF8.self)
        fuzzCheck(lastHash == expectedHash, "last hash \(lastHash), last line ends in \(expectedHash)")
        fuzzCheck(balances.allSatisfy { $0 >= 0 }, "a negative balance")
        fuzzCheck(
            balances.reduce(0, +) == totalMoney,
            "balances add to \(balances.reduce(0, +)), total money is \(totalMoney)")
    case let .torn(offset):
        fuzzCheck(offset >= 0 && offset < bytes.count, "torn tail at \(offset) in \(bytes.count) bytes")
        fuzzCheck(offset == 0 || bytes[offset - 1] == UInt8(ascii: "\n"), "torn tail at \(offset), not a line start")
        let tail = bytes[offset...]
        let firstLine = tail.prefix { $0 != UInt8(ascii: "\n") }
        fuzzCheck(
            firstLine.contains(0) || firstLine.count == tail.count, "a whole NUL-free line at \(offset) was cut as torn"
        )
        let cut = verify(Array(bytes[..<offset]))
        fuzzCheck(cut.verifies, "after cutting the torn tail at \(offset): \(cut)")
    case let .corrupt(line, reason):
        fuzzCheck(
            !reason.hasPrefix("ledger invariant broken"), "replay built a ledger that breaks an invariant: \(reason)")
        fuzzCheck(line >= 1 && line <= newlines.count + 1, "corrupt line \(line) of \(newlines.count + 1)")
        let start = line == 1 ? 0 : newlines[line - 2] + 1
        let before = verify(Array(bytes[..<start]))
        fuzzCheck(before.verifies, "the \(line - 1) lines before corrupt line \(line) do not verify: \(before)")
    case let .other(description):
        fuzzCheck(false, "verify failed unexpectedly: \(description)")
    }
    return 0
}

enum Outcome: Equatable, CustomStringConvertible {
    case verified(events: Int, lastSeq: Int64, lastHash: String, totalMoney: Int64, balances: [Int64])
    case torn(offset: Int)
    case corrupt(line: Int, reason: String)
    case other(String)

    var verifies: Bool {
        if case .verified = self { return true }
        return false
    }

    var description: String {
        switch self {
        case let .verified(events, _, _, _, _): "verified, \(events) events"
        case let .torn(offset): "torn tail at \(offset)"
        case let .corrupt(line, reason): "line \(line): \(reason)"
        case let .other(text): text
        }
    }
}

/// The directory reused for every input; made once per process.
let directory: String = {
    let base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp"
    var template = Array("\(base)/carteira-fuzz-XXXXXX".utf8CString)
    guard let made = mkdtemp(&template) else { fatalError("mkdtemp failed: errno \(errno)") }
    let path = String(cString: made)
    atexit { /* the file and directory are left for a look after a crash */  }
    return path
}()

func verify(_ bytes: [UInt8]) -> Outcome {
    let path = directory + "/ledger.journal"
    let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard descriptor >= 0 else { fatalError("open \(path): errno \(errno)") }
    var written = 0
    while written < bytes.count {
        let count = bytes[written...].withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        guard count > 0 else { fatalError("write \(path): errno \(errno)") }
        written += count
    }
    close(descriptor)
    do {
        let summary = try JournalVerifier.verify(directory: directory)
        let balances = summary.ledger.machines.values.map(\.balance.value).sorted()
        return .verified(
            events: summary.events, lastSeq: summary.lastSeq, lastHash: summary.lastHash,
            totalMoney: summary.totalMoney.value, balances: balances)
    } catch {
        switch error {
        case let .tornTail(offset): return .torn(offset: Int(offset))
        case let .corrupt(line, reason): return .corrupt(line: line, reason: reason)
        default: return .other(error.description)
        }
    }
}

/// Every whole line gets the hash that chains it to the line before: an
/// existing ` hash=...` ending is replaced, a line without one gets one.
func rechained(_ input: ArraySlice<UInt8>) -> [UInt8] {
    var output: [UInt8] = []
    var previous = Array(JournalCodec.zeroHash.utf8)
    var rest = input[...]
    while let newline = rest.firstIndex(of: UInt8(ascii: "\n")) {
        var text = Array(rest[..<newline])
        if let marker = lastRange(of: Array(" hash=".utf8), in: text) { text.removeSubrange(marker...) }
        var hasher = SHA256()
        hasher.update(data: previous)
        hasher.update(data: [UInt8(ascii: " ")])
        hasher.update(data: text)
        let hash = Array(hex(hasher.finalize()).utf8)
        output += text + Array(" hash=".utf8) + hash + [UInt8(ascii: "\n")]
        previous = hash
        rest = rest[(newline + 1)...]
    }
    return output + rest
}

func lastRange(of needle: [UInt8], in haystack: [UInt8]) -> Int? {
    guard haystack.count >= needle.count else { return nil }
    for start in stride(from: haystack.count - needle.count, through: 0, by: -1)
    where haystack[start..<(start + needle.count)].elementsEqual(needle) {
        return start
    }
    return nil
}
