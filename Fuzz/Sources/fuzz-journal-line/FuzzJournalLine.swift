import CarteiraCore
import CarteiraJournal
import Crypto
import FuzzSupport

/// Fuzzes `JournalCodec.decode(_:previousHash:)` with one journal line.
///
/// Input forms:
/// - `#chain\n<text>`: the harness appends ` hash=<the right hash>` for the
///   zero previous hash, so mutations reach the field decoder;
/// - `<64 bytes>\n<line>`: the 64 bytes are the previous hash (which may be
///   malformed: decode must refuse it, not crash);
/// - anything else: a whole line, chained to the zero hash.
///
/// Properties: decode never accepts a line whose hash is not the SHA-256 of
/// the previous hash, a space and the text; an accepted line is canonical
/// (encoding its event gives back the very same bytes and hash); the same
/// line never chains to another previous hash.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJournalLine(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = fuzzBytes(data, size)
    var previous = JournalCodec.zeroHash
    var line: String
    if bytes.starts(with: chainMarker) {
        let text = String(decoding: bytes[chainMarker.count...], as: UTF8.self)
        line = text + " hash=" + chainHash(previous: previous, text: text)
    } else if bytes.count > 64, bytes[64] == UInt8(ascii: "\n") {
        previous = String(decoding: bytes[..<64], as: UTF8.self)
        line = String(decoding: bytes[65...], as: UTF8.self)
    } else {
        line = String(decoding: bytes, as: UTF8.self)
    }
    let decoded: (event: Event, hash: String)
    do {
        decoded = try JournalCodec.decode(line[...], previousHash: previous)
    } catch {
        fuzzCheck(!error.reason.isEmpty, "a refusal without a reason")
        return 0
    }
    // Bytes, not Characters: "\r\n" is one Character.
    let text = line.utf8.last == UInt8(ascii: "\n") ? String(decoding: line.utf8.dropLast(), as: UTF8.self) : line
    fuzzCheck(
        text.hasSuffix(" hash=" + decoded.hash), "decode returned hash \(decoded.hash) for \(text.debugDescription)")
    // The suffix just checked is ASCII, so the cut is between characters.
    let body = String(decoding: text.utf8.dropLast(70), as: UTF8.self)
    fuzzCheck(
        chainHash(previous: previous, text: body) == decoded.hash,
        "decode accepted a line whose hash does not chain: \(text.debugDescription)")
    let encoded = JournalCodec.encode(decoded.event, previousHash: previous)
    fuzzCheck(
        encoded.line.utf8.elementsEqual(text.utf8 + [UInt8(ascii: "\n")]) && encoded.hash == decoded.hash,
        "accepted \(text.debugDescription), which encodes back as \(encoded.line.debugDescription)")
    let other = previous == JournalCodec.zeroHash ? String(repeating: "f", count: 64) : JournalCodec.zeroHash
    fuzzCheck(
        (try? JournalCodec.decode(line[...], previousHash: other)) == nil, "the line chains to two previous hashes")
    return 0
}

/// The chain hash of JOURNAL.md, computed here independently of the codec.
func chainHash(previous: String, text: String) -> String {
    hex(SHA256.hash(data: Array((previous + " " + text).utf8)))
}
