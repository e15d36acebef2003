import CarteiraCore
import NIOCore
import NIOEmbedded

/// A `SEND` a client made and may have to retry with the same line.
struct PendingSend {
    var key: String
    var cents: Int64
    var requestID: String?
    var line: String
    var tries = 0
}

/// What a client expects for one line it wrote, with the stable `seq` when
/// it wrote it (the state an answer shows can be no older).
struct Expectation {
    enum Kind {
        case register(String)
        case login(String)
        case whoami
        case balance
        case key
        case rotate
        case check(String)
        case send(PendingSend)
        case history(Int)
        case ping
        case quit
        /// A request that must be refused, with the codes that may refuse it
        /// (empty: any code).
        case refused(Set<String>)
    }

    var kind: Kind
    var stableSeq: Int64
}

/// One simulated connection: an `EmbeddedChannel` running the real
/// `ConnectionHandler` on an event loop of its own, so that the order in
/// which the harness runs loops is the only order there is.
final class SimConnection {
    let channel: EmbeddedChannel
    let loop: EmbeddedEventLoop
    var inbound: [UInt8] = []

    init(channel: EmbeddedChannel, loop: EmbeddedEventLoop) {
        self.channel = channel
        self.loop = loop
    }

    var isActive: Bool { channel.isActive }

    func write(_ text: String) { write(Array(text.utf8)) }

    func write(_ bytes: [UInt8]) {
        var buffer = channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        _ = try? channel.writeInbound(buffer)
    }

    /// Lines the server wrote since the last call.
    func drain() -> [String] {
        while let buffer = try? channel.readOutbound(as: ByteBuffer.self) {
            inbound += buffer.readableBytesView
        }
        var lines: [String] = []
        while let end = inbound.firstIndex(of: UInt8(ascii: "\n")) {
            lines.append(String(decoding: inbound[..<end], as: UTF8.self))
            inbound.removeSubrange(...end)
        }
        return lines
    }
}

/// A simulated peer: honest ones register or log in and move money,
/// hostile ones send what a scanner, a fuzzer or a broken client would.
final class SimClient {
    let index: Int
    let hostile: Bool
    var name: String?
    var token: String?
    var generation = 0
    var connection: SimConnection?
    var bound = false
    var expectations: [Expectation] = []
    /// `TX` lines still to come for the `HISTORY` answer being read.
    var historyLines = 0
    var pending: [PendingSend] = []
    var nextRequest = 0
    /// Wrote part of a line and not its end.
    var halfLine = false
    /// The client stopped reading (its channel is not writable).
    var stalled = false
    /// Settled request ids with their amount, to reuse with another amount.
    var settled: [(id: String, key: String, cents: Int64)] = []

    init(index: Int, hostile: Bool) {
        self.index = index
        self.hostile = hostile
    }

    var machineName: String { "peer\(index)-\(generation)" }

    func disconnected() {
        connection = nil
        bound = false
        expectations = []
        historyLines = 0
        halfLine = false
        stalled = false
        // Every send still unanswered is tried again on the next connection.
        for index in pending.indices { pending[index].tries = 0 }
    }
}

/// Money as a request amount: `12,34`.
func requestAmount(_ cents: Int64) -> String {
    let fraction = cents % 100
    return "\(cents / 100),\(fraction < 10 ? "0" : "")\(fraction)"
}

/// The `seq` a transfer id names (`T000000000042` → 42).
func seq(ofTx tx: String) -> Int64? {
    guard tx.first == "T" else { return nil }
    return Int64(tx.dropFirst())
}
