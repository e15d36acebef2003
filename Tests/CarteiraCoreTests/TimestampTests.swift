import CarteiraTestSupport
import CarteiraCore
import Testing

@Suite("Timestamp")
struct TimestampTests {
    @Test(
        "known moments format as ISO 8601 UTC with milliseconds and parse back",
        arguments: [
            (0, "1970-01-01T00:00:00.000Z"), (1, "1970-01-01T00:00:00.001Z"), (-1, "1969-12-31T23:59:59.999Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"), (1_709_210_096_789, "2024-02-29T12:34:56.789Z"),
            (1_767_225_599_999, "2025-12-31T23:59:59.999Z"), (1_767_225_600_000, "2026-01-01T00:00:00.000Z"),
            (-2_203_891_200_000, "1900-03-01T00:00:00.000Z"), (-11_670_998_400_000, "1600-02-29T00:00:00.000Z"),
            (-62_135_596_800_000, "0001-01-01T00:00:00.000Z"), (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
            (1_795_000_000_000, "2026-11-18T11:06:40.000Z"),
        ] as [(Int64, String)])
    func knownMoments(milliseconds: Int64, text: String) {
        let timestamp = Timestamp(milliseconds: milliseconds)
        #expect(timestamp.iso8601 == text)
        #expect(timestamp.description == text)
        #expect(Timestamp(iso8601: text) == timestamp)
        #expect(Timestamp(iso8601: Substring(text)) == timestamp)
    }

    @Test("every moment from year 1 to 9999 survives a round trip through its text")
    func roundTripSweep() throws {
        var random = SplitMix64(seed: 19)
        let low: Int64 = -62_135_596_800_000
        let high: Int64 = 253_402_300_799_999
        for _ in 0..<20_000 {
            let milliseconds = low + Int64(random.next() % UInt64(high - low + 1))
            let text = Timestamp(milliseconds: milliseconds).iso8601
            #expect(Timestamp(iso8601: text)?.milliseconds == milliseconds, "\(milliseconds) → \(text)")
        }
        // Every millisecond around midnight, New Year and a leap day.
        for centre: Int64 in [0, 1_767_225_600_000, 951_782_400_000, 951_868_800_000] {
            for milliseconds in (centre - 1_500)...(centre + 1_500) {
                let text = Timestamp(milliseconds: milliseconds).iso8601
                try #require(Timestamp(iso8601: text)?.milliseconds == milliseconds, "\(milliseconds) → \(text)")
            }
        }
    }

    @Test(
        "text that is not exactly the journal's ISO 8601 form is refused",
        arguments: [
            "", "1970-01-01T00:00:00Z", "1970-01-01T00:00:00.00Z", "1970-01-01T00:00:00.0000Z",
            "1970-01-01 00:00:00.000Z", "1970-01-01T00:00:00.000z", "1970-01-01T00:00:00.000+00:00",
            "1970-01-01T00:00:00.000", "1970-13-01T00:00:00.000Z", "1970-00-01T00:00:00.000Z",
            "1970-01-00T00:00:00.000Z", "1970-01-32T00:00:00.000Z", "2023-02-29T00:00:00.000Z",
            "1900-02-29T00:00:00.000Z", "2100-02-29T00:00:00.000Z", "2024-04-31T00:00:00.000Z",
            "1970-01-01T24:00:00.000Z", "1970-01-01T00:60:00.000Z", "1970-01-01T00:00:60.000Z",
            "197a-01-01T00:00:00.000Z", "1970/01/01T00:00:00.000Z", "-970-01-01T00:00:00.000Z",
            "+970-01-01T00:00:00.000Z", "1970-01-01T00:00:00.-00Z", " 1970-01-01T00:00:00.000Z",
            "\u{0661}970-01-01T00:00:00.000Z", "1970-01-01T00:00:00.000Z\n",
        ])
    func malformed(text: String) {
        #expect(Timestamp(iso8601: text) == nil)
    }

    @Test("adding seconds and milliseconds moves the moment and keeps the order")
    func arithmetic() {
        let start = Timestamp(milliseconds: 1_000)
        #expect(start.adding(seconds: 180) == Timestamp(milliseconds: 181_000))
        #expect(start.adding(milliseconds: -1_001) == Timestamp(milliseconds: -1))
        #expect(start < start.adding(milliseconds: 1))
    }
}
