import Testing
import TernTestKit

/// The checker of the cluster process tests catches each planted violation and passes a
/// correct history (a checker must be shown to catch a planted bug).
@Suite struct QueueHistoryTests {
    /// A correct history: two sends, one delivered twice (visibility expired) then acked.
    static func correct() -> QueueHistory {
        let h = QueueHistory()
        h.sendAcknowledged("a"); h.sendAcknowledged("b"); h.sendIndeterminate("c")
        h.served(by: "n1", term: 1); h.served(by: "n2", term: 2)
        let r1 = h.now(), c1 = h.now()
        h.delivered("a", messageID: "m-a", receiveCount: 1, invoked: r1, completed: c1)
        let r2 = h.now(), c2 = h.now()
        h.delivered("a", messageID: "m-a", receiveCount: 2, invoked: r2, completed: c2)
        h.delivered("b", messageID: "m-b", receiveCount: 1, invoked: r2, completed: c2)
        h.acknowledged("m-a", completed: h.now())
        return h
    }

    @Test func aCorrectHistoryPasses() {
        #expect(Self.correct().check().isEmpty)
    }

    @Test func aLostSendIsCaught() {
        let h = Self.correct()
        h.sendAcknowledged("lost")
        #expect(h.check() == [.lostSend(body: "lost")])
    }

    @Test func aPhantomDeliveryIsCaught() {
        let h = Self.correct()
        let r = h.now()
        h.delivered("ghost", messageID: "m-g", receiveCount: 1, invoked: r, completed: h.now())
        #expect(h.check() == [.phantomDelivery(body: "ghost")])
    }

    @Test func anIndeterminateSendMayOrMayNotBeDelivered() {
        let h = Self.correct()
        let r = h.now()
        h.delivered("c", messageID: "m-c", receiveCount: 1, invoked: r, completed: h.now())
        #expect(h.check().isEmpty)
    }

    @Test func aDeliveryAfterAnAcknowledgedAckIsCaught() {
        let h = Self.correct()
        let r = h.now()
        h.delivered("a", messageID: "m-a", receiveCount: 3, invoked: r, completed: h.now())
        #expect(h.check().contains { if case .deliveredAfterAck(body: "a", _, _) = $0 { true } else { false } })
    }

    @Test func aReceiveCountGoingBackIsCaught() {
        let h = Self.correct()
        let r = h.now()
        h.delivered("b", messageID: "m-b", receiveCount: 1, invoked: r, completed: h.now())
        #expect(h.check() == [.receiveCountWentBack(messageID: "m-b", earlier: 1, later: 1)])
    }

    @Test func twoLeadersInOneTermAreCaught() {
        let h = Self.correct()
        h.served(by: "n3", term: 2)
        #expect(h.check() == [.twoLeadersInOneTerm(term: 2, nodes: ["n2", "n3"])])
    }
}
