#if Postgres
    import CarteiraCore
    import CarteiraServer
    import NIOCore
    import NIOPosix

    /// What a standby serves on the server's address: `PING` answers
    /// `OK|PONG`, `QUIT` `OK|BYE`, and every other request
    /// `ERR|unavailable|standby; leader at HOST:PORT`, so a client knows to
    /// move on and where to. Nothing of the ledger is read here.
    final class StandbyListener: Sendable {
        /// The open standby connections, closed at a promotion.
        private final class Children: Sendable {
            let channels = Locked<[ObjectIdentifier: any Channel]>([:])
        }

        private let listener: any Channel
        private let children: Children
        let port: Int

        private init(listener: any Channel, children: Children, port: Int) {
            self.listener = listener
            self.children = children
            self.port = port
        }

        /// Binds `host:port`, serving TLS only when `tls` is given (as the
        /// leader does); `refusal` is the message of the `unavailable`
        /// answer, read at each request.
        static func bind(
            host: String, port: Int, group: any EventLoopGroup, tls: ServerTLSContext?,
            refusal: @escaping @Sendable () -> String
        ) async throws -> StandbyListener {
            let children = Children()
            let listener = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 256)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { channel in
                    let id = ObjectIdentifier(channel)
                    children.channels.withLock { $0[id] = channel }
                    channel.closeFuture.whenComplete { _ in
                        _ = children.channels.withLock { $0.removeValue(forKey: id) }
                    }
                    return channel.eventLoop.makeCompletedFuture {
                        try tls?.addHandlers(to: channel.pipeline.syncOperations)
                        try channel.pipeline.syncOperations.addHandler(StandbyHandler(refusal: refusal))
                    }
                }
                .bind(host: host, port: port).get()
            return StandbyListener(listener: listener, children: children, port: listener.localAddress?.port ?? port)
        }

        /// Stops listening and closes every standby connection.
        func close() async {
            try? await listener.close()
            let open = children.channels.withLock { Array($0.values) }
            for channel in open { try? await channel.close() }
        }
    }

    private final class StandbyHandler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        static let maximumLine = 4096
        private let refusal: @Sendable () -> String
        private var pending: [UInt8] = []
        private var closing = false

        init(refusal: @escaping @Sendable () -> String) {
            self.refusal = refusal
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard !closing else { return }
            let buffer = unwrapInboundIn(data)
            pending.append(contentsOf: buffer.readableBytesView)
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                var line = pending[..<newline]
                pending.removeSubrange(...newline)
                if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
                guard line.count <= Self.maximumLine else { return tooLong(context) }
                if line.isEmpty { continue }
                let command = String(decoding: line.prefix { $0 != UInt8(ascii: "|") }, as: UTF8.self).uppercased()
                switch command {
                case "PING":
                    write("OK|PONG", context)
                case "QUIT":
                    write("OK|BYE", context)
                    closing = true
                    context.writeAndFlush(wrapOutboundOut(ByteBuffer()), promise: nil)
                    context.close(promise: nil)
                    return
                default:
                    write("ERR|unavailable|\(refusal())", context)
                }
            }
            if pending.count > Self.maximumLine { tooLong(context) }
        }

        func channelReadComplete(context: ChannelHandlerContext) {
            context.flush()
        }

        private func write(_ line: String, _ context: ChannelHandlerContext) {
            context.write(wrapOutboundOut(ByteBuffer(string: line + "\n")), promise: nil)
        }

        private func tooLong(_ context: ChannelHandlerContext) {
            closing = true
            write("ERR|line_too_long|a line may be at most \(Self.maximumLine) bytes", context)
            context.flush()
            context.close(promise: nil)
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }
#endif
