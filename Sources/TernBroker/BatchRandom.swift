/// Random numbers for one batch (message ids of a send, receipt nonces of a receive): SplitMix64
/// (Steele, Lea and Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014)
/// seeded with 64 bits from the system generator.
///
/// The system generator costs a `getrandom` system call per value, which showed up at 5 % of
/// the broker's time receiving batches of 1,000; one call per batch is enough. The values are
/// unique with overwhelming probability, not secret: anyone who sees one receipt handle of a
/// batch holds the others of that batch anyway.
struct BatchRandom: RandomNumberGenerator {
    private var state: UInt64

    init() {
        var system = SystemRandomNumberGenerator()
        state = system.next()
    }

    /// A generator whose values are determined by `seed` (for values derived inside a command).
    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
