internal import CSnappy

/// Snappy block compression (Google's `snappy-c` API).
public enum Snappy {
    /// Compresses `input` into one snappy block.
    public static func compress(_ input: [UInt8]) -> [UInt8] {
        var length = snappy_max_compressed_length(input.count)
        var output = [UInt8](repeating: 0, count: length)
        let status = input.withUnsafeBufferPointer { source in
            output.withUnsafeMutableBufferPointer { target in
                source.withMemoryRebound(to: CChar.self) { source in
                    target.withMemoryRebound(to: CChar.self) { target in
                        snappy_compress(source.baseAddress, source.count, target.baseAddress, &length)
                    }
                }
            }
        }
        precondition(status == SNAPPY_OK, "snappy_compress failed with a buffer of snappy_max_compressed_length")
        output.removeSubrange(length...)
        return output
    }

    /// Decompresses one snappy block.
    /// - Throws: ``StorageError/Code/corruptRecord`` when `input` is not a valid block.
    public static func decompress(_ input: [UInt8]) throws(StorageError) -> [UInt8] {
        try input.withUnsafeBufferPointer { (bytes) throws(StorageError) in try decompress(UnsafeRawBufferPointer(bytes)) }
    }

    /// ``decompress(_:)`` reading `input` in place (no copy of the compressed block).
    /// - Throws: as ``decompress(_:)``.
    public static func decompress(_ input: UnsafeRawBufferPointer) throws(StorageError) -> [UInt8] {
        let source = input.baseAddress.map { $0.assumingMemoryBound(to: CChar.self) }
        var length = 0
        guard snappy_uncompressed_length(source, input.count, &length) == SNAPPY_OK, length <= 1 << 30 else {
            throw StorageError(.corruptRecord, "invalid snappy block header")
        }
        var output = [UInt8](repeating: 0, count: length)
        let status = output.withUnsafeMutableBytes { target in
            snappy_uncompress(source, input.count, target.baseAddress?.assumingMemoryBound(to: CChar.self), &length)
        }
        guard status == SNAPPY_OK, length == output.count else {
            throw StorageError(.corruptRecord, "invalid snappy block")
        }
        return output
    }
}
