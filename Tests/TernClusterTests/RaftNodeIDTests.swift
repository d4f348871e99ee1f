import Testing
import TernCluster

@Suite struct RaftNodeIDTests {
    @Test func idsAreFNV1aAndNeverZero() {
        // FNV-1a 64 of the empty string is the offset basis; of "a" it is 0xaf63dc4c8601ec8c.
        #expect(RaftNodeID.of("") == 0xcbf2_9ce4_8422_2325)
        #expect(RaftNodeID.of("a") == 0xaf63_dc4c_8601_ec8c)
        #expect(RaftNodeID.of("n1") != RaftNodeID.of("n2"))
    }
}
