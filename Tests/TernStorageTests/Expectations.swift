import Testing
import TernStorage

/// Expects `body` to throw a ``StorageError`` with code `corruptRecord` whose description
/// contains `mentioning` (when given).
func expectCorruptRecord(
    _ comment: Comment? = nil, mentioning text: String? = nil,
    sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> some Any
) {
    let error = #expect(throws: StorageError.self, comment, sourceLocation: sourceLocation) { _ = try body() }
    guard let error else { return }
    #expect(error.code == .corruptRecord, comment, sourceLocation: sourceLocation)
    if let text {
        #expect(error.description.contains(text), "\(error) should mention \(text)", sourceLocation: sourceLocation)
    }
}
