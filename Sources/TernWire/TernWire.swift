// The binary wire protocol (see docs/protocol.md).
