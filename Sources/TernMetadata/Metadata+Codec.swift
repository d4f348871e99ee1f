public import TernCore
internal import TernStorage

extension Metadata {
    /// The binary form of catalogue commands (one per metadata log entry) and of whole
    /// catalogues (the metadata group's snapshot):
    ///
    /// | size | field |
    /// |---|---|
    /// | 1 | format version (``currentVersion``, 1) |
    /// | 1 | record type: 1 command, 2 catalogue |
    /// | n | body |
    /// | 4 | CRC-32C (Castagnoli) of every byte before it, big-endian |
    ///
    /// Integers are unsigned LEB128 varints in their shortest form; strings a varint byte
    /// count + UTF-8; optionals a byte 0 (absent) or 1 + the value; lists a varint count + the
    /// elements. A command body is a kind byte (1 registerNode … 8 removeReplica) + its fields
    /// in declaration order; a catalogue lists nodes, groups, queues and topics sorted by key.
    /// `docs/cluster.md` ("Catalogue and placement") lists every field.
    ///
    /// Encoding is canonical (one catalogue, one byte string), and the decoder accepts only
    /// canonical input: shortest varints, keys strictly ascending, a catalogue whose invariants
    /// hold (``Catalogue/validate()``). A decoder of version N reads every earlier version.
    public enum Codec {
        /// The format version this build writes: 1.
        public static let currentVersion: UInt8 = 1

        enum RecordType: UInt8 { case command = 1, catalogue = 2 }

        enum Tag: UInt8 {
            case registerNode = 1, createQueue, deleteQueue, createTopic, deleteTopic, addLearner, promoteLearner, removeReplica
        }

        /// Encodes one command (a metadata log entry's payload).
        public static func encode(_ command: Command) -> [UInt8] {
            var w = Writer(type: .command)
            w.command(command)
            return w.finish()
        }

        /// Encodes a whole catalogue (the metadata group's snapshot).
        public static func encode(_ catalogue: Catalogue) -> [UInt8] {
            var w = Writer(type: .catalogue)
            w.catalogue(catalogue)
            return w.finish()
        }

        /// Decodes a command written by ``encode(_:)-(Command)`` of this or an earlier version.
        /// - Throws: ``Metadata/Error`` with `invalidFrame` when the bytes are truncated, fail the
        ///   checksum, have bytes left over, name an unknown version, record type or kind, or
        ///   hold a non-canonical or invalid value (a bad queue name, a count beyond the record);
        ///   never traps.
        public static func decodeCommand(_ bytes: [UInt8]) throws(Metadata.Error) -> Command {
            var r = try Reader(bytes, expecting: .command)
            let command = try r.command()
            try r.finish()
            return command
        }

        /// Decodes a catalogue written by ``encode(_:)-(Catalogue)`` of this or an earlier version.
        /// - Throws: ``Metadata/Error`` with `invalidFrame` for the reasons of
        ///   ``decodeCommand(_:)``, and when the decoded catalogue breaks an invariant
        ///   (``Catalogue/validate()``); never traps.
        public static func decodeCatalogue(_ bytes: [UInt8]) throws(Metadata.Error) -> Catalogue {
            var r = try Reader(bytes, expecting: .catalogue)
            let catalogue = try r.catalogue()
            try r.finish()
            try catalogue.validate()
            return catalogue
        }
    }
}

// MARK: - Writing

extension Metadata.Codec {
    struct Writer {
        private(set) var bytes: [UInt8] = []

        init(type: RecordType) {
            bytes.reserveCapacity(64)
            bytes.append(Metadata.Codec.currentVersion)
            bytes.append(type.rawValue)
        }

        mutating func finish() -> [UInt8] {
            let crc = CRC32C.checksum(bytes)
            bytes.append(contentsOf: [UInt8(crc >> 24), UInt8(truncatingIfNeeded: crc >> 16),
                                      UInt8(truncatingIfNeeded: crc >> 8), UInt8(truncatingIfNeeded: crc)])
            return bytes
        }

        mutating func u8(_ v: UInt8) { bytes.append(v) }
        mutating func varint(_ v: UInt64) {
            var v = v
            while v >= 0x80 {
                bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
                v >>= 7
            }
            bytes.append(UInt8(v))
        }
        /// A negative `Int` (only a nonsensical replication factor could be one) is written as 0.
        mutating func int(_ v: Int) { varint(UInt64(clamping: v)) }
        mutating func string(_ v: String) {
            varint(UInt64(v.utf8.count))
            bytes.append(contentsOf: v.utf8)
        }
        mutating func name(_ v: QueueName) { string(v.rawValue) }
        mutating func optionalString(_ v: String?) {
            if let v {
                u8(1)
                string(v)
            } else {
                u8(0)
            }
        }
        mutating func strings(_ v: [String]) {
            int(v.count)
            for s in v { string(s) }
        }

        mutating func command(_ command: Metadata.Command) {
            switch command {
            case .registerNode(let id, let zone, let at):
                u8(Tag.registerNode.rawValue); string(id); optionalString(zone); varint(at.milliseconds)
            case .createQueue(let name, let placement):
                u8(Tag.createQueue.rawValue); self.name(name)
                switch placement {
                case .replicas(let replicas, let factor): u8(0); int(factor); strings(replicas)
                case .colocated(let other): u8(1); self.name(other)
                }
            case .deleteQueue(let name):
                u8(Tag.deleteQueue.rawValue); self.name(name)
            case .createTopic(let name, let partitions, let factor):
                u8(Tag.createTopic.rawValue); self.name(name); int(factor)
                int(partitions.count)
                for replicas in partitions { strings(replicas) }
            case .deleteTopic(let name):
                u8(Tag.deleteTopic.rawValue); self.name(name)
            case .addLearner(let group, let node, let epoch):
                u8(Tag.addLearner.rawValue); varint(group); string(node); varint(epoch)
            case .promoteLearner(let group, let node, let epoch):
                u8(Tag.promoteLearner.rawValue); varint(group); string(node); varint(epoch)
            case .removeReplica(let group, let node, let epoch):
                u8(Tag.removeReplica.rawValue); varint(group); string(node); varint(epoch)
            }
        }

        mutating func catalogue(_ catalogue: Metadata.Catalogue) {
            varint(catalogue.nextGroupID)
            int(catalogue.nodes.count)
            for node in catalogue.nodes.values.sorted(by: { $0.id.utf8.lexicographicallyPrecedes($1.id.utf8) }) {
                string(node.id); optionalString(node.zone); varint(node.registeredAt.milliseconds)
            }
            int(catalogue.groups.count)
            for group in catalogue.groups.values.sorted(by: { $0.id < $1.id }) {
                varint(group.id)
                switch group.kind {
                case .queue: u8(0)
                case .topicPartition(let partition): u8(1); int(partition)
                }
                name(group.owner); int(group.replicationFactor); varint(group.epoch)
                strings(group.replicas); strings(group.learners)
            }
            int(catalogue.queues.count)
            for queue in catalogue.queues.values.sorted(by: Self.byName(\.name)) {
                name(queue.name); varint(queue.group)
            }
            int(catalogue.topics.count)
            for topic in catalogue.topics.values.sorted(by: Self.byName(\.name)) {
                name(topic.name); varint(topic.coordinationGroup)
                int(topic.partitions.count)
                for id in topic.partitions { varint(id) }
            }
        }

        /// Byte order of the UTF-8 names (what the decoder checks; `String`'s `<` is not bytewise).
        static func byName<T>(_ key: KeyPath<T, QueueName>) -> (T, T) -> Bool {
            { $0[keyPath: key].rawValue.utf8.lexicographicallyPrecedes($1[keyPath: key].rawValue.utf8) }
        }
    }
}

// MARK: - Reading

extension Metadata.Codec {
    struct Reader {
        private let bytes: [UInt8]
        private var offset: Int
        /// The end of the body (the checksum's offset).
        private let end: Int
        /// The format version of the record being read.
        let version: UInt8

        init(_ bytes: [UInt8], expecting type: RecordType) throws(Metadata.Error) {
            guard bytes.count >= 6 else { throw Self.corrupt("record of \(bytes.count) bytes is too short") }
            let end = bytes.count - 4
            let stored = UInt32(bytes[end]) << 24 | UInt32(bytes[end + 1]) << 16 | UInt32(bytes[end + 2]) << 8 | UInt32(bytes[end + 3])
            let computed = CRC32C.checksum(bytes[..<end])
            guard stored == computed else { throw Self.corrupt("checksum mismatch") }
            version = bytes[0]
            guard version >= 1, version <= Metadata.Codec.currentVersion else {
                throw Self.corrupt("format version \(version) is unknown (this build reads 1–\(Metadata.Codec.currentVersion))")
            }
            guard bytes[1] == type.rawValue else {
                throw Self.corrupt("record type \(bytes[1]), expected \(type.rawValue)")
            }
            self.bytes = bytes
            self.end = end
            offset = 2
        }

        static func corrupt(_ message: String) -> Metadata.Error { Metadata.Error(.invalidFrame, "metadata record: " + message) }

        func finish() throws(Metadata.Error) {
            guard offset == end else { throw Self.corrupt("\(end - offset) bytes after the body") }
        }

        mutating func u8() throws(Metadata.Error) -> UInt8 {
            guard offset < end else { throw Self.corrupt("truncated") }
            defer { offset += 1 }
            return bytes[offset]
        }

        mutating func varint() throws(Metadata.Error) -> UInt64 {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            var count = 0
            while true {
                let byte = try u8()
                count += 1
                guard count <= 10, count < 10 || byte <= 1 else { throw Self.corrupt("varint overflows 64 bits") }
                value |= UInt64(byte & 0x7F) << shift
                if byte & 0x80 == 0 {
                    guard byte != 0 || count == 1 else { throw Self.corrupt("varint not in its shortest form") }
                    return value
                }
                shift += 7
            }
        }

        /// A non-negative count or small number no larger than `limit`.
        mutating func int(limit: Int) throws(Metadata.Error) -> Int {
            let value = try varint()
            guard value <= UInt64(limit) else { throw Self.corrupt("value \(value) exceeds \(limit)") }
            return Int(value)
        }

        /// A list count: each element takes at least one byte, so a count beyond the bytes left
        /// is corrupt (and never allocates).
        mutating func listCount(limit: Int = .max) throws(Metadata.Error) -> Int {
            try int(limit: min(limit, end - offset))
        }

        mutating func string(maxBytes: Int = 1 << 16) throws(Metadata.Error) -> String {
            let length = try int(limit: min(maxBytes, end - offset))
            let slice = bytes[offset..<(offset + length)]
            offset += length
            guard let string = String(validating: slice, as: UTF8.self) else { throw Self.corrupt("string is not UTF-8") }
            return string
        }

        mutating func name() throws(Metadata.Error) -> QueueName {
            let raw = try string(maxBytes: QueueName.maxLength)
            do {
                return try QueueName(raw)
            } catch {
                throw Self.corrupt("bad name: \(error.message)")
            }
        }

        mutating func optionalString(maxBytes: Int) throws(Metadata.Error) -> String? {
            switch try u8() {
            case 0: return nil
            case 1: return try string(maxBytes: maxBytes)
            case let flag: throw Self.corrupt("optional flag \(flag)")
            }
        }

        /// A node id of at most `maxBytes` (commands carry any string, which ``Catalogue/apply(_:)``
        /// judges; a catalogue only valid ids).
        mutating func nodeID(maxBytes: Int = Metadata.Limits.maxNodeIDBytes) throws(Metadata.Error) -> String {
            try string(maxBytes: maxBytes)
        }

        mutating func nodeIDs(limit: Int, maxBytes: Int = Metadata.Limits.maxNodeIDBytes) throws(Metadata.Error) -> [String] {
            let count = try listCount(limit: limit)
            var result: [String] = []
            result.reserveCapacity(count)
            for _ in 0..<count { result.append(try nodeID(maxBytes: maxBytes)) }
            return result
        }

        mutating func command() throws(Metadata.Error) -> Metadata.Command {
            let raw = try u8()
            guard let tag = Tag(rawValue: raw) else { throw Self.corrupt("unknown command kind \(raw)") }
            switch tag {
            case .registerNode:
                let id = try nodeID(maxBytes: .max)
                let zone = try optionalString(maxBytes: .max)
                return .registerNode(id: id, zone: zone, at: Timestamp(milliseconds: try varint()))
            case .createQueue:
                let name = try name()
                switch try u8() {
                case 0:
                    let factor = try int(limit: Int.max)
                    return .createQueue(name, placement: .replicas(try nodeIDs(limit: .max, maxBytes: .max), replicationFactor: factor))
                case 1:
                    return .createQueue(name, placement: .colocated(with: try self.name()))
                case let kind:
                    throw Self.corrupt("unknown queue placement \(kind)")
                }
            case .deleteQueue:
                return .deleteQueue(try name())
            case .createTopic:
                let name = try name()
                let factor = try int(limit: Int.max)
                let count = try listCount()
                var partitions: [[String]] = []
                partitions.reserveCapacity(count)
                for _ in 0..<count { partitions.append(try nodeIDs(limit: .max, maxBytes: .max)) }
                return .createTopic(name, partitions: partitions, replicationFactor: factor)
            case .deleteTopic:
                return .deleteTopic(try name())
            case .addLearner:
                return .addLearner(group: try varint(), node: try nodeID(maxBytes: .max), epoch: try varint())
            case .promoteLearner:
                return .promoteLearner(group: try varint(), node: try nodeID(maxBytes: .max), epoch: try varint())
            case .removeReplica:
                return .removeReplica(group: try varint(), node: try nodeID(maxBytes: .max), epoch: try varint())
            }
        }

        mutating func catalogue() throws(Metadata.Error) -> Metadata.Catalogue {
            var catalogue = Metadata.Catalogue()
            catalogue.nextGroupID = try varint()
            var previous: [UInt8]? = nil
            func ascending(_ key: String) throws(Metadata.Error) {
                let bytes = Array(key.utf8)
                if let previous, !previous.lexicographicallyPrecedes(bytes) { throw Self.corrupt("keys out of order at \(key)") }
                previous = bytes
            }
            for _ in 0..<(try listCount(limit: Metadata.Limits.maxNodes)) {
                let id = try nodeID()
                try ascending(id)
                let zone = try optionalString(maxBytes: Metadata.Limits.maxZoneBytes)
                catalogue.nodes[id] = Metadata.Node(id: id, zone: zone, registeredAt: Timestamp(milliseconds: try varint()))
            }
            var previousGroup: Metadata.GroupID? = nil
            for _ in 0..<(try listCount()) {
                let id = try varint()
                if let previousGroup, previousGroup >= id { throw Self.corrupt("group ids out of order at \(id)") }
                previousGroup = id
                let kind: Metadata.Group.Kind
                switch try u8() {
                case 0: kind = .queue
                case 1: kind = .topicPartition(try int(limit: Metadata.Limits.maxPartitions - 1))
                case let raw: throw Self.corrupt("unknown group kind \(raw)")
                }
                let owner = try name()
                let factor = try int(limit: Metadata.Limits.maxReplicas)
                let epoch = try varint()
                let replicas = try nodeIDs(limit: Metadata.Limits.maxReplicas)
                let learners = try nodeIDs(limit: Metadata.Limits.maxLearners)
                catalogue.groups[id] = Metadata.Group(id: id, kind: kind, owner: owner, replicas: replicas, learners: learners,
                                                      epoch: epoch, replicationFactor: factor)
            }
            previous = nil
            for _ in 0..<(try listCount()) {
                let name = try name()
                try ascending(name.rawValue)
                catalogue.queues[name] = Metadata.Queue(name: name, group: try varint())
            }
            previous = nil
            for _ in 0..<(try listCount()) {
                let name = try name()
                try ascending(name.rawValue)
                let coordination = try varint()
                let count = try listCount(limit: Metadata.Limits.maxPartitions)
                var partitions: [Metadata.GroupID] = []
                partitions.reserveCapacity(count)
                for _ in 0..<count { partitions.append(try varint()) }
                catalogue.topics[name] = Metadata.Topic(name: name, partitions: partitions, coordinationGroup: coordination)
            }
            return catalogue
        }
    }
}
