public import NIOCore

/// What the framing layer hands to a session.
public enum InboundFrame: Sendable, Equatable {
    /// One line, without its `\n` (a `\r` before it is kept; the parser drops it).
    case line(ByteBuffer)
    /// A line longer than the limit: the session answers `line_too_long` and closes.
    case tooLong
}

/// Cuts the byte stream into lines of at most `maximumLineBytes` bytes
/// (without the ending). A longer line is reported once as `.tooLong` and
/// everything after it is discarded: the connection is about to close.
public struct LineFrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = InboundFrame

    public let maximumLineBytes: Int
    private var overflowed = false
    /// Bytes already searched for `\n`, so a long partial line is not rescanned.
    private var scanned = 0

    public init(maximumLineBytes: Int) {
        self.maximumLineBytes = maximumLineBytes
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard !overflowed else {
            buffer.moveReaderIndex(to: buffer.writerIndex)
            return .needMoreData
        }
        let view = buffer.readableBytesView
        guard let newline = view.dropFirst(scanned).firstIndex(of: UInt8(ascii: "\n")) else {
            scanned = view.count
            // One extra byte may be the `\r` of a `\r\n` ending.
            if view.count > maximumLineBytes + 1 { overflow(context: context, buffer: &buffer) }
            return .needMoreData
        }
        scanned = 0
        let length = newline - view.startIndex
        var lineLength = length
        if lineLength > 0, view[newline - 1] == UInt8(ascii: "\r") { lineLength -= 1 }
        guard lineLength <= maximumLineBytes else {
            overflow(context: context, buffer: &buffer)
            return .needMoreData
        }
        // `readSlice` cannot fail: `length + 1` bytes are readable.
        guard let line = buffer.readSlice(length: length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 1)
        context.fireChannelRead(Self.wrapInboundOut(.line(line)))
        return .continue
    }

    public mutating func decodeLast(
        context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool
    ) throws -> DecodingState {
        // Complete lines still count; a final partial line (no `\n`) is not a
        // message and is dropped.
        while try decode(context: context, buffer: &buffer) == .continue {}
        buffer.moveReaderIndex(to: buffer.writerIndex)
        return .needMoreData
    }

    private mutating func overflow(context: ChannelHandlerContext, buffer: inout ByteBuffer) {
        overflowed = true
        buffer.moveReaderIndex(to: buffer.writerIndex)
        context.fireChannelRead(Self.wrapInboundOut(.tooLong))
    }
}
