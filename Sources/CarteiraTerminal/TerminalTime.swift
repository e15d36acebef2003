#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
public import CarteiraCore

/// Turns a moment into the text a person reads on a terminal.
public typealias TimeFormatter = @Sendable (Timestamp) -> String

/// How people see and type moments, in the console, the journal tools and
/// the peer client alike: shown as `YYYY-MM-DD HH:MM:SS`, typed as
/// `TerminalTime.inputForms` says.
public enum TerminalTime {
    /// In the local time zone (`localtime_r`, so `TZ` applies).
    public static let local: TimeFormatter = { timestamp in
        var seconds = time_t(floorDiv(timestamp.milliseconds, 1000))
        var parts = tm()
        guard localtime_r(&seconds, &parts) != nil else { return utc(timestamp) }
        return dateTime(
            year: Int64(parts.tm_year) + 1900, month: Int64(parts.tm_mon) + 1, day: Int64(parts.tm_mday),
            hour: Int64(parts.tm_hour), minute: Int64(parts.tm_min), second: Int64(parts.tm_sec))
    }

    /// Local time followed by its zone (`2026-11-26 16:22:09 -03`), where a
    /// line stands alone and the zone is not obvious.
    public static func localWithZone(_ timestamp: Timestamp) -> String {
        var seconds = time_t(floorDiv(timestamp.milliseconds, 1000))
        var parts = tm()
        guard localtime_r(&seconds, &parts) != nil else { return utc(timestamp) + " UTC" }
        var buffer = [CChar](repeating: 0, count: 16)
        let count = strftime(&buffer, buffer.count, "%Z", &parts)
        let zone = String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return local(timestamp) + (zone.isEmpty ? "" : " " + zone)
    }

    /// In UTC: the same every where, for tests and scripts.
    public static let utc: TimeFormatter = { timestamp in
        // iso8601 is `YYYY-MM-DDTHH:MM:SS.mmmZ`; keep the first 19 characters.
        var text = String(timestamp.iso8601.prefix(19))
        if let separator = text.firstIndex(of: "T") { text.replaceSubrange(separator...separator, with: " ") }
        return text
    }

    /// `3725` → `1h 02m 05s`; days when there are any.
    public static func duration(seconds: Int64) -> String {
        let total = max(0, seconds)
        let days = total / 86_400
        let hours = total / 3600 % 24
        let minutes = total / 60 % 60
        let rest = total % 60
        let clock = "\(hours)h \(twoDigits(minutes))m \(twoDigits(rest))s"
        return days > 0 ? "\(days)d \(clock)" : clock
    }
}

private func floorDiv(_ value: Int64, _ divisor: Int64) -> Int64 {
    let quotient = value / divisor
    return value % divisor < 0 ? quotient - 1 : quotient
}

private func twoDigits(_ value: Int64) -> String {
    value < 10 ? "0\(value)" : "\(value)"
}

private func dateTime(year: Int64, month: Int64, day: Int64, hour: Int64, minute: Int64, second: Int64) -> String {
    let yearText = String(year)
    let paddedYear = String(repeating: "0", count: max(0, 4 - yearText.count)) + yearText
    return
        "\(paddedYear)-\(twoDigits(month))-\(twoDigits(day)) \(twoDigits(hour)):\(twoDigits(minute)):\(twoDigits(second))"
}

extension TerminalTime {
    /// What a time option takes, for messages.
    public static let inputForms = "YYYY-MM-DD[ HH:MM[:SS]] (local) or ISO 8601 like 2026-11-26T19:22:09Z"

    /// Reads a moment typed by a person: `YYYY-MM-DD`, optionally followed
    /// by ` ` or `T` and `HH:MM`, `HH:MM:SS` or `HH:MM:SS.mmm`, optionally
    /// followed by `Z` or `±HH:MM` (ISO 8601). Without a zone it is local
    /// time (`TZ` applies). Nil for anything else.
    public static func parse(_ text: some StringProtocol) -> Timestamp? {
        let bytes = Array(text.utf8)
        var index = 0
        func number(_ digits: Int) -> Int64? {
            guard index + digits <= bytes.count else { return nil }
            var value: Int64 = 0
            for byte in bytes[index..<(index + digits)] {
                guard (48...57).contains(byte) else { return nil }
                value = value * 10 + Int64(byte - 48)
            }
            index += digits
            return value
        }
        func take(_ character: UInt8) -> Bool {
            guard index < bytes.count, bytes[index] == character else { return false }
            index += 1
            return true
        }
        guard let year = number(4), take(45), let month = number(2), take(45), let day = number(2) else { return nil }
        var hour: Int64 = 0
        var minute: Int64 = 0
        var second: Int64 = 0
        var millisecond: Int64 = 0
        if take(32) || take(84) {
            guard let h = number(2), take(58), let m = number(2) else { return nil }
            hour = h
            minute = m
            if take(58) {
                guard let s = number(2) else { return nil }
                second = s
                if take(46) {
                    guard let ms = number(3) else { return nil }
                    millisecond = ms
                }
            }
        }
        var offsetMinutes: Int64?
        if take(90) {
            offsetMinutes = 0
        } else if index < bytes.count, bytes[index] == 43 || bytes[index] == 45 {
            let sign: Int64 = bytes[index] == 45 ? -1 : 1
            index += 1
            guard let h = number(2), take(58), let m = number(2), h < 24, m < 60 else { return nil }
            offsetMinutes = sign * (h * 60 + m)
        }
        guard index == bytes.count, (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60,
            second < 60
        else { return nil }
        // Checked against the calendar by a round trip through UTC.
        let utcText =
            "\(pad4(year))-\(twoDigits(month))-\(twoDigits(day))T\(twoDigits(hour)):\(twoDigits(minute)):"
            + "\(twoDigits(second)).\(pad3(millisecond))Z"
        guard let utc = Timestamp(iso8601: utcText) else { return nil }
        if let offsetMinutes { return utc.adding(seconds: -offsetMinutes * 60) }
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour)
        parts.tm_min = Int32(minute)
        parts.tm_sec = Int32(second)
        parts.tm_isdst = -1
        let seconds = mktime(&parts)
        guard seconds != -1 || (year == 1969 || year == 1970) else { return nil }
        return Timestamp(milliseconds: Int64(seconds) * 1000 + millisecond)
    }
}

private func pad4(_ value: Int64) -> String {
    let text = String(value)
    return String(repeating: "0", count: max(0, 4 - text.count)) + text
}

private func pad3(_ value: Int64) -> String {
    let text = String(value)
    return String(repeating: "0", count: max(0, 3 - text.count)) + text
}
