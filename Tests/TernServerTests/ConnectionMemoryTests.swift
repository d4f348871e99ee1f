import NIOCore
import NIOEmbedded
import Testing
import TernCore
import TernServer
import TernWire

/// Issue 13, item 4 (decisions 120 and 121): what a binary connection keeps after a large frame,
/// and when the heap is given back. The memory figures themselves are measured by
/// `tools/connection-memory.sh` (docs/performance.md), not asserted here.
@Suite struct ConnectionMemoryTests {
    static func frame(payloadBytes: Int, correlationID: UInt32 = 1) -> WireFrame {
        var payload = ByteBuffer()
        payload.writeRepeatingByte(0x5A, count: payloadBytes)
        return WireFrame(apiKey: 3, apiVersion: 0, correlationID: correlationID, payload: payload)
    }

    /// NIO's `MessageToByteHandler` kept one buffer per channel that grew to the largest frame
    /// and never shrank: every connection that once answered a 1 MiB receive held 1 MiB.
    @Test func frameWriter_afterALargeFrame_writesTheNextSmallFrameInABufferOfItsOwnSize() throws {
        let channel = EmbeddedChannel(handler: WireFrameWriter())
        defer { _ = try? channel.finish() }
        let large = Self.frame(payloadBytes: 1 << 20, correlationID: 1)
        try channel.writeAndFlush(large).wait()
        var written = ByteBuffer()
        while var part = try channel.readOutbound(as: ByteBuffer.self) { written.writeBuffer(&part) }
        #expect(written == large.bytes, "the large frame arrives whole")

        let small = Self.frame(payloadBytes: 100, correlationID: 2)
        try channel.writeAndFlush(small).wait()
        let buffer = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil, "a small frame is one buffer")
        #expect(buffer == small.bytes)
        // The allocator rounds up to a power of two (128 bytes here); the kept buffer was 1 MiB.
        #expect(buffer.capacity < 4096, "no buffer of the earlier frame's size is reused (\(buffer.capacity) bytes)")
    }

    @Test func frameWriter_largePayload_followsItsHeaderUncopied() {
        let large = Self.frame(payloadBytes: WireFrameWriter.copyLimit + 1)
        let (head, payload) = WireFrameWriter.buffers(for: large, allocator: ByteBufferAllocator())
        #expect(head.readableBytes == WireFrame.sizeFieldBytes + WireFrame.headerBytes)
        #expect(payload == large.payload)
        var joined = head
        var rest = payload ?? ByteBuffer()
        joined.writeBuffer(&rest)
        #expect(joined == large.bytes)
        // Same storage: the payload's bytes were not copied.
        let same = payload.map { written in
            written.withUnsafeReadableBytes { a in large.payload.withUnsafeReadableBytes { b in a.baseAddress == b.baseAddress } }
        }
        #expect(same == true)

        let atLimit = Self.frame(payloadBytes: WireFrameWriter.copyLimit)
        let (whole, none) = WireFrameWriter.buffers(for: atLimit, allocator: ByteBufferAllocator())
        #expect(none == nil && whole == atLimit.bytes)
    }

    // MARK: MemoryTrimmer.Policy

    static func sample(resident: Int, allocated: Int) -> MemoryTrimmer.Sample {
        MemoryTrimmer.Sample(residentAnonymousBytes: resident, allocatedBytes: allocated)
    }

    @Test func trimPolicy_trimsOnceResidentButUnusedHeapGrewByTheThreshold() {
        let mib = 1 << 20
        var policy = MemoryTrimmer.Policy(minimumRetainedBytes: 4 * mib)
        func trims(_ sample: MemoryTrimmer.Sample) -> Bool { policy.onSample(sample) }
        #expect(!trims(Self.sample(resident: 10 * mib, allocated: 8 * mib)), "the first sample sets the floor (2 MiB)")
        #expect(!trims(Self.sample(resident: 200 * mib, allocated: 197 * mib)), "busy: 3 MiB unused, below 2 + 4")
        #expect(trims(Self.sample(resident: 200 * mib, allocated: 10 * mib)), "connections closed: 190 MiB unused")
        policy.onTrimmed(Self.sample(resident: 14 * mib, allocated: 10 * mib))
        #expect(policy.floor == 4 * mib, "after the trim, what it could not release is the floor")
        #expect(!trims(Self.sample(resident: 14 * mib, allocated: 10 * mib)), "nothing new to release: no trim again")
        #expect(!trims(Self.sample(resident: 17 * mib, allocated: 10 * mib)), "3 MiB more: below the threshold")
        #expect(trims(Self.sample(resident: 18 * mib, allocated: 10 * mib)), "4 MiB more: trim")
    }

    @Test func trimPolicy_floorFallsWhenFreedMemoryIsReused() {
        let mib = 1 << 20
        var policy = MemoryTrimmer.Policy(minimumRetainedBytes: 4 * mib)
        func trims(_ sample: MemoryTrimmer.Sample) -> Bool { policy.onSample(sample) }
        _ = policy.onSample(Self.sample(resident: 20 * mib, allocated: 10 * mib))
        // New allocations reused the free resident chunks: unused fell to 1 MiB.
        #expect(!trims(Self.sample(resident: 20 * mib, allocated: 19 * mib)))
        #expect(policy.floor == 1 * mib)
        // Freed again: 5 MiB unused, 4 above the new floor.
        #expect(trims(Self.sample(resident: 20 * mib, allocated: 15 * mib)))
    }

    @Test func memoryTrimmer_readsThisProcess() throws {
        guard MemoryTrimmer.isSupported else { return }
        let sample = try #require(MemoryTrimmer.sample())
        #expect(sample.residentAnonymousBytes > 0 && sample.allocatedBytes > 0)
    }
}
