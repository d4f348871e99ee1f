public import TernCore
public import TernStorage

/// The binary form of a ``CommandEnvelope``: a ``RecordCodec`` envelope (CRC-32C, record
/// version, snappy when it saves an eighth — which is when bodies are text), around
///
/// | size | field |
/// |---|---|
/// | 1 | command format version (``currentVersion``, 1) |
/// | 1 | kind tag (see `docs/commands.md`) |
/// | 8 | time, ms since the epoch |
/// | n | the kind's fields |
///
/// Integers are big-endian; `Int`s are written as 64-bit two's complement; strings and byte
/// strings as u32 length + bytes; optionals as a u8 flag (0 absent, 1 present) + value;
/// arrays as u32 count + elements; dictionaries as sorted arrays. `docs/commands.md` lists
/// every kind byte by byte. A decoder of version N reads every earlier version.
public enum CommandCodec {
    /// The command format version this build writes: 2 (version 1 had no message attributes).
    public static let currentVersion: UInt8 = 2

    enum Tag: UInt8 {
        case createOrUpdateQueue = 1, deleteQueue, send, sendIdempotent, receive, acknowledge, changeVisibility, purge, redrive,
             tick, retention, createOrUpdateTopic, deleteTopic, produce, joinGroup, leaveGroup, expireMembers, commitOffsets,
             resetOffsets, initProducer, commitTransaction, expireProducers, changeVisibilityBatch, updateQueueMetadata,
             setStorageLimit, purgeQueue, noteDeletedQueue
    }

    /// Encodes `envelope`.
    public static func encode(_ envelope: CommandEnvelope) -> [UInt8] {
        var w = Writer(time: envelope.time)
        w.u8(currentVersion)
        w.encode(envelope.command)
        return RecordCodec.encode(w.bytes)
    }

    /// Decodes a record written by ``encode(_:)`` of this or an earlier version.
    /// - Throws: ``StorageError`` `corruptRecord` when the checksum fails, the record is
    ///   truncated or has bytes left over, the version or a tag is unknown, or a value is
    ///   invalid (a bad name, a count beyond the record); never traps.
    public static func decode(_ record: [UInt8]) throws(StorageError) -> CommandEnvelope {
        let payload = try RecordCodec.decode(record)
        var r = Reader(BigEndianReader(payload))
        do {
            let version = try r.u8()
            guard version >= 1, version <= currentVersion else {
                throw StorageError(.corruptRecord, "command format version \(version) is unknown (this build reads 1–\(currentVersion))")
            }
            r.version = version
            let envelope = try r.envelope()
            guard r.reader.remaining == 0 else { throw StorageError(.corruptRecord, "\(r.reader.remaining) bytes after the command") }
            return envelope
        } catch let error as StorageError {
            throw error
        } catch {
            throw StorageError(.corruptRecord, "\(error)")
        }
    }

    struct Writer {
        /// Written after the kind tag.
        let time: Timestamp
        private var w = BigEndianWriter(capacity: 64)
        var bytes: [UInt8] { w.bytes }

        init(time: Timestamp) { self.time = time }

        mutating func u8(_ v: UInt8) { w.write(v) }
        mutating func u32(_ v: UInt32) { w.write(v) }
        mutating func u64(_ v: UInt64) { w.write(v) }
        mutating func int(_ v: Int) { w.write(UInt64(bitPattern: Int64(v))) }
        mutating func bool(_ v: Bool) { w.write(UInt8(v ? 1 : 0)) }
        mutating func data(_ v: [UInt8]) { w.writeLengthPrefixed(v) }
        mutating func string(_ v: String) { w.writeLengthPrefixed(Array(v.utf8)) }
        mutating func name(_ v: QueueName) { string(v.rawValue) }
        mutating func optional<T>(_ v: T?, _ body: (inout Writer, T) -> Void) {
            if let v {
                w.write(UInt8(1))
                body(&self, v)
            } else {
                w.write(UInt8(0))
            }
        }
        mutating func array<T>(_ v: [T], _ body: (inout Writer, T) -> Void) {
            w.write(UInt32(v.count))
            for element in v { body(&self, element) }
        }

        mutating func encode(_ command: Command) {
            switch command {
            case .createOrUpdateQueue(let name, let patch):
                tag(.createOrUpdateQueue); self.name(name); self.patch(patch)
            case .deleteQueue(let name):
                tag(.deleteQueue); self.name(name)
            case .updateQueueMetadata(let name, let patch):
                tag(.updateQueueMetadata); self.name(name)
                for map in [patch.tags, patch.attributes] {
                    array(map.sorted { $0.key < $1.key }) { w, entry in w.string(entry.key); w.optional(entry.value) { $0.string($1) } }
                }
                switch patch.lastModified {
                case .keep: u8(0)
                case .commandTime: u8(1)
                case .at(let time): u8(2); u64(time.milliseconds)
                }
                optional(patch.expected) { w, expected in w.u32(expected.queueID); w.u64(expected.revision) }
            case .send(let name, let messages, let seed):
                tag(.send); self.name(name); array(messages) { $0.message($1) }; u64(seed)
            case .sendIdempotent(let name, let messages, let stamp, let seed):
                tag(.sendIdempotent); self.name(name); array(messages) { $0.message($1) }; self.stamp(stamp); u64(seed)
            case .receive(let name, let max, let timeout, let auto, let seed):
                tag(.receive); self.name(name); int(max); optional(timeout) { $0.int($1) }; bool(auto); u64(seed)
            case .acknowledge(let name, let handles):
                tag(.acknowledge); self.name(name); array(handles) { $0.handle($1) }
            case .changeVisibility(let name, let handle, let timeout):
                tag(.changeVisibility); self.name(name); self.handle(handle); int(timeout)
            case .changeVisibilityBatch(let name, let changes):
                tag(.changeVisibilityBatch); self.name(name); array(changes) { w, change in w.handle(change.handle); w.int(change.timeout) }
            case .purge(let queue, let below, let limit):
                tag(.purge); u32(queue); u64(below); int(limit)
            case .redrive(let name, let after, let limit):
                tag(.redrive); self.name(name); u64(after); int(limit)
            case .tick(let limit):
                tag(.tick); int(limit)
            case .retention(let limit):
                tag(.retention); int(limit)
            case .createOrUpdateTopic(let name, let patch):
                tag(.createOrUpdateTopic); self.name(name)
                optional(patch.partitions) { $0.int($1) }; optional(patch.retention) { $0.int($1) }
                optional(patch.maxBytes) { w, v in w.optional(v) { $0.int($1) } }
            case .deleteTopic(let name):
                tag(.deleteTopic); self.name(name)
            case .produce(let produce):
                tag(.produce); self.produce(produce)
            case .joinGroup(let topic, let group, let member, let timeout):
                tag(.joinGroup); name(topic); name(group); string(member); int(timeout)
            case .leaveGroup(let topic, let group, let member):
                tag(.leaveGroup); name(topic); name(group); string(member)
            case .expireMembers(let topic, let group, let members):
                tag(.expireMembers); name(topic); name(group); array(members) { $0.string($1) }
            case .commitOffsets(let commit):
                tag(.commitOffsets); offsetCommit(commit)
            case .resetOffsets(let topic, let group, let target):
                tag(.resetOffsets); name(topic); name(group)
                switch target {
                case .earliest: u8(0)
                case .latest: u8(1)
                case .timestamp(let time): u8(2); u64(time.milliseconds)
                }
            case .initProducer(let id):
                tag(.initProducer); optional(id) { $0.string($1) }
            case .commitTransaction(let t):
                tag(.commitTransaction)
                u64(t.producer.producerID); u32(t.producer.epoch); optional(t.sequence) { $0.u64($1) }
                array(t.acknowledgements) { w, ack in w.name(ack.queue); w.handle(ack.handle) }
                array(t.sends) { w, send in w.name(send.queue); w.array(send.messages) { $0.message($1) }; w.u64(send.idSeed) }
                array(t.produces) { $0.produce($1) }
                array(t.offsets) { $0.offsetCommit($1) }
            case .expireProducers(let idle, let limit):
                tag(.expireProducers); int(idle); int(limit)
            case .setStorageLimit(let bytes):
                tag(.setStorageLimit); optional(bytes) { $0.u64($1) }
            case .purgeQueue(let name):
                tag(.purgeQueue); self.name(name)
            case .noteDeletedQueue(let name, let keep):
                tag(.noteDeletedQueue); self.name(name); u64(keep)
            }
        }

        private mutating func tag(_ tag: Tag) {
            w.write(tag.rawValue)
            w.write(time.milliseconds)
        }

        mutating func message(_ m: OutgoingMessage) {
            data(m.body); w.write(m.priority); optional(m.delay) { $0.int($1) }
            optional(m.groupID) { $0.string($1) }; optional(m.deduplicationID) { $0.string($1) }
            // Since version 2.
            array(m.attributes) { w, a in w.u8(a.kind.rawValue); w.string(a.name); w.string(a.dataType); w.data(a.value) }
        }

        mutating func stamp(_ s: ProducerStamp) {
            u64(s.producer.producerID); u32(s.producer.epoch); u64(s.firstSequence)
        }

        mutating func handle(_ h: ReceiptHandle) {
            u32(h.queue); u64(h.sequence); u64(h.nonce.high); u64(h.nonce.low)
        }

        mutating func patch(_ p: QueueAttributes.Patch) {
            optional(p.visibilityTimeout) { $0.int($1) }
            optional(p.retention) { $0.int($1) }
            optional(p.maxMessageBytes) { $0.int($1) }
            optional(p.delay) { $0.int($1) }
            optional(p.maxReceiveCount) { w, v in w.optional(v) { $0.int($1) } }
            optional(p.deadLetterQueue) { w, v in w.optional(v) { $0.name($1) } }
            optional(p.fifo) { $0.bool($1) }
            optional(p.maxMessages) { w, v in w.optional(v) { $0.int($1) } }
            optional(p.maxBytes) { w, v in w.optional(v) { $0.int($1) } }
            optional(p.contentBasedDeduplication) { $0.bool($1) }
            optional(p.overflow) { $0.string($1.rawValue) }
        }

        mutating func produce(_ p: TopicProduce) {
            name(p.topic); u32(p.topicID)
            array(p.messages) { w, m in w.optional(m.key) { $0.data($1) }; w.data(m.value); w.optional(m.partition) { $0.int($1) } }
            array(p.targets) { $0.int($1) }
            optional(p.sticky) { $0.int($1) }
            optional(p.stamp) { $0.stamp($1) }
        }

        mutating func offsetCommit(_ c: OffsetCommitCommand) {
            name(c.topic); name(c.group); optional(c.memberID) { $0.string($1) }; optional(c.generation) { $0.u32($1) }
            array(c.offsets.sorted { $0.key < $1.key }) { w, entry in w.int(entry.key); w.u64(entry.value) }
        }
    }

    struct Reader {
        var reader: BigEndianReader
        /// The record's command format version (fields added later are absent in older ones).
        var version = CommandCodec.currentVersion
        init(_ reader: BigEndianReader) { self.reader = reader }

        mutating func u8() throws -> UInt8 { try reader.readUInt8() }
        mutating func u32() throws -> UInt32 { try reader.readUInt32() }
        mutating func u64() throws -> UInt64 { try reader.readUInt64() }
        mutating func int() throws -> Int { Int(Int64(bitPattern: try reader.readUInt64())) }
        mutating func bool() throws -> Bool {
            switch try u8() {
            case 0: return false
            case 1: return true
            case let other: throw StorageError(.corruptRecord, "boolean byte \(other)")
            }
        }
        mutating func data() throws -> [UInt8] { try reader.readLengthPrefixed() }
        mutating func string() throws -> String {
            guard let text = String(validating: try data(), as: UTF8.self) else { throw StorageError(.corruptRecord, "a string is not UTF-8") }
            return text
        }
        mutating func name() throws -> QueueName {
            let text = try string()
            do { return try QueueName(text) } catch { throw StorageError(.corruptRecord, "invalid name \(text.debugDescription)") }
        }
        mutating func optional<T>(_ body: (inout Reader) throws -> T) throws -> T? {
            switch try u8() {
            case 0: return nil
            case 1: return try body(&self)
            case let other: throw StorageError(.corruptRecord, "optional flag \(other)")
            }
        }
        /// Each element takes at least `minimumBytes`, so a count beyond the record fails before allocating.
        mutating func array<T>(minimumBytes: Int, _ body: (inout Reader) throws -> T) throws -> [T] {
            let count = Int(try u32())
            guard count <= reader.remaining / max(1, minimumBytes) else {
                throw StorageError(.corruptRecord, "\(count) elements cannot fit in \(reader.remaining) bytes")
            }
            var result = [T]()
            result.reserveCapacity(count)
            for _ in 0..<count { result.append(try body(&self)) }
            return result
        }

        mutating func envelope() throws -> CommandEnvelope {
            let tagByte = try u8()
            let time = Timestamp(milliseconds: try u64())
            guard let tag = Tag(rawValue: tagByte) else { throw StorageError(.corruptRecord, "unknown command kind \(tagByte)") }
            return CommandEnvelope(time: time, command: try command(tag))
        }

        mutating func command(_ tag: Tag) throws -> Command {
            switch tag {
            case .createOrUpdateQueue: return .createOrUpdateQueue(try name(), try patch())
            case .deleteQueue: return .deleteQueue(try name())
            case .updateQueueMetadata:
                let name = try name()
                var patch = QueueMetadataPatch()
                for which in 0..<2 {
                    let entries = try array(minimumBytes: 5) { r throws in (try r.string(), try r.optional { try $0.string() }) }
                    var map = [String: String?]()
                    for (key, value) in entries {
                        guard map.updateValue(value, forKey: key) == nil else { throw StorageError(.corruptRecord, "metadata key \(key) twice") }
                    }
                    if which == 0 { patch.tags = map } else { patch.attributes = map }
                }
                switch try u8() {
                case 0: patch.lastModified = .keep
                case 1: patch.lastModified = .commandTime
                case 2: patch.lastModified = .at(Timestamp(milliseconds: try u64()))
                case let other: throw StorageError(.corruptRecord, "unknown last-modified rule \(other)")
                }
                patch.expected = try optional { r throws in QueueMetadataPatch.Expectation(queueID: try r.u32(), revision: try r.u64()) }
                return .updateQueueMetadata(name, patch)
            case .send: return .send(try name(), try array(minimumBytes: 7) { try $0.message() }, idSeed: try u64())
            case .sendIdempotent:
                return .sendIdempotent(try name(), try array(minimumBytes: 7) { try $0.message() }, stamp: try stamp(), idSeed: try u64())
            case .receive:
                return .receive(try name(), maxMessages: try int(), visibilityTimeout: try optional { try $0.int() },
                                autoAcknowledge: try bool(), nonceSeed: try u64())
            case .acknowledge: return .acknowledge(try name(), try array(minimumBytes: 28) { try $0.handle() })
            case .changeVisibility: return .changeVisibility(try name(), try handle(), timeout: try int())
            case .changeVisibilityBatch:
                return .changeVisibilityBatch(try name(), try array(minimumBytes: 36) { r throws in
                    VisibilityChange(handle: try r.handle(), timeout: try r.int())
                })
            case .purge: return .purge(queueID: try u32(), below: try u64(), limit: try int())
            case .redrive: return .redrive(try name(), after: try u64(), limit: try int())
            case .tick: return .tick(limit: try int())
            case .retention: return .retention(limit: try int())
            case .createOrUpdateTopic:
                let name = try name()
                let patch = TopicAttributes.Patch(partitions: try optional { try $0.int() }, retention: try optional { try $0.int() },
                                                  maxBytes: try optional { try $0.optional { try $0.int() } })
                return .createOrUpdateTopic(name, patch)
            case .deleteTopic: return .deleteTopic(try name())
            case .produce: return .produce(try produce())
            case .joinGroup:
                return .joinGroup(topic: try name(), group: try name(), memberID: try string(), sessionTimeout: try int())
            case .leaveGroup: return .leaveGroup(topic: try name(), group: try name(), memberID: try string())
            case .expireMembers:
                return .expireMembers(topic: try name(), group: try name(), memberIDs: try array(minimumBytes: 4) { try $0.string() })
            case .commitOffsets: return .commitOffsets(try offsetCommit())
            case .resetOffsets:
                let topic = try name()
                let group = try name()
                let target: OffsetReset
                switch try u8() {
                case 0: target = .earliest
                case 1: target = .latest
                case 2: target = .timestamp(Timestamp(milliseconds: try u64()))
                case let other: throw StorageError(.corruptRecord, "unknown offset reset \(other)")
                }
                return .resetOffsets(topic: topic, group: group, to: target)
            case .initProducer: return .initProducer(transactionalID: try optional { try $0.string() })
            case .commitTransaction:
                let producer = ProducerIdentity(producerID: try u64(), epoch: try u32())
                let sequence = try optional { try $0.u64() }
                let acks = try array(minimumBytes: 32) { r throws in
                    TransactionCommand.Acknowledgement(queue: try r.name(), handle: try r.handle())
                }
                let sends = try array(minimumBytes: 16) { r throws in
                    TransactionCommand.Send(queue: try r.name(), messages: try r.array(minimumBytes: 7) { try $0.message() }, idSeed: try r.u64())
                }
                let produces = try array(minimumBytes: 17) { try $0.produce() }
                let offsets = try array(minimumBytes: 13) { try $0.offsetCommit() }
                return .commitTransaction(TransactionCommand(producer: producer, sequence: sequence, acknowledgements: acks, sends: sends,
                                                             produces: produces, offsets: offsets))
            case .expireProducers: return .expireProducers(idleSeconds: try int(), limit: try int())
            case .setStorageLimit: return .setStorageLimit(bytes: try optional { try $0.u64() })
            case .purgeQueue: return .purgeQueue(try name())
            case .noteDeletedQueue: return .noteDeletedQueue(try name(), keepMilliseconds: try u64())
            }
        }

        mutating func message() throws -> OutgoingMessage {
            let body = try data()
            let priority = try u8()
            let delay = try optional { try $0.int() }
            let groupID = try optional { try $0.string() }
            let deduplicationID = try optional { try $0.string() }
            let attributes: [MessageAttribute] = version < 2 ? [] : try array(minimumBytes: 13) { r -> MessageAttribute in
                let raw = try r.u8()
                guard let kind = MessageAttribute.Kind(rawValue: raw) else { throw StorageError(.corruptRecord, "unknown attribute kind \(raw)") }
                return MessageAttribute(kind: kind, name: try r.string(), dataType: try r.string(), value: try r.data())
            }
            return OutgoingMessage(body: body, priority: priority, delay: delay, groupID: groupID, deduplicationID: deduplicationID,
                                   attributes: attributes)
        }

        mutating func stamp() throws -> ProducerStamp {
            ProducerStamp(producer: ProducerIdentity(producerID: try u64(), epoch: try u32()), firstSequence: try u64())
        }

        mutating func handle() throws -> ReceiptHandle {
            let queue = try u32()
            let sequence = try u64()
            return ReceiptHandle(queue: queue, sequence: sequence, nonce: ReceiptNonce(high: try u64(), low: try u64()))
        }

        mutating func patch() throws -> QueueAttributes.Patch {
            var p = QueueAttributes.Patch()
            p.visibilityTimeout = try optional { try $0.int() }
            p.retention = try optional { try $0.int() }
            p.maxMessageBytes = try optional { try $0.int() }
            p.delay = try optional { try $0.int() }
            p.maxReceiveCount = try optional { try $0.optional { try $0.int() } }
            p.deadLetterQueue = try optional { try $0.optional { try $0.name() } }
            p.fifo = try optional { try $0.bool() }
            p.maxMessages = try optional { try $0.optional { try $0.int() } }
            p.maxBytes = try optional { try $0.optional { try $0.int() } }
            p.contentBasedDeduplication = try optional { try $0.bool() }
            p.overflow = try optional { r throws in
                let raw = try r.string()
                guard let overflow = QueueAttributes.Overflow(rawValue: raw) else { throw StorageError(.corruptRecord, "unknown overflow \(raw)") }
                return overflow
            }
            return p
        }

        mutating func produce() throws -> TopicProduce {
            let topic = try name()
            let topicID = try u32()
            let messages = try array(minimumBytes: 6) { r throws in
                let key = try r.optional { try $0.data() }
                let value = try r.data()
                return TopicMessage(key: key, value: value, partition: try r.optional { try $0.int() })
            }
            let targets = try array(minimumBytes: 8) { try $0.int() }
            let sticky = try optional { try $0.int() }
            return TopicProduce(topic: topic, topicID: topicID, messages: messages, targets: targets, sticky: sticky,
                                stamp: try optional { try $0.stamp() })
        }

        mutating func offsetCommit() throws -> OffsetCommitCommand {
            let topic = try name()
            let group = try name()
            let member = try optional { try $0.string() }
            let generation = try optional { try $0.u32() }
            let entries = try array(minimumBytes: 16) { r throws in (try r.int(), try r.u64()) }
            var offsets = [Int: UInt64]()
            for (partition, offset) in entries {
                guard offsets.updateValue(offset, forKey: partition) == nil else {
                    throw StorageError(.corruptRecord, "partition \(partition) committed twice")
                }
            }
            return OffsetCommitCommand(topic: topic, group: group, memberID: member, generation: generation, offsets: offsets)
        }
    }
}
