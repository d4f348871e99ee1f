extension Gossip.Node {
    /// Whether the node's record needs version 2 of the format (it has an extension field).
    var hasExtensions: Bool { sqs != nil }
}

extension Gossip {
    /// Encodes ``Packet``s as datagrams and decodes them, strictly (`docs/gossip.md` gives the
    /// layout byte by byte). All integers are big-endian; strings are a one-byte length and UTF-8.
    ///
    /// ```
    /// packet  = magic "TG" (54 47) | version u8 (1 or 2) | flags u8 | sender str8 | count u8 | message{count} | [tag 32]
    /// message = type u8 | length u16 | body[length]
    /// ```
    ///
    /// Version 2 differs only in node records (in `alive` and `sync`): each ends with a list of
    /// extension fields, `count u8 | (key u8 | length u8 | value[length]){count}`; key 1 is the
    /// SQS address (``Node/sqs``), keys this build does not know are skipped (so later fields
    /// need no new version). A packet is written as version 1 unless one of its node records
    /// carries an extension field, so a cluster without SQS endpoints stays readable by builds
    /// that know only version 1; every build reads both.
    ///
    /// Flag bit 0 says that a 32-byte HMAC-SHA256 tag over everything before it ends the
    /// datagram; the shell computes and checks it (`--cluster-key`). Messages of a type this
    /// build does not know are skipped, so later versions can add types without a new version.
    public enum Codec {
        /// The newest format version this build writes and reads (it reads 1 and 2; it writes 1
        /// when no node record has an extension field).
        public static let version: UInt8 = 2
        /// The versions this build decodes.
        public static let versions: ClosedRange<UInt8> = 1...2
        /// Extension-field keys of version-2 node records.
        enum NodeField: UInt8 {
            /// The SQS endpoint's address (``Node/sqs``): str8 host | u16 port.
            case sqs = 1
        }
        /// The bytes of an authentication tag (HMAC-SHA256).
        public static let tagBytes = 32
        /// Bytes of the packet header before the messages, for `sender`.
        public static func headerBytes(sender: NodeID) -> Int { 2 + 1 + 1 + 1 + sender.rawValue.utf8.count + 1 }
        /// Bytes a message takes in a packet, its type and length included: exact in a
        /// version-2 packet, one byte more than needed per node record in a version-1 packet
        /// (which has no extension count), so budgets computed with it always hold.
        public static func encodedBytes(_ message: Message) -> Int { 3 + bodyBytes(message, extended: true) }
        /// Bytes one member record takes in a sync message (as ``encodedBytes(_:)-(Message)``:
        /// exact in version 2, an upper bound in version 1).
        public static func encodedBytes(_ record: MemberRecord) -> Int { 1 + 8 + nodeBytes(record.node, extended: true) }
        /// The version a packet is written in: 2 when a node record in it has an extension field.
        public static func version(of packet: Packet) -> UInt8 {
            packet.messages.contains { message in
                switch message {
                case .update(.alive(let node, _)): node.hasExtensions
                case .sync(_, _, let members): members.contains { $0.node.hasExtensions }
                default: false
                }
            } ? 2 : 1
        }
        /// Bytes of a sync message's fixed part (type, length, flags, count).
        public static let syncOverheadBytes = 3 + 1 + 2

        enum MessageType: UInt8 {
            case ping = 1, indirectPing = 2, ack = 3, nack = 4, alive = 5, suspect = 6, dead = 7, left = 8, sync = 9
        }

        // MARK: Encoding

        /// The datagram for `packet`, without the tag; with `tagged` the flag that announces one
        /// is set and the caller appends the 32-byte tag.
        /// - Precondition: 1–255 messages.
        public static func encode(_ packet: Packet, tagged: Bool = false) -> [UInt8] {
            precondition((1...255).contains(packet.messages.count), "a packet holds 1–255 messages")
            var out = [UInt8]()
            out.reserveCapacity(headerBytes(sender: packet.sender) + packet.messages.reduce(0) { $0 + encodedBytes($1) })
            let version = version(of: packet)
            out += [0x54, 0x47, version, tagged ? 1 : 0]
            putString(&out, packet.sender.rawValue)
            out.append(UInt8(packet.messages.count))
            for message in packet.messages { encode(message, into: &out, extended: version >= 2) }
            return out
        }

        static func encode(_ message: Message, into out: inout [UInt8], extended: Bool) {
            let type: MessageType
            switch message {
            case .ping: type = .ping
            case .indirectPing: type = .indirectPing
            case .ack: type = .ack
            case .nack: type = .nack
            case .update(.alive): type = .alive
            case .update(.suspect): type = .suspect
            case .update(.dead): type = .dead
            case .update(.left): type = .left
            case .sync: type = .sync
            }
            out.append(type.rawValue)
            putU16(&out, UInt16(bodyBytes(message, extended: extended)))
            switch message {
            case .ping(let sequence, let target):
                putU32(&out, sequence)
                putString(&out, target.rawValue)
            case .indirectPing(let sequence, let target, let address, let wantsNack):
                putU32(&out, sequence)
                putString(&out, target.rawValue)
                putAddress(&out, address)
                out.append(wantsNack ? 1 : 0)
            case .ack(let sequence), .nack(let sequence):
                putU32(&out, sequence)
            case .update(.alive(let node, let incarnation)):
                putU64(&out, incarnation)
                putNode(&out, node, extended: extended)
            case .update(.suspect(let id, let incarnation, let source)), .update(.dead(let id, let incarnation, let source)):
                putString(&out, id.rawValue)
                putU64(&out, incarnation)
                putString(&out, source.rawValue)
            case .update(.left(let id, let incarnation)):
                putString(&out, id.rawValue)
                putU64(&out, incarnation)
            case .sync(let replyWanted, let join, let members):
                out.append((replyWanted ? 1 : 0) | (join ? 2 : 0))
                putU16(&out, UInt16(members.count))
                for record in members {
                    out.append(record.state.rawValue)
                    putU64(&out, record.incarnation)
                    putNode(&out, record.node, extended: extended)
                }
            }
        }

        /// - Parameter extended: node records carry the extension list (version 2).
        static func bodyBytes(_ message: Message, extended: Bool) -> Int {
            switch message {
            case .ping(_, let target): 4 + 1 + target.rawValue.utf8.count
            case .indirectPing(_, let target, let address, _): 4 + 1 + target.rawValue.utf8.count + addressBytes(address) + 1
            case .ack, .nack: 4
            case .update(.alive(let node, _)): 8 + nodeBytes(node, extended: extended)
            case .update(.suspect(let id, _, let source)), .update(.dead(let id, _, let source)):
                1 + id.rawValue.utf8.count + 8 + 1 + source.rawValue.utf8.count
            case .update(.left(let id, _)): 1 + id.rawValue.utf8.count + 8
            case .sync(_, _, let members): 1 + 2 + members.reduce(0) { $0 + 1 + 8 + nodeBytes($1.node, extended: extended) }
            }
        }

        static func addressBytes(_ address: Address) -> Int { 1 + address.host.utf8.count + 2 }

        static func nodeBytes(_ node: Node, extended: Bool) -> Int {
            1 + node.id.rawValue.utf8.count + addressBytes(node.gossip)
                + 1 + (node.http.map(addressBytes) ?? 0) + 1 + (node.binary.map(addressBytes) ?? 0)
                + 1 + (node.zone?.utf8.count ?? 0) + 8
                + (extended ? 1 + (node.sqs.map { 2 + addressBytes($0) } ?? 0) : 0)
        }

        static func putU16(_ out: inout [UInt8], _ v: UInt16) { out += [UInt8(v >> 8), UInt8(v & 0xFF)] }
        static func putU32(_ out: inout [UInt8], _ v: UInt32) {
            out += [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)]
        }
        static func putU64(_ out: inout [UInt8], _ v: UInt64) {
            for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8((v >> UInt64(shift)) & 0xFF)) }
        }
        static func putString(_ out: inout [UInt8], _ s: String) {
            let bytes = Array(s.utf8)
            precondition(bytes.count <= 255)
            out.append(UInt8(bytes.count))
            out += bytes
        }
        static func putAddress(_ out: inout [UInt8], _ a: Address) {
            putString(&out, a.host)
            putU16(&out, a.port)
        }
        static func putNode(_ out: inout [UInt8], _ node: Node, extended: Bool) {
            putString(&out, node.id.rawValue)
            putAddress(&out, node.gossip)
            for optional in [node.http, node.binary] {
                if let address = optional {
                    out.append(1)
                    putAddress(&out, address)
                } else {
                    out.append(0)
                }
            }
            putString(&out, node.zone ?? "")
            putU64(&out, node.startedAt)
            guard extended else { return }
            out.append(node.sqs == nil ? 0 : 1)
            if let sqs = node.sqs {
                out.append(NodeField.sqs.rawValue)
                out.append(UInt8(addressBytes(sqs)))
                putAddress(&out, sqs)
            }
        }

        // MARK: Decoding

        /// Whether `datagram` announces an authentication tag (flag bit 0); false when it is too
        /// short to tell.
        public static func isTagged(_ datagram: [UInt8]) -> Bool { datagram.count >= 4 && datagram[3] & 1 == 1 }

        /// Decodes one datagram. With the tag flag set, the last 32 bytes are the tag (checked by
        /// the caller, not here) and are not read as messages.
        /// - Returns: the packet; messages of unknown types are left out.
        /// - Throws: ``GossipError`` — ``GossipError/Code/unsupportedVersion`` for a version
        ///   other than 1 and 2, ``GossipError/Code/malformedPacket`` for anything truncated, trailing,
        ///   out of range or not valid UTF-8.
        public static func decode(_ datagram: [UInt8]) throws(GossipError) -> Packet {
            guard datagram.count >= 4, datagram[0] == 0x54, datagram[1] == 0x47 else {
                throw GossipError(.malformedPacket, "not a gossip packet (bad magic)")
            }
            guard versions.contains(datagram[2]) else {
                throw GossipError(.unsupportedVersion, "gossip version \(datagram[2]) is not supported (this build speaks \(versions.lowerBound)–\(versions.upperBound))")
            }
            let extended = datagram[2] >= 2
            let flags = datagram[3]
            guard flags & ~1 == 0 else { throw GossipError(.malformedPacket, "unknown flags \(flags)") }
            var end = datagram.count
            if flags & 1 == 1 {
                guard end >= 4 + tagBytes else { throw GossipError(.malformedPacket, "shorter than its tag") }
                end -= tagBytes
            }
            var reader = Reader(bytes: datagram, position: 4, end: end, extended: extended)
            let sender = try reader.nodeID()
            let count = Int(try reader.u8())
            guard count >= 1 else { throw GossipError(.malformedPacket, "a packet holds at least one message") }
            var messages = [Message]()
            messages.reserveCapacity(count)
            for _ in 0..<count {
                let type = try reader.u8()
                let length = Int(try reader.u16())
                guard reader.remaining >= length else { throw GossipError(.malformedPacket, "message truncated") }
                var body = Reader(bytes: datagram, position: reader.position, end: reader.position + length, extended: extended)
                reader.position += length
                guard let known = MessageType(rawValue: type) else { continue }
                messages.append(try decodeBody(known, &body))
                guard body.remaining == 0 else { throw GossipError(.malformedPacket, "\(body.remaining) trailing bytes in a message") }
            }
            guard reader.remaining == 0 else { throw GossipError(.malformedPacket, "\(reader.remaining) trailing bytes") }
            return Packet(sender: sender, messages: messages)
        }

        static func decodeBody(_ type: MessageType, _ r: inout Reader) throws(GossipError) -> Message {
            switch type {
            case .ping:
                return .ping(sequence: try r.u32(), target: try r.nodeID())
            case .indirectPing:
                let sequence = try r.u32(), target = try r.nodeID(), address = try r.address()
                let flags = try r.u8()
                guard flags & ~1 == 0 else { throw GossipError(.malformedPacket, "unknown indirect-ping flags") }
                return .indirectPing(sequence: sequence, target: target, address: address, wantsNack: flags == 1)
            case .ack: return .ack(sequence: try r.u32())
            case .nack: return .nack(sequence: try r.u32())
            case .alive:
                let incarnation = try r.u64()
                return .update(.alive(try r.node(), incarnation: incarnation))
            case .suspect:
                return .update(.suspect(try r.nodeID(), incarnation: try r.u64(), source: try r.nodeID()))
            case .dead:
                return .update(.dead(try r.nodeID(), incarnation: try r.u64(), source: try r.nodeID()))
            case .left:
                return .update(.left(try r.nodeID(), incarnation: try r.u64()))
            case .sync:
                let flags = try r.u8()
                guard flags & ~3 == 0 else { throw GossipError(.malformedPacket, "unknown sync flags") }
                let count = Int(try r.u16())
                var members = [MemberRecord]()
                members.reserveCapacity(min(count, 256))
                for _ in 0..<count {
                    guard let state = MemberState(rawValue: try r.u8()) else { throw GossipError(.malformedPacket, "unknown member state") }
                    let incarnation = try r.u64()
                    members.append(MemberRecord(node: try r.node(), state: state, incarnation: incarnation))
                }
                return .sync(replyWanted: flags & 1 == 1, join: flags & 2 == 2, members: members)
            }
        }

        struct Reader {
            let bytes: [UInt8]
            var position: Int
            let end: Int
            /// Node records end with extension fields (version 2).
            let extended: Bool
            var remaining: Int { end - position }

            mutating func take(_ n: Int) throws(GossipError) -> ArraySlice<UInt8> {
                guard remaining >= n else { throw GossipError(.malformedPacket, "truncated") }
                defer { position += n }
                return bytes[position..<position + n]
            }
            mutating func u8() throws(GossipError) -> UInt8 { try take(1).first! }
            mutating func u16() throws(GossipError) -> UInt16 {
                try take(2).reduce(0) { $0 << 8 | UInt16($1) }
            }
            mutating func u32() throws(GossipError) -> UInt32 {
                try take(4).reduce(0) { $0 << 8 | UInt32($1) }
            }
            mutating func u64() throws(GossipError) -> UInt64 {
                try take(8).reduce(0) { $0 << 8 | UInt64($1) }
            }
            mutating func string() throws(GossipError) -> String {
                let length = Int(try u8())
                let raw = try take(length)
                guard let text = String(validating: raw, as: UTF8.self) else {
                    throw GossipError(.malformedPacket, "a string is not valid UTF-8")
                }
                return text
            }
            mutating func nodeID() throws(GossipError) -> NodeID {
                let text = try string()
                guard let id = NodeID(rawValue: text) else { throw GossipError(.malformedPacket, "invalid node id") }
                return id
            }
            mutating func address() throws(GossipError) -> Address {
                let host = try string()
                guard !host.isEmpty else { throw GossipError(.malformedPacket, "an address without host") }
                return Address(host: host, port: try u16())
            }
            mutating func optionalAddress() throws(GossipError) -> Address? {
                switch try u8() {
                case 0: return nil
                case 1: return try address()
                default: throw GossipError(.malformedPacket, "bad presence byte")
                }
            }
            mutating func node() throws(GossipError) -> Node {
                let id = try nodeID(), gossip = try address(), http = try optionalAddress(), binary = try optionalAddress()
                let zone = try string()
                guard zone.utf8.count <= 64 else { throw GossipError(.malformedPacket, "zone longer than 64 bytes") }
                let startedAt = try u64()
                var sqs: Address?
                if extended {
                    let count = Int(try u8())
                    var seen = Set<UInt8>()
                    for _ in 0..<count {
                        let key = try u8()
                        let length = Int(try u8())
                        guard seen.insert(key).inserted else { throw GossipError(.malformedPacket, "node field \(key) repeated") }
                        guard let field = NodeField(rawValue: key) else {
                            _ = try take(length)  // a field of a later build
                            continue
                        }
                        guard remaining >= length else { throw GossipError(.malformedPacket, "node field truncated") }
                        var value = Reader(bytes: bytes, position: position, end: position + length, extended: extended)
                        position += length
                        switch field {
                        case .sqs: sqs = try value.address()
                        }
                        guard value.remaining == 0 else { throw GossipError(.malformedPacket, "trailing bytes in node field \(key)") }
                    }
                }
                return Node(id: id, gossip: gossip, http: http, binary: binary, sqs: sqs, zone: zone.isEmpty ? nil : zone,
                            startedAt: startedAt)
            }
        }
    }
}
