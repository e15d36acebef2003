import CarteiraCore
import Testing

@Suite("Centavos")
struct MoneyTests {
    @Test(
        "request amounts in reais parse to centavos",
        arguments: [
            ("50", 5_000), ("50,5", 5_050), ("50,25", 5_025), ("50.25", 5_025), ("50.5", 5_050), ("0,01", 1),
            ("0.1", 10),
            ("1", 100), ("10,00", 1_000), ("000000000001", 100), ("999999999999", 99_999_999_999_900),
            ("999999999999,99", 99_999_999_999_999),
        ] as [(String, Int64)])
    func validAmounts(text: String, centavos: Int64) {
        #expect(Centavos(amount: text) == Centavos(centavos))
        #expect(Array(text.utf8).withUnsafeBytes { Centavos(amountUTF8: $0) } == Centavos(centavos))
    }

    @Test(
        "anything not 1-12 digits with an optional 1-2 digit fraction, or zero, is not an amount",
        arguments: [
            "0", "0,00", "0.0", "00", "-1", "+1", "1,234", "1,", "1.", ",5", ".5", "abc", "1234567890123",
            "1234567890123,00", "1e3", " 1", "1 ", "1 ,00", "1,,0", "1,0,0", "1.0.0", "1_000", "", ",", "\u{0661}",
            "\u{FF11}", "1\u{0301}", "5\u{0663}", "1,5\u{FF10}",
        ])
    func invalidAmounts(text: String) {
        #expect(Centavos(amount: text) == nil)
        #expect(Array(text.utf8).withUnsafeBytes { Centavos(amountUTF8: $0) } == nil)
    }

    @Test(
        "money formats in Brazilian notation",
        arguments: [
            (0, "R$ 0,00"), (5, "R$ 0,05"), (50, "R$ 0,50"), (100, "R$ 1,00"), (99_999, "R$ 999,99"),
            (100_000, "R$ 1.000,00"), (123_456, "R$ 1.234,56"), (100_000_000, "R$ 1.000.000,00"), (-50, "-R$ 0,50"),
            (-123_456, "-R$ 1.234,56"), (Int64.max, "R$ 92.233.720.368.547.758,07"),
            (Int64.min, "-R$ 92.233.720.368.547.758,08"),
        ] as [(Int64, String)])
    func brl(centavos: Int64, text: String) {
        #expect(Centavos(centavos).brl == text)
        #expect(Centavos(centavos).description == text)
    }

    @Test("sums and differences report overflow as nil instead of trapping")
    func overflowChecked() {
        #expect(Centavos(1).adding(Centavos(2)) == Centavos(3))
        #expect(Centavos(Int64.max).adding(Centavos(1)) == nil)
        #expect(Centavos(Int64.min).adding(Centavos(-1)) == nil)
        #expect(Centavos(Int64.max).adding(Centavos(Int64.min)) == Centavos(-1))
        #expect(Centavos(5).subtracting(Centavos(7)) == Centavos(-2))
        #expect(Centavos(Int64.min).subtracting(Centavos(1)) == nil)
        #expect(Centavos(Int64.max).subtracting(Centavos(-1)) == nil)
    }

    @Test("centavos order by value")
    func ordering() {
        #expect(Centavos(-1) < .zero)
        #expect(Centavos(99) < Centavos(100))
        #expect(!(Centavos(100) < Centavos(100)))
    }
}
