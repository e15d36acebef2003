import CarteiraTerminal
import CarteiraCore
import Foundation

/// A JSON value, written with its keys in the order given.
enum JSON {
    case string(String)
    case int(Int64)
    case bool(Bool)
    case array([JSON])
    case object(KeyValuePairs<String, JSON>)
    case fields([(String, JSON)])

    var encoded: String {
        switch self {
        case let .string(text): return jsonQuoted(text)
        case let .int(value): return String(value)
        case let .bool(value): return value ? "true" : "false"
        case let .array(items): return "[" + items.map(\.encoded).joined(separator: ",") + "]"
        case let .object(pairs): return JSON.fields(pairs.map { ($0.key, $0.value) }).encoded
        case let .fields(pairs):
            return "{" + pairs.map { jsonQuoted($0.0) + ":" + $0.1.encoded }.joined(separator: ",") + "}"
        }
    }
}

/// Prints results as text or as one JSON object a line.
struct Output {
    var json: Bool

    func emit(text: @autoclosure () -> String, json object: @autoclosure () -> JSON) {
        print(json ? object().encoded : text())
        fflush(nil)
    }

    /// A failure on standard error: `carteira: message (code)`, or
    /// `{"error":..,"message":..}` (with `"hint"` when there is one).
    func fail(code: String, message: String, hint: String? = nil) {
        var fields: [(String, JSON)] = [("error", .string(code)), ("message", .string(message))]
        if let hint { fields.append(("hint", .string(hint))) }
        let line = json ? JSON.fields(fields).encoded : "carteira: \(message) (\(code))"
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    /// A note for people on standard error (one JSON object with `--json`).
    func note(text: String, json object: JSON) {
        FileHandle.standardError.write(Data(((json ? object.encoded : text) + "\n").utf8))
    }
}

/// Milliseconds since the Unix epoch, now.
func nowMilliseconds() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

/// `2m 41s` until `expires` (or `now` when it has passed).
func timeLeft(until expires: Timestamp, now: Int64 = nowMilliseconds()) -> String {
    let seconds = max(0, (expires.milliseconds - now + 999) / 1000)
    if seconds == 0 { return "now" }
    return seconds >= 60 ? "\(seconds / 60)m \(seconds % 60)s" : "\(seconds)s"
}
