#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
public import CarteiraCore

/// Turns a moment into the text a person reads in the console.
public typealias TimeFormatter = @Sendable (Timestamp) -> String

/// The console's ways to show a moment as `YYYY-MM-DD HH:MM:SS`.
public enum ConsoleTime {
    /// In the server's local time zone (`localtime_r`, so `TZ` applies).
    public static let local: TimeFormatter = { timestamp in
        var seconds = time_t(floorDiv(timestamp.milliseconds, 1000))
        var parts = tm()
        guard localtime_r(&seconds, &parts) != nil else { return utc(timestamp) }
        return dateTime(
            year: Int64(parts.tm_year) + 1900, month: Int64(parts.tm_mon) + 1, day: Int64(parts.tm_mday),
            hour: Int64(parts.tm_hour), minute: Int64(parts.tm_min), second: Int64(parts.tm_sec))
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
    return "\(paddedYear)-\(twoDigits(month))-\(twoDigits(day)) \(twoDigits(hour)):\(twoDigits(minute)):\(twoDigits(second))"
}
