import AsyncHTTPClient
import Foundation
import NIOCore
import NIOPosix
import Testing
import TernTestKit
#if canImport(Glibc)
import Glibc
#endif

extension IntegrationTests {
    /// Issue 14 against the real `ternd`: the open-file limit, the connection cap and its
    /// reserve, the timeouts, a full file system, and cross-origin requests from Chromium.
    @Suite struct HardeningTests {
        /// A TCP connection that sends `text` (if any) and reports whether the server closed it
        /// within `timeout`, with what it answered.
        static func exchange(port: Int, _ text: String, timeout: Duration = .seconds(15)) async throws -> (answer: String, closed: Bool) {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "127.0.0.1", port: port) { channel in
                    channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
                }
            let underlying = channel.channel
            return try await channel.executeThenClose { inbound, outbound in
                // A connection the server closes at once fails the write: closed.
                if !text.isEmpty {
                    do { try await outbound.write(ByteBuffer(string: text)) } catch { return ("", true) }
                }
                let timer = Task { () async throws -> Bool in
                    try await Task.sleep(for: timeout)
                    underlying.close(promise: nil)
                    return true
                }
                var received = ByteBuffer()
                do { for try await chunk in inbound { received.writeImmutableBuffer(chunk) } } catch {}
                timer.cancel()
                let closed = (try? await timer.value) != true
                return (String(decoding: received.readableBytesView, as: UTF8.self), closed)
            }
        }

        /// Runs `path arguments` to the end; returns its exit status.
        static func runTool(_ path: String, _ arguments: [String]) throws -> Int32 {
            try ChildProcess.run(path, arguments).status
        }

        @Test(.timeLimit(.minutes(2)))
        func ternd_raisesTheOpenFileLimitToTheHardLimit_andLogsIt() async throws {
            let root = try TemporaryDirectory(prefix: "tern-nofile")
            defer { root.remove() }
            var limit = rlimit()
            getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
            let hard = UInt64(limit.rlim_max)
            try #require(hard > 1024, "the hard limit must be above 1024 for this test")
            let port = try TernProcess.freePort()
            let log = root.appending("ternd.log")
            FileManager.default.createFile(atPath: log, contents: nil)
            guard FileManager.default.isExecutableFile(atPath: "/usr/bin/prlimit") else {
                print("SKIPPED open-file limit test: /usr/bin/prlimit is missing")
                return
            }
            // ternd starts with a soft limit of 1024 (a common default) and the runner's hard limit.
            let process = try ChildProcess(executable: "/usr/bin/prlimit", arguments: [
                "--nofile=1024:\(hard)", try TernBinaries.path(of: "ternd"), "--data-dir", root.appending("data"),
                "--http", "127.0.0.1:\(port)", "--binary", "127.0.0.1:0",
            ], standardOutput: log, standardError: log)
            defer {
                process.send(SIGTERM)
                process.waitUntilExit()
            }
            var ready = false
            for _ in 0..<400 where !ready {
                if let (status, _) = try? await HTTP().request(.GET, "http://127.0.0.1:\(port)/health", timeout: .seconds(1)), status == 200 {
                    ready = true
                } else {
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            try #require(ready, "ternd did not start: \(String(decoding: FileManager.default.contents(atPath: log) ?? Data(), as: UTF8.self))")
            let limits = try String(contentsOfFile: "/proc/\(process.processIdentifier)/limits", encoding: .utf8)
            let line = try #require(limits.split(separator: "\n").first { $0.hasPrefix("Max open files") })
            let figures = line.split(separator: " ").compactMap { UInt64($0) }
            #expect(figures.first == hard, "soft limit raised to the hard limit: \(line)")
            let text = String(decoding: FileManager.default.contents(atPath: log) ?? Data(), as: UTF8.self)
            #expect(text.contains("open-file limit") && text.contains("tern.nofile=\(hard)"), "\(text.suffix(2000))")
        }

        @Test(.timeLimit(.minutes(2)))
        func connectionCap_idleSocketsCannotStopHealthChecks() async throws {
            try await withServer(["--max-connections", "10"]) { server, _ in
                let http = HTTP()
                _ = try await http.request(.PUT, server.baseURL + "/queues/q", json: [:])
                // Ten idle sockets take every normal slot.
                var idle: [any Channel] = []
                for _ in 0..<10 {
                    idle.append(try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: server.port).get())
                }
                try await Task.sleep(for: .milliseconds(200))  // accepted and counted
                let health = try await Self.exchange(port: server.port, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                #expect(health.answer.hasPrefix("HTTP/1.1 200"), "a reserve connection answers /health: \(health.answer)")
                let busy = try await Self.exchange(port: server.port, "GET /queues HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                #expect(busy.answer.hasPrefix("HTTP/1.1 503") && busy.answer.contains("Overloaded"), "\(busy.answer)")
                for channel in idle { try? await channel.close() }
                try await Task.sleep(for: .milliseconds(200))
                let (status, _) = try await http.request(.GET, server.baseURL + "/queues")
                #expect(status == 200, "slots free again once the idle sockets close")
            }
        }

        @Test(.timeLimit(.minutes(2)))
        func slowHeaderAndIdleConnections_areClosed_onTheConfiguredTimeouts() async throws {
            let binaryPort = try TernProcess.freePort()
            // Short, but long enough for a loaded machine to write a request after connecting.
            try await withServer(["--header-read-timeout", "1", "--http-idle-timeout", "2", "--binary-idle-timeout", "1",
                                  "--binary", "127.0.0.1:\(binaryPort)"]) { server, _ in
                let started = ContinuousClock.now
                let slow = try await Self.exchange(port: server.port, "GET /health HTTP/1.1\r\nHo")
                #expect(slow.closed && slow.answer.isEmpty, "slow header closed unanswered: \(slow.answer)")
                let keepAlive = try await Self.exchange(port: server.port, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                #expect(keepAlive.closed && keepAlive.answer.hasPrefix("HTTP/1.1 200"), "answered, then closed when idle")
                let binary = try await Self.exchange(port: binaryPort, "")
                #expect(binary.closed, "an idle binary connection is closed")
                #expect(ContinuousClock.now - started < .seconds(40))
            }
        }

        /// A full file system (a small tmpfs, where mounting is allowed): start-up fails with one
        /// clear line (never SIGBUS); once running, sends answer 507 (not 500) while it is full,
        /// and work again once space is freed.
        @Test(.timeLimit(.minutes(3)))
        func fullFileSystem_isAFullMap_andStartUpFailsClearly() async throws {
            let root = try TemporaryDirectory(prefix: "tern-enospc")
            defer { root.remove() }
            let mountPoint = root.appending("fs")
            try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
            let mount = try Self.runTool("/bin/mount", ["-t", "tmpfs", "-o", "size=8m", "tmpfs", mountPoint])
            guard mount == 0 else {
                print("SKIPPED full-file-system test: cannot mount a tmpfs here (needs root and mount rights)")
                return
            }
            defer { _ = try? Self.runTool("/bin/umount", ["-l", mountPoint]) }
            let filler = mountPoint + "/filler"
            func fill() throws { _ = try Self.runTool("/bin/sh", ["-c", "cat /dev/zero > \(filler) 2>/dev/null; true"]) }

            // 1. Start-up on a full file system.
            try fill()
            let data = mountPoint + "/data"
            let server = try TernProcess(dataDirectory: data, logFile: root.appending("ternd.log"))
            do {
                try await server.start(timeout: .seconds(20))
                Issue.record("ternd started on a full file system")
                await server.kill9()
            } catch let failure as TernProcess.Failure {
                #expect(failure.description.contains("status 1"), "a clean exit, not a signal: \(failure.description.prefix(600))")
                #expect(failure.description.contains("is full"), "\(failure.description.suffix(800))")
            }

            // 2. Running: the file system fills up.
            try FileManager.default.removeItem(atPath: filler)
            try await server.start()
            let http = HTTP()
            _ = try await http.request(.PUT, server.baseURL + "/queues/q", json: [:])
            let (first, _) = try await http.request(.POST, server.baseURL + "/queues/q/messages", json: ["message": "before"])
            #expect(first == 201)
            try fill()
            let body = String(repeating: "x", count: 200_000)
            var refused: (Int, Data)?
            for _ in 0..<20 {
                let reply = try await http.request(.POST, server.baseURL + "/queues/q/messages", json: ["message": body])
                if reply.0 != 201 { refused = reply; break }
            }
            let (status, reply) = try #require(refused, "sends kept succeeding on a full file system")
            #expect(status == 507 && HTTP.errorCode(reply) == "StorageFull", "\(status) \(String(decoding: reply, as: UTF8.self))")
            #expect(await server.isRunning)

            // 3. Space freed: sends work again.
            try FileManager.default.removeItem(atPath: filler)
            let (after, _) = try await http.request(.POST, server.baseURL + "/queues/q/messages", json: ["message": "after"])
            #expect(after == 201)
            await server.terminate()
        }

        /// The data file growing into a full file system (issue 14, item 5): free space is
        /// checked before the file grows, so sends are refused with 507 while room is left for an
        /// ack, a purge, a delete and a restart (which needs 1 MiB free), and sends resume after.
        @Test(.timeLimit(.minutes(3)))
        func sendsFillingTheFileSystem_stopWithRoomForDeletesAndARestart() async throws {
            let root = try TemporaryDirectory(prefix: "tern-enospc")
            defer { root.remove() }
            let mountPoint = root.appending("fs")
            try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
            guard try Self.runTool("/bin/mount", ["-t", "tmpfs", "-o", "size=16m", "tmpfs", mountPoint]) == 0 else {
                print("SKIPPED file-system growth test: cannot mount a tmpfs here (needs root and mount rights)")
                return
            }
            defer { _ = try? Self.runTool("/bin/umount", ["-l", mountPoint]) }
            let server = try TernProcess(dataDirectory: mountPoint + "/data", logFile: root.appending("ternd.log"))
            try await server.start()
            let api = QueueAPI(baseURL: server.baseURL)
            _ = try await api.createQueue("q")
            var random = SeededGenerator(seed: 16)
            let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".utf8)
            func body() -> String { String(decoding: (0..<100_000).map { _ in alphabet[Int(random.next() % 62)] }, as: UTF8.self) }
            var refused: (status: Int, body: Data)?
            for _ in 0..<400 {
                let answer = try await api.send("q", body())
                if answer.status != 201 { refused = answer; break }
            }
            let (status, reply) = try #require(refused, "40 MB of sends fitted into a 16 MiB file system")
            #expect(status == 507 && HTTP.errorCode(reply) == "StorageFull", "\(status) \(text(reply))")
            let (_, received, _) = try await api.receive("q", batchSize: 1)
            #expect(try await api.acknowledge("q", received[0].receiptHandle) == 204, "an ack on a full file system")
            #expect(try await api.purge("q").status == 200, "a purge on a full file system")
            await server.terminate()
            try await server.start()   // a restart on the full file system
            _ = try await api.createQueue("other")
            #expect(try await api.delete("other") == 204)
            var resumed = 0
            let deadline = ContinuousClock.now + .seconds(20)
            while resumed == 0 && ContinuousClock.now < deadline {
                if try await api.send("q", "after").status == 201 { resumed += 1 } else { try await Task.sleep(for: .milliseconds(200)) }
            }
            #expect(resumed == 1, "sends resume once the purge is swept")
            await server.terminate()
        }

        /// A page on another origin tries to purge a queue and inject a message from headless
        /// Chromium (both as simple `no-cors` requests that need no preflight); the broker refuses
        /// both, and a request with a foreign `Host` (DNS rebinding) is refused too.
        @Test(.timeLimit(.minutes(3)),
              .enabled(if: Chromium.path != nil, "needs Debian's chromium (make test-tools installs it) to send cross-origin requests"))
        func crossOriginPage_inChromium_cannotPurgeOrInject() async throws {
            try await withServer { server, root in
                let http = HTTP()
                _ = try await http.request(.PUT, server.baseURL + "/queues/victim", json: [:])
                _ = try await http.request(.POST, server.baseURL + "/queues/victim/messages", json: ["message": "keep"])
                // The attacker's page, from another origin (a file: page, whose origin is opaque).
                let site = root.appending("site")
                try FileManager.default.createDirectory(atPath: site, withIntermediateDirectories: true)
                let page = """
                    <!doctype html><html><body><p id="out">pending</p><script>
                    const base = "http://127.0.0.1:\(server.port)";
                    Promise.allSettled([
                      fetch(base + "/queues/victim/purge", {method: "POST", mode: "no-cors"}),
                      fetch(base + "/queues/victim/messages", {method: "POST", mode: "no-cors",
                        headers: {"Content-Type": "text/plain"}, body: JSON.stringify({message: "injected"})}),
                    ]).then(() => { document.getElementById("out").textContent = "done"; });
                    </script></body></html>
                    """
                try page.write(toFile: site + "/attack.html", atomically: true, encoding: .utf8)
                let dom = try await Chromium.dumpDOM("file://" + site + "/attack.html")
                #expect(dom.contains("done"), "the page ran its requests: \(dom.prefix(300))")
                let (_, described) = try await http.request(.GET, server.baseURL + "/queues/victim")
                let messages = try HTTP.object(described)["messages"] as? [String: Any]
                #expect((messages?["total"] as? Int) == 1, "neither purged nor injected: \(String(decoding: described, as: UTF8.self))")

                let rebound = try await Self.exchange(port: server.port,
                    "POST /queues/victim/purge HTTP/1.1\r\nHost: attacker.example:\(server.port)\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                #expect(rebound.answer.hasPrefix("HTTP/1.1 403") && rebound.answer.contains("HostNotAllowed"), "\(rebound.answer)")
            }
        }
    }
}
