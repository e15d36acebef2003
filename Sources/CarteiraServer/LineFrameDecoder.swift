public import NIOCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

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
///
/// The server's connection handler calls `nextFrame(in:)` straight on its
/// cumulation buffer; the `ByteToMessageDecoder` conformance serves clients
/// and tests, which feed it in every split.
public struct LineFrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = InboundFrame

    public let maximumLineBytes: Int
    private var overflowed = false
    /// Bytes already searched for `\n`, so a long partial line is not rescanned.
    private var scanned = 0

    public init(maximumLineBytes: Int) {
        self.maximumLineBytes = maximumLineBytes
    }

    /// The next frame in `buffer`, consuming its bytes; `nil` when `buffer`
    /// holds no complete line yet (or the stream overflowed before).
    public mutating func nextFrame(in buffer: inout ByteBuffer) -> InboundFrame? {
        guard !overflowed else {
            buffer.moveReaderIndex(to: buffer.writerIndex)
            return nil
        }
        let found = buffer.withUnsafeReadableBytes { bytes -> (newline: Int?, count: Int) in
            guard scanned < bytes.count, let base = bytes.baseAddress else { return (nil, bytes.count) }
            guard let hit = memchr(base + scanned, Int32(UInt8(ascii: "\n")), bytes.count - scanned) else {
                return (nil, bytes.count)
            }
            return (UnsafeRawPointer(hit) - base, bytes.count)
        }
        guard let length = found.newline else {
            scanned = found.count
            // One extra byte may be the `\r` of a `\r\n` ending.
            if found.count > maximumLineBytes + 1 { return overflow(&buffer) }
            return nil
        }
        scanned = 0
        var lineLength = length
        if lineLength > 0, buffer.getInteger(at: buffer.readerIndex + length - 1, as: UInt8.self) == UInt8(ascii: "\r")
        {
            lineLength -= 1
        }
        guard lineLength <= maximumLineBytes else { return overflow(&buffer) }
        // `readSlice` cannot fail: `length + 1` bytes are readable.
        guard let line = buffer.readSlice(length: length) else { return nil }
        buffer.moveReaderIndex(forwardBy: 1)
        return .line(line)
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = nextFrame(in: &buffer) else { return .needMoreData }
        context.fireChannelRead(Self.wrapInboundOut(frame))
        return frame == .tooLong ? .needMoreData : .continue
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

    private mutating func overflow(_ buffer: inout ByteBuffer) -> InboundFrame {
        overflowed = true
        buffer.moveReaderIndex(to: buffer.writerIndex)
        return .tooLong
    }
}
