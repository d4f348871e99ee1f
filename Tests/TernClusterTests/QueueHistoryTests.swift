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

    @Test func termsOfDifferentGroupsAreApart_butTwoLeadersInOneGroupsTermAreCaught() {
        let h = QueueHistory()
        h.served(by: "n1", term: 2)
        h.served(by: "n2", term: 2, group: 5)
        h.served(by: "n3", term: 2, group: 6)
        #expect(h.check().isEmpty, "term 2 of three groups, one leader each")
        h.served(by: "n1", term: 2, group: 5)
        #expect(h.check() == [.twoLeadersInOneTerm(term: 2, nodes: ["n1", "n2"], group: 5)])
    }

    @Test func twoLeadersInOneTermAreCaught() {
        let h = Self.correct()
        h.served(by: "n3", term: 2)
        #expect(h.check() == [.twoLeadersInOneTerm(term: 2, nodes: ["n2", "n3"])])
    }

    @Test func fifoDeliveriesOutOfSendOrderAreCaught() {
        let h = Self.correct()
        for k in 0..<3 { h.sendAcknowledged("f-\(k)") }
        let r1 = h.now(), c1 = h.now()
        h.delivered("f-0", messageID: "m-f0", receiveCount: 1, invoked: r1, completed: c1, fifo: ("g", 0), ordinal: 0)
        h.delivered("f-2", messageID: "m-f2", receiveCount: 1, invoked: r1, completed: c1, fifo: ("g", 2), ordinal: 1)
        let r2 = h.now(), c2 = h.now()
        h.delivered("f-1", messageID: "m-f1", receiveCount: 1, invoked: r2, completed: c2, fifo: ("g", 1), ordinal: 0)
        #expect(h.check() == [.fifoOrderBroken(group: "g", earlier: 2, later: 1)])
    }

    @Test func fifoRedeliveriesDoNotCountAsReordering() {
        let h = Self.correct()
        for k in 0..<2 { h.sendAcknowledged("f-\(k)") }
        let r1 = h.now(), c1 = h.now()
        h.delivered("f-0", messageID: "m-f0", receiveCount: 1, invoked: r1, completed: c1, fifo: ("g", 0))
        let r2 = h.now(), c2 = h.now()
        h.delivered("f-0", messageID: "m-f0", receiveCount: 2, invoked: r2, completed: c2, fifo: ("g", 0))
        h.delivered("f-1", messageID: "m-f1", receiveCount: 1, invoked: r2, completed: c2, fifo: ("g", 0 + 1), ordinal: 1)
        #expect(h.check().isEmpty)
    }

    static func topicHistory() -> QueueHistory {
        let h = QueueHistory()
        h.produced("a", partition: 0, offset: 0); h.produced("b", partition: 0, offset: 1); h.produced("c", partition: 1, offset: 0)
        h.committed(partition: 0, offset: 1); h.committed(partition: 0, offset: 2)
        return h
    }

    @Test func aCorrectTopicHistoryPasses() {
        #expect(Self.topicHistory().checkTopic(log: [0: [0: "a", 1: "b"], 1: [0: "c"]], stored: [0: 2, 1: nil]).isEmpty)
    }

    @Test func aReusedOffsetALostRecordAndAnUndoneCommitAreCaught() {
        let h = Self.topicHistory()
        h.produced("d", partition: 1, offset: 0)
        let violations = h.checkTopic(log: [0: [0: "a"], 1: [0: "c"]], stored: [0: 1])
        #expect(violations.contains(.offsetReused(partition: 1, offset: 0, values: ["c", "d"])))
        #expect(violations.contains(.recordLost(partition: 0, offset: 1, value: "b", found: nil)))
        #expect(violations.contains(.commitUndone(partition: 0, acknowledged: 2, stored: 1)))
    }
}
