import CarteiraClient
import CarteiraCore
import CarteiraTestSupport
import Testing

/// Published BR Code payloads, each with where it was published. The CRC of
/// each was checked independently (a few lines of Python) before use.
enum PublishedCodes {
    /// The static example of the Banco Central do Brasil's "Manual de Padrões
    /// para Iniciação do Pix" (random key, no amount, no reference), also the
    /// expected value in many open implementations' tests.
    static let bcbStatic =
        "00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-4266554400005204000053039865802BR5913Fulano de Tal6008BRASILIA62070503***63041D3D"
    /// The dynamic example of the BR Code manual (a URL in 26/25, amount
    /// 123.45, reference RP12345678-2019), as quoted in the README of the
    /// open-source npm package `pixcode`.
    static let bcbDynamic =
        "00020101021226720014br.gov.bcb.pix2550bx.com.br/pix/8b3da2f3-9a41-40d1-a91a-bd93113bd4415204000053039865406123.455802BR5913Fulano de Tal6008BRASILIA62190515RP12345678-2019630445C8"
    /// A static code with an amount (1.00) and an upper-case GUI, from an
    /// open implementation's test suite that reproduces the manual's example
    /// with a value.
    static let upperCaseGUIWithAmount =
        "00020126580014BR.GOV.BCB.PIX0136123e4567-e12b-12d1-a456-42665544000052040000530398654041.005802BR5913Fulano de Tal6008BRASILIA62070503***630451B8"
    /// The manual's key with a description (26/02 `Teste`), amount 5.00 and
    /// reference `123`: the expected payload of an open implementation's test
    /// of its generator.
    static let withDescription =
        "00020126670014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-4266554400000205Teste52040000530398654045.005802BR5913Fulano de Tal6008BRASILIA6207050312363040E95"
    /// A code quoted in the repository doisrsis/agendapro
    /// (docs/ANALISE_CHAVE_PIX_TRACOS.md) as one a bank app rejected: its CRC
    /// matches, but `0101` after the format gives field 01 one character, so
    /// its fields do not nest (field 26 is never reached).
    static let crcRightFieldsWrong =
        "0002010101021226630014BR.GOV.BCB.PIX0132420ab7c44d6346d4809ecd3eebc129ec0205BARBA52040000530398654041.005802BR5922RAFAEL DE ANDRADE DIAS6004LAJE62160512AG000000023863047C58"
}

@Suite("BR Code (Pix Copia e Cola) payment requests")
struct BRCodeTests {
    @Test(
        "CRC16-CCITT (poly 0x1021, init 0xFFFF) gives the catalogued check value 0x29B1 for 123456789, and 0xFFFF for nothing"
    )
    func crcVectors() {
        // The check value of CRC-16/CCITT-FALSE in Greg Cook's CRC catalogue.
        #expect(crc16CCITT(Array("123456789".utf8)) == 0x29B1)
        #expect(crc16CCITT([UInt8]()) == 0xFFFF)
        // Each published code's last four characters are the CRC of all before them.
        for code in [
            PublishedCodes.bcbStatic, PublishedCodes.bcbDynamic, PublishedCodes.upperCaseGUIWithAmount,
            PublishedCodes.withDescription, PublishedCodes.crcRightFieldsWrong,
        ] {
            #expect(crc16CCITT(Array(code.dropLast(4).utf8)) == UInt16(code.suffix(4), radix: 16), "\(code)")
        }
    }

    @Test("the encoder reproduces the BCB manual's static example byte for byte")
    func encoderMatchesManual() {
        let request = PaymentRequest(
            keyText: "123e4567-e12b-12d1-a456-426655440000", name: "Fulano de Tal", city: "BRASILIA", amount: nil,
            reference: PaymentRequest.noReference)
        #expect(request.payload == PublishedCodes.bcbStatic)
    }

    @Test("published codes decode to their key, name, city, amount and reference")
    func decodesPublishedCodes() throws {
        let manual = try PaymentRequest.decode(PublishedCodes.bcbStatic)
        #expect(
            manual
                == PaymentRequest(
                    keyText: "123e4567-e12b-12d1-a456-426655440000", name: "Fulano de Tal", city: "BRASILIA",
                    amount: nil, reference: "***"))
        let withAmount = try PaymentRequest.decode(PublishedCodes.upperCaseGUIWithAmount)
        #expect(withAmount.amount == Centavos(100))
        #expect(withAmount.keyText == "123e4567-e12b-12d1-a456-426655440000")
        let described = try PaymentRequest.decode(PublishedCodes.withDescription)
        #expect(
            described
                == PaymentRequest(
                    keyText: "123e4567-e12b-12d1-a456-426655440000", name: "Fulano de Tal", city: "BRASILIA",
                    amount: Centavos(500),
                    reference: "123"))
        // A dynamic code points at a bank's server instead of carrying a key.
        #expect(throws: BRCodeError.dynamic) { try PaymentRequest.decode(PublishedCodes.bcbDynamic) }
    }

    @Test("a Carteira request round-trips: key, machine, amount, reference and city come back as written")
    func roundTrip() throws {
        var random = SplitMix64(seed: 7)
        for _ in 0..<200 {
            let key = PaymentKey(randomBytes: (0..<16).map { _ in UInt8(truncatingIfNeeded: random.next()) })
            let machine = try #require(MachineName("m" + String(random.next() % 1_000_000)))
            let amount = Centavos(Int64(random.next() % 99_999_999_999) + 1)
            let reference = "R" + String(random.next() % 1_000_000_000)
            let request = PaymentRequest(
                key: key, machine: machine, amount: amount, reference: reference, city: "São Paulo")
            let decoded = try PaymentRequest.decode(request.payload)
            #expect(decoded == request)
            #expect(decoded.city == "SAO PAULO")
            #expect(PaymentKey(decoded.keyText) == key)
            #expect(request.payload.hasPrefix("000201"))
            #expect(request.payload.contains("5303986"))
            #expect(request.payload.contains("5802BR"))
        }
    }

    @Test("a long machine name and city are cut to the layout's 25 and 15 characters")
    func limits() throws {
        let machine = try #require(MachineName(String(repeating: "a", count: 64)))
        let key = PaymentKey(randomBytes: Array(repeating: 1, count: 16))
        let request = PaymentRequest(
            key: key, machine: machine, amount: Centavos(5000), reference: "X", city: "Santa Rita do Passa Quatro")
        #expect(request.name.count == 25)
        #expect(request.city == "SANTA RITA DO P")
        #expect(try PaymentRequest.decode(request.payload).name.count == 25)
        #expect(request.payload.contains("540550.00"))
    }

    @Test("a changed character, a cut code, a foreign currency or a non-Pix code is refused with its reason")
    func refusals() throws {
        let key = PaymentKey(randomBytes: Array(repeating: 7, count: 16))
        let payload = PaymentRequest(
            key: key, machine: try #require(MachineName("bob")), amount: Centavos(5000), reference: "REF1"
        ).payload
        // One digit of the amount changed: the CRC no longer matches.
        let tampered = payload.replacingOccurrences(of: "540550.00", with: "540590.00")
        #expect {
            try PaymentRequest.decode(tampered)
        } throws: { error in
            guard case .badCRC = error as? BRCodeError else { return false }
            return true
        }
        #expect(throws: BRCodeError.notBRCode) { try PaymentRequest.decode("hello") }
        #expect(throws: BRCodeError.malformed("a field's id and length are not digits")) {
            try PaymentRequest.decode(PublishedCodes.crcRightFieldsWrong)
        }
        #expect(throws: (any Error).self) { try PaymentRequest.decode(String(payload.dropLast(10))) }
        // Surrounding spaces and a line break from a paste are fine.
        #expect(try PaymentRequest.decode("  " + payload + "\n").reference == "REF1")
        #expect(PaymentRequest.isValidReference("REF1"))
        for bad in ["", "a-b", String(repeating: "a", count: 26), "***"] {
            #expect(!PaymentRequest.isValidReference(bad), "\(bad)")
        }
    }
}
