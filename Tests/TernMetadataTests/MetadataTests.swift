import Testing
@testable import TernMetadata
