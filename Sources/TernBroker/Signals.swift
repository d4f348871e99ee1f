import Synchronization
import TernCore

/// Wake-ups for long-polling receivers (and the maintenance loop), keyed by queue id.
///
/// Each key has a version that every ``signal(_:)`` increments. A waiter reads the version
/// before it looks for work and passes it to ``wait(for:seen:until:clock:)``, which returns at
/// once when the version moved meanwhile, so a signal between "found nothing" and "start
/// waiting" is never lost.
final class Signals: Sendable {
    private struct Waiter {
        var continuation: CheckedContinuation<Void, Never>
    }

    private struct State {
        var versions: [UInt32: UInt64] = [:]
        var waiters: [UInt32: [UInt64: Waiter]] = [:]
        var nextToken: UInt64 = 0
    }

    private let state = Mutex(State())

    func version(of key: UInt32) -> UInt64 {
        state.withLock { $0.versions[key, default: 0] }
    }

    /// Wakes every waiter of each key.
    func signal(_ keys: some Sequence<UInt32>) {
        let woken: [CheckedContinuation<Void, Never>] = state.withLock { state in
            var woken = [CheckedContinuation<Void, Never>]()
            for key in keys {
                state.versions[key, default: 0] &+= 1
                if let waiters = state.waiters.removeValue(forKey: key) {
                    woken.append(contentsOf: waiters.values.map(\.continuation))
                }
            }
            return woken
        }
        for continuation in woken { continuation.resume() }
    }

    /// Wakes every waiter of every key (the state they wait on was replaced).
    func signalAll() {
        let woken: [CheckedContinuation<Void, Never>] = state.withLock { state in
            for key in Array(state.versions.keys) + Array(state.waiters.keys) { state.versions[key, default: 0] &+= 1 }
            defer { state.waiters.removeAll() }
            return state.waiters.values.flatMap { $0.values.map(\.continuation) }
        }
        for continuation in woken { continuation.resume() }
    }

    /// Suspends until `key` is signalled after version `seen`, until `deadline` by `clock`, or
    /// until the task is cancelled, whichever comes first.
    func wait(for key: UInt32, seen: UInt64, until deadline: Timestamp, clock: any TernClock) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await clock.sleep(until: deadline) }
            group.addTask { await self.waitForSignal(key, seen: seen) }
            await group.next()
            group.cancelAll()
        }
    }

    private func waitForSignal(_ key: UInt32, seen: UInt64) async {
        let token = state.withLock { state -> UInt64 in
            state.nextToken += 1
            return state.nextToken
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state -> Bool in
                    if state.versions[key, default: 0] != seen || Task.isCancelled { return true }
                    state.waiters[key, default: [:]][token] = Waiter(continuation: continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { state in state.waiters[key]?.removeValue(forKey: token) }
            waiter?.continuation.resume()
        }
    }
}
