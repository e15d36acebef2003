import CarteiraServer
import NIOCore
import NIOEmbedded
import NIOTestUtils
import Testing

@Suite("Line framing")
struct LineFrameDecoderTests {
    @Test("Lines come out whole however the bytes are split; \\r\\n endings keep the \\r for the parser")
    func everySplit() throws {
        let input = ByteBuffer(string: "PING\nSEND|k|1\r\n\nBALANCE\n")
        let expected: [(ByteBuffer, [InboundFrame])] = [
            (
                input,
                [
                    .line(ByteBuffer(string: "PING")), .line(ByteBuffer(string: "SEND|k|1\r")),
                    .line(ByteBuffer(string: "")), .line(ByteBuffer(string: "BALANCE")),
                ]
            )
        ]
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: expected) {
            LineFrameDecoder(maximumLineBytes: 16)
        }
    }

    @Test(
        "A line of exactly the limit passes, with or without \\r; one byte more is too long, once, and the rest is dropped"
    )
    func limits() throws {
        let exact = String(repeating: "a", count: 8)
        try ByteToMessageDecoderVerifier.verifyDecoder(
            inputOutputPairs: [
                (
                    ByteBuffer(string: exact + "\n" + exact + "\r\n"),
                    [.line(ByteBuffer(string: exact)), .line(ByteBuffer(string: exact + "\r"))]
                )
            ]
        ) { LineFrameDecoder(maximumLineBytes: 8) }

        let channel = EmbeddedChannel(handler: ByteToMessageHandler(LineFrameDecoder(maximumLineBytes: 8)))
        try channel.writeInbound(ByteBuffer(string: "PING\n" + String(repeating: "b", count: 9) + "\nPING\n"))
        #expect(try channel.readInbound(as: InboundFrame.self) == .line(ByteBuffer(string: "PING")))
        #expect(try channel.readInbound(as: InboundFrame.self) == .tooLong)
        #expect(try channel.readInbound(as: InboundFrame.self) == nil)
        // A long line with no newline yet is refused as soon as it passes the limit.
        let streaming = EmbeddedChannel(handler: ByteToMessageHandler(LineFrameDecoder(maximumLineBytes: 8)))
        try streaming.writeInbound(ByteBuffer(string: String(repeating: "c", count: 10)))
        #expect(try streaming.readInbound(as: InboundFrame.self) == .tooLong)
        try streaming.writeInbound(ByteBuffer(string: "more\n"))
        #expect(try streaming.readInbound(as: InboundFrame.self) == nil)
        _ = try channel.finish()
        _ = try streaming.finish()
    }

    @Test("A final line without \\n at the end of input is dropped")
    func partialAtEnd() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(LineFrameDecoder(maximumLineBytes: 64)))
        try channel.writeInbound(ByteBuffer(string: "PING\nPIN"))
        #expect(try channel.readInbound(as: InboundFrame.self) == .line(ByteBuffer(string: "PING")))
        _ = try channel.finish()
        #expect(try channel.readInbound(as: InboundFrame.self) == nil)
    }
}
