/// An amount of money in integer centavos: R$ 100,00 is `Centavos(10000)`.
///
/// Money never passes through floating point. Sums that could overflow are
/// checked (`adding(_:)`) and the caller decides what an overflow means.
public struct Centavos: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var value: Int64

    public init(_ value: Int64) {
        self.value = value
    }

    public static let zero = Centavos(0)

    public static func < (lhs: Centavos, rhs: Centavos) -> Bool {
        lhs.value < rhs.value
    }

    /// `nil` when the sum does not fit in `Int64`.
    public func adding(_ other: Centavos) -> Centavos? {
        let (sum, overflow) = value.addingReportingOverflow(other.value)
        return overflow ? nil : Centavos(sum)
    }

    /// `nil` when the difference does not fit in `Int64`.
    public func subtracting(_ other: Centavos) -> Centavos? {
        let (difference, overflow) = value.subtractingReportingOverflow(other.value)
        return overflow ? nil : Centavos(difference)
    }

    /// Brazilian notation: `R$ 1.234,56`, `-R$ 0,50`.
    public var brl: String {
        let magnitude = value.magnitude
        let reais = magnitude / 100
        let cents = magnitude % 100
        var digits = String(reais)
        var grouped = ""
        while digits.count > 3 {
            grouped = "." + digits.suffix(3) + grouped
            digits.removeLast(3)
        }
        grouped = digits + grouped
        let centsText = cents < 10 ? "0\(cents)" : "\(cents)"
        return (value < 0 ? "-" : "") + "R$ \(grouped),\(centsText)"
    }

    public var description: String { brl }

    /// Parses a request amount: 1-12 digits, then optionally `,` or `.` and
    /// 1-2 digits (`50`, `50,5`, `50,25`, `50.25`). Zero and anything else is
    /// `nil`. Twelve digits of reais always fit, so there is no overflow.
    public init?(amount text: some StringProtocol) {
        guard let value = Self.amountValue(text.utf8) else { return nil }
        self.value = value
    }

    /// `init(amount:)` of text given as its UTF-8 bytes: the same rules.
    @inlinable
    public init?(amountUTF8 bytes: UnsafeRawBufferPointer) {
        guard let value = Self.amountValue(bytes) else { return nil }
        self.value = value
    }

    /// The one reading of an amount, over its bytes.
    @inlinable
    static func amountValue(_ bytes: some Sequence<UInt8>) -> Int64? {
        var reais: Int64 = 0
        var cents: Int64 = 0
        var integerDigits = 0
        var fractionDigits = 0
        var seenSeparator = false
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                let digit = Int64(byte - UInt8(ascii: "0"))
                if seenSeparator {
                    fractionDigits += 1
                    guard fractionDigits <= 2 else { return nil }
                    cents = cents * 10 + digit
                } else {
                    integerDigits += 1
                    guard integerDigits <= 12 else { return nil }
                    reais = reais * 10 + digit
                }
            case UInt8(ascii: ","), UInt8(ascii: "."):
                guard !seenSeparator, integerDigits > 0 else { return nil }
                seenSeparator = true
            default:
                return nil
            }
        }
        guard integerDigits > 0, !seenSeparator || fractionDigits > 0 else { return nil }
        if fractionDigits == 1 { cents *= 10 }
        let total = reais * 100 + cents
        return total > 0 ? total : nil
    }
}
