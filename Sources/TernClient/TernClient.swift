// The Swift client library (see docs/client.md).
