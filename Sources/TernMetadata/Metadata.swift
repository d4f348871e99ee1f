/// The cluster's catalogue as a pure state machine: nodes, queues, topics, their partitions and
/// each replication group's replica set, changed only by applying catalogue commands committed
/// in the controllers' Raft group (CLUSTER.md, "metadata"; KRaft, KIP-500/KIP-595).
public enum Metadata {}
