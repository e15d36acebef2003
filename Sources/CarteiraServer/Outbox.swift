import CarteiraProtocol
import NIOCore

/// One line (or, for `HISTORY`, one multi-line answer) waiting to be written
/// to a connection.
public struct Outgoing: Sendable {
    public enum Kind: Sendable {
        /// The answer to a request. If the journal fails before it is
        /// durable, `ERR|unavailable` is written instead.
        case answer
        /// A push; dropped if the journal fails before it is durable.
        case push
        /// The last answer: the connection closes once it is written.
        case final
    }

    public var text: String
    public var kind: Kind
    /// Written only once the journal is durable through this `seq`: no answer
    /// and no push shows a change that is not yet on disk.
    public var durableThrough: Int64

    public init(text: String, kind: Kind, durableThrough: Int64) {
        self.text = text
        self.kind = kind
        self.durableThrough = durableThrough
    }
}

/// The bounded queue of what one connection still has to write, in order.
/// When it is full the client is too far behind and the connection closes.
struct Outbox: Sendable {
    let continuation: AsyncStream<Outgoing>.Continuation
    let channel: any Channel

    static func make(limit: Int, channel: any Channel) -> (AsyncStream<Outgoing>, Outbox) {
        let (stream, continuation) = AsyncStream<Outgoing>.makeStream(bufferingPolicy: .bufferingOldest(limit))
        return (stream, Outbox(continuation: continuation, channel: channel))
    }

    /// Queues `item`; false when the queue was full or already finished.
    /// A full queue means the client stopped reading: its connection is
    /// closed at once, since the writer may be stuck waiting for the socket.
    @discardableResult
    func send(_ item: Outgoing) -> Bool {
        switch continuation.yield(item) {
        case .enqueued:
            if item.kind == .final { continuation.finish() }
            return true
        case .terminated:
            return false
        case .dropped:
            continuation.finish()
            channel.close(promise: nil)
            return false
        @unknown default:
            continuation.finish()
            return false
        }
    }

    func finish() { continuation.finish() }
}

/// A connection's identity inside the ledger service.
public struct SessionID: Sendable, Hashable, Comparable {
    let value: Int
    public static func < (lhs: SessionID, rhs: SessionID) -> Bool { lhs.value < rhs.value }
}
