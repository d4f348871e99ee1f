extension Raft {
    /// The binary encoding of messages, entries, snapshots and configurations (all integers
    /// big-endian).
    ///
    /// A message is `version u8 (1) · kind u8 · from u64 · to u64 · term u64 · body`; an
    /// entry is `index u64 · term u64 · kind u8 · payload length u32 · payload` (21 bytes plus
    /// the payload); a configuration is `voter count u32 · voters u64… · learner count u32 ·
    /// learners u64…` (prefixed by a version byte when it is an entry's payload); a snapshot is
    /// `index u64 · term u64 · configuration · data length u32 · data`. The bodies are listed
    /// in docs/replication.md. Decoding checks every length against the bytes left, so
    /// truncated or hostile input fails with ``ReplicationError/Code/invalidMessage`` without
    /// allocating more than the input's size.
    public enum Codec {
        /// The message format version this build writes and reads.
        public static let version: UInt8 = 1
        /// Bytes of a message before its body.
        public static let messageHeaderBytes = 26

        enum KindTag: UInt8 {
            case preVote = 1, preVoteResponse, vote, voteResponse, append, appendResponse
            case heartbeat, heartbeatResponse, snapshot, timeoutNow, readIndex, readIndexResponse
        }

        /// Encodes `message`.
        public static func encode(_ message: Message) -> [UInt8] {
            var w = Writer()
            w.u8(version)
            switch message.kind {
            case .preVote: w.u8(KindTag.preVote.rawValue)
            case .preVoteResponse: w.u8(KindTag.preVoteResponse.rawValue)
            case .vote: w.u8(KindTag.vote.rawValue)
            case .voteResponse: w.u8(KindTag.voteResponse.rawValue)
            case .append: w.u8(KindTag.append.rawValue)
            case .appendResponse: w.u8(KindTag.appendResponse.rawValue)
            case .heartbeat: w.u8(KindTag.heartbeat.rawValue)
            case .heartbeatResponse: w.u8(KindTag.heartbeatResponse.rawValue)
            case .snapshot: w.u8(KindTag.snapshot.rawValue)
            case .timeoutNow: w.u8(KindTag.timeoutNow.rawValue)
            case .readIndex: w.u8(KindTag.readIndex.rawValue)
            case .readIndexResponse: w.u8(KindTag.readIndexResponse.rawValue)
            }
            w.u64(message.from)
            w.u64(message.to)
            w.u64(message.term)
            switch message.kind {
            case .preVote(let lastIndex, let lastTerm):
                w.u64(lastIndex); w.u64(lastTerm)
            case .preVoteResponse(let granted), .voteResponse(let granted):
                w.u8(granted ? 1 : 0)
            case .vote(let lastIndex, let lastTerm, let transfer):
                w.u64(lastIndex); w.u64(lastTerm); w.u8(transfer ? 1 : 0)
            case .append(let prevIndex, let prevTerm, let entries, let commit):
                w.u64(prevIndex); w.u64(prevTerm); w.u64(commit)
                w.u32(UInt32(entries.count))
                for entry in entries { encode(entry, into: &w) }
            case .appendResponse(let index, let reject, let hintIndex, let hintTerm):
                w.u64(index); w.u8(reject ? 1 : 0); w.u64(hintIndex); w.u64(hintTerm)
            case .heartbeat(let commit, let sequence):
                w.u64(commit); w.u64(sequence)
            case .heartbeatResponse(let sequence):
                w.u64(sequence)
            case .snapshot(let snapshot):
                encode(snapshot, into: &w)
            case .timeoutNow:
                break
            case .readIndex(let id):
                w.u64(id)
            case .readIndexResponse(let id, let index):
                w.u64(id); w.u64(index)
            }
            return w.bytes
        }

        /// Decodes one message that fills `bytes` exactly.
        /// - Throws: ``ReplicationError/Code/unsupportedVersion`` for another version byte,
        ///   ``ReplicationError/Code/invalidMessage`` for anything malformed (truncated, an
        ///   unknown kind, a boolean other than 0/1, an entry kind unknown, trailing bytes).
        public static func decodeMessage(_ bytes: [UInt8]) throws(ReplicationError) -> Message {
            var r = Reader(bytes)
            let v = try r.u8()
            guard v == version else {
                throw ReplicationError(.unsupportedVersion, "message format version \(v); this build reads \(version)")
            }
            guard let tag = KindTag(rawValue: try r.u8()) else {
                throw ReplicationError(.invalidMessage, "unknown message kind \(bytes[1])")
            }
            let from = try r.u64(), to = try r.u64(), term = try r.u64()
            let kind: Message.Kind
            switch tag {
            case .preVote: kind = .preVote(lastIndex: try r.u64(), lastTerm: try r.u64())
            case .preVoteResponse: kind = .preVoteResponse(granted: try r.bool())
            case .vote: kind = .vote(lastIndex: try r.u64(), lastTerm: try r.u64(), transfer: try r.bool())
            case .voteResponse: kind = .voteResponse(granted: try r.bool())
            case .append:
                let prevIndex = try r.u64(), prevTerm = try r.u64(), commit = try r.u64()
                let count = Int(try r.u32())
                guard count <= r.remaining / 21 else {
                    throw ReplicationError(.invalidMessage, "\(count) entries cannot fit in \(r.remaining) bytes")
                }
                var entries: [Entry] = []
                entries.reserveCapacity(count)
                for k in 0..<count {
                    let entry = try decodeEntry(from: &r)
                    if k > 0, entry.index != entries[k - 1].index + 1 {
                        throw ReplicationError(.invalidMessage, "append entries are not consecutive")
                    }
                    entries.append(entry)
                }
                if let first = entries.first, first.index != prevIndex + 1 {
                    throw ReplicationError(.invalidMessage, "the first entry does not follow prevIndex")
                }
                kind = .append(prevIndex: prevIndex, prevTerm: prevTerm, entries: entries, commit: commit)
            case .appendResponse:
                kind = .appendResponse(index: try r.u64(), reject: try r.bool(), hintIndex: try r.u64(), hintTerm: try r.u64())
            case .heartbeat: kind = .heartbeat(commit: try r.u64(), readSequence: try r.u64())
            case .heartbeatResponse: kind = .heartbeatResponse(readSequence: try r.u64())
            case .snapshot: kind = .snapshot(try decodeSnapshot(from: &r))
            case .timeoutNow: kind = .timeoutNow
            case .readIndex: kind = .readIndex(requestID: try r.u64())
            case .readIndexResponse: kind = .readIndexResponse(requestID: try r.u64(), index: try r.u64())
            }
            guard r.remaining == 0 else {
                throw ReplicationError(.invalidMessage, "\(r.remaining) bytes after the message")
            }
            return Message(from: from, to: to, term: term, kind: kind)
        }

        /// Encodes one entry (21 bytes plus its payload).
        public static func encode(_ entry: Entry) -> [UInt8] {
            var w = Writer()
            encode(entry, into: &w)
            return w.bytes
        }

        /// Decodes one entry that fills `bytes` exactly.
        /// - Throws: ``ReplicationError/Code/invalidMessage``.
        public static func decodeEntry(_ bytes: [UInt8]) throws(ReplicationError) -> Entry {
            var r = Reader(bytes)
            let entry = try decodeEntry(from: &r)
            guard r.remaining == 0 else { throw ReplicationError(.invalidMessage, "bytes after the entry") }
            return entry
        }

        /// Encodes a configuration as an entry payload (version byte first).
        public static func encode(_ configuration: Configuration) -> [UInt8] {
            var w = Writer()
            w.u8(version)
            encode(configuration, into: &w)
            return w.bytes
        }

        /// Decodes a configuration entry's payload.
        /// - Throws: ``ReplicationError/Code/invalidMessage``, ``ReplicationError/Code/unsupportedVersion``.
        public static func decodeConfiguration(_ bytes: [UInt8]) throws(ReplicationError) -> Configuration {
            var r = Reader(bytes)
            let v = try r.u8()
            guard v == version else { throw ReplicationError(.unsupportedVersion, "configuration version \(v)") }
            let configuration = try decodeConfiguration(from: &r)
            guard r.remaining == 0 else { throw ReplicationError(.invalidMessage, "bytes after the configuration") }
            return configuration
        }

        /// Encodes snapshot metadata (for a store that keeps it beside its own state).
        public static func encode(_ metadata: SnapshotMetadata) -> [UInt8] {
            var w = Writer()
            w.u8(version)
            w.u64(metadata.index); w.u64(metadata.term)
            encode(metadata.configuration, into: &w)
            return w.bytes
        }

        /// Decodes what ``encode(_:)-(SnapshotMetadata)`` wrote.
        /// - Throws: ``ReplicationError/Code/invalidMessage``, ``ReplicationError/Code/unsupportedVersion``.
        public static func decodeSnapshotMetadata(_ bytes: [UInt8]) throws(ReplicationError) -> SnapshotMetadata {
            var r = Reader(bytes)
            let v = try r.u8()
            guard v == version else { throw ReplicationError(.unsupportedVersion, "snapshot metadata version \(v)") }
            let metadata = SnapshotMetadata(index: try r.u64(), term: try r.u64(), configuration: try decodeConfiguration(from: &r))
            guard r.remaining == 0 else { throw ReplicationError(.invalidMessage, "bytes after the snapshot metadata") }
            return metadata
        }

        // MARK: Pieces

        static func encode(_ entry: Entry, into w: inout Writer) {
            w.u64(entry.index); w.u64(entry.term); w.u8(entry.kind.rawValue)
            w.u32(UInt32(entry.payload.count)); w.bytes.append(contentsOf: entry.payload)
        }

        static func decodeEntry(from r: inout Reader) throws(ReplicationError) -> Entry {
            let index = try r.u64(), term = try r.u64()
            let rawKind = try r.u8()
            guard let kind = Entry.Kind(rawValue: rawKind) else {
                throw ReplicationError(.invalidMessage, "unknown entry kind \(rawKind)")
            }
            return Entry(index: index, term: term, kind: kind, payload: try r.lengthPrefixed())
        }

        static func encode(_ configuration: Configuration, into w: inout Writer) {
            w.u32(UInt32(configuration.voters.count))
            for node in configuration.voters.sorted() { w.u64(node) }
            w.u32(UInt32(configuration.learners.count))
            for node in configuration.learners.sorted() { w.u64(node) }
        }

        static func decodeConfiguration(from r: inout Reader) throws(ReplicationError) -> Configuration {
            func ids(_ r: inout Reader) throws(ReplicationError) -> Set<NodeID> {
                let count = Int(try r.u32())
                guard count <= r.remaining / 8 else { throw ReplicationError(.invalidMessage, "\(count) node ids cannot fit") }
                var result = Set<NodeID>()
                var previous: NodeID?
                for _ in 0..<count {
                    let id = try r.u64()
                    // Canonical form only: ascending, no repeats (so decoding is one-to-one).
                    guard previous.map({ id > $0 }) ?? true else {
                        throw ReplicationError(.invalidMessage, "node ids are not strictly ascending")
                    }
                    previous = id
                    result.insert(id)
                }
                return result
            }
            let voters = try ids(&r)
            let learners = try ids(&r)
            guard voters.isDisjoint(with: learners) else {
                throw ReplicationError(.invalidMessage, "a node is both voter and learner")
            }
            return Configuration(voters: voters, learners: learners)
        }

        static func encode(_ snapshot: Snapshot, into w: inout Writer) {
            w.u64(snapshot.metadata.index); w.u64(snapshot.metadata.term)
            encode(snapshot.metadata.configuration, into: &w)
            w.u32(UInt32(snapshot.data.count)); w.bytes.append(contentsOf: snapshot.data)
        }

        static func decodeSnapshot(from r: inout Reader) throws(ReplicationError) -> Snapshot {
            let index = try r.u64(), term = try r.u64()
            let configuration = try decodeConfiguration(from: &r)
            return Snapshot(metadata: SnapshotMetadata(index: index, term: term, configuration: configuration),
                            data: try r.lengthPrefixed())
        }

        struct Writer {
            var bytes: [UInt8] = []
            mutating func u8(_ v: UInt8) { bytes.append(v) }
            mutating func u32(_ v: UInt32) { for s in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt32(s))) } }
            mutating func u64(_ v: UInt64) { for s in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt64(s))) } }
        }

        struct Reader {
            let bytes: [UInt8]
            var offset = 0
            init(_ bytes: [UInt8]) { self.bytes = bytes }
            var remaining: Int { bytes.count - offset }

            mutating func u8() throws(ReplicationError) -> UInt8 {
                guard remaining >= 1 else { throw truncated(1) }
                defer { offset += 1 }
                return bytes[offset]
            }
            mutating func bool() throws(ReplicationError) -> Bool {
                let v = try u8()
                guard v <= 1 else { throw ReplicationError(.invalidMessage, "boolean byte \(v)") }
                return v == 1
            }
            mutating func u32() throws(ReplicationError) -> UInt32 {
                guard remaining >= 4 else { throw truncated(4) }
                var v: UInt32 = 0
                for k in 0..<4 { v = v << 8 | UInt32(bytes[offset + k]) }
                offset += 4
                return v
            }
            mutating func u64() throws(ReplicationError) -> UInt64 {
                guard remaining >= 8 else { throw truncated(8) }
                var v: UInt64 = 0
                for k in 0..<8 { v = v << 8 | UInt64(bytes[offset + k]) }
                offset += 8
                return v
            }
            mutating func lengthPrefixed() throws(ReplicationError) -> [UInt8] {
                let count = Int(try u32())
                guard count <= remaining else { throw truncated(count) }
                defer { offset += count }
                return Array(bytes[offset..<offset + count])
            }
            func truncated(_ needed: Int) -> ReplicationError {
                ReplicationError(.invalidMessage, "truncated: needed \(needed) bytes at offset \(offset), \(remaining) left")
            }
        }
    }
}
