import Foundation
import TernTestKit
import Testing

/// Debian's `chromium`, when installed (`make test` installs it through `.ci/run`).
enum Chromium {
    static var path: String? {
        for candidate in ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
        where FileManager.default.isExecutableFile(atPath: candidate) {
            return candidate
        }
        return nil
    }

    /// The DOM of `url` after its scripts ran (`--dump-dom` with a virtual-time budget: timers
    /// run on virtual time, which pauses while requests are in flight).
    static func dumpDOM(_ url: String, budgetMilliseconds: Int = 5000) async throws -> String {
        let scratch = try TemporaryDirectory(prefix: "tern-chromium")
        defer { scratch.remove() }
        let process = try ChildProcess(executable: path!, arguments: [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
            "--user-data-dir=\(scratch.appending("profile"))", "--virtual-time-budget=\(budgetMilliseconds)", "--dump-dom", url,
        ], standardOutput: scratch.appending("dom"))
        let status = await process.waitForExit()
        let dom = String(decoding: FileManager.default.contents(atPath: scratch.appending("dom")) ?? Data(), as: UTF8.self)
        guard status == 0 else { throw TernProcess.Failure("chromium exited with \(status); DOM: \(dom.prefix(500))") }
        return dom
    }
}

/// Reads `data-field` cells from the console's DOM.
struct ConsoleDOM {
    let html: String

    /// The inner text of the `<td data-field="field">` in the row whose opening tag contains `row`.
    func field(row: String, _ field: String) -> String? {
        guard let rowStart = html.range(of: row) else { return nil }
        let rest = html[rowStart.upperBound...]
        let rowEnd = rest.range(of: "</tr>")?.lowerBound ?? rest.endIndex
        let rowText = rest[..<rowEnd]
        guard let cell = rowText.range(of: "data-field=\"\(field)\">") else { return nil }
        let value = rowText[cell.upperBound...]
        return String(value[..<(value.range(of: "</td>")?.lowerBound ?? value.endIndex)])
    }

    func count(of text: String) -> Int { html.components(separatedBy: text).count - 1 }
}

extension IntegrationTests {
    @Suite struct ConsoleTests {
        @Test(.enabled(if: Chromium.path != nil,
                       "needs Debian's chromium (apt-get install chromium; .ci/run installs it) to drive the console headless"))
        func console_showsTheSameNumbersAsTheAPI_inHeadlessChromium() async throws {
            try await withServer(["--binary", "127.0.0.1:0", "--no-sync"]) { server, _ in
                let api = QueueAPI(baseURL: server.baseURL)
                let http = api.http
                _ = try await api.createQueue("orders")
                _ = try await api.createQueue("audit")
                for (n, priority) in [(1, 1), (2, 7), (3, 3), (4, 0)] {
                    _ = try await http.request(.POST, api.url("orders", "/messages"), json: ["message": "order \(n)", "priority": priority])
                }
                _ = try await http.request(.POST, api.url("orders", "/messages"), json: ["message": "later", "delay": 600])
                let received = try await api.receive("orders", batchSize: 1).messages
                #expect(received.map(\.body) == ["order 2"])
                for n in 0..<7 { _ = try await api.send("audit", "audit <\(n)> & \"quoted\"") }

                // A topic with two partitions and a consumer group that committed part of it.
                _ = try await http.request(.PUT, "\(server.baseURL)/topics/clicks", json: ["partitions": 2])
                let produced = (0..<10).map { ["value": "click \($0)", "partition": $0 % 2] as [String: Any] }
                _ = try await http.request(.POST, "\(server.baseURL)/topics/clicks/messages", json: ["messages": produced])
                let (_, joinBody) = try await http.request(.POST, "\(server.baseURL)/topics/clicks/groups/g1/members", json: [:])
                let join = try HTTP.object(joinBody)
                let (commitStatus, commitBody) = try await http.request(
                    .POST, "\(server.baseURL)/topics/clicks/groups/g1/offsets",
                    json: ["member_id": join["member_id"] ?? "", "generation": join["generation"] ?? 0, "offsets": ["0": 2, "1": 5]])
                #expect(commitStatus == 200 || commitStatus == 204, "\(text(commitBody))")

                // Overview: every queue's counts as the API reports them.
                let overview = ConsoleDOM(html: try await Chromium.dumpDOM("\(server.baseURL)/console#/"))
                #expect(overview.html.contains("id=\"status\">updated"), "the page rendered: \(overview.html.prefix(2000))")
                for queue in ["orders", "audit"] {
                    let counts = try #require(try await api.describe(queue)["messages"] as? [String: Any])
                    for field in ["ready", "in_flight", "delayed", "total"] {
                        #expect(overview.field(row: "data-queue=\"\(queue)\"", field) == "\(int(counts[field]) ?? -1)", "\(queue).\(field)")
                    }
                }
                #expect(overview.field(row: "data-topic=\"clicks\"", "messages") == "10")
                #expect(overview.field(row: "data-topic=\"clicks\"", "high_watermarks") == "5 5")

                // Queue page: counts, the chart, and the peek in delivery order (escaped, not received).
                let page = ConsoleDOM(html: try await Chromium.dumpDOM("\(server.baseURL)/console#/queue/orders"))
                #expect(page.field(row: "data-counts=\"orders\"", "ready") == "3")
                #expect(page.field(row: "data-counts=\"orders\"", "in_flight") == "1")
                #expect(page.field(row: "data-counts=\"orders\"", "delayed") == "1")
                let series = ["ready", "in_flight", "delayed", "sent", "acked"].map { page.count(of: "<polyline data-series=\"\($0)\"") }
                #expect(series == [1, 1, 1, 1, 1], "depth (3 series) and rate (2 series) charts")
                let peeked = (0..<3).compactMap { page.field(row: "data-peek=\"\($0)\"", "body") }
                #expect(peeked == ["<pre>order 3</pre>", "<pre>order 1</pre>", "<pre>order 4</pre>"])
                #expect(page.html.contains("id=\"purge\"") && page.html.contains("id=\"redrive\""))
                let audit = ConsoleDOM(html: try await Chromium.dumpDOM("\(server.baseURL)/console#/queue/audit"))
                #expect(audit.field(row: "data-peek=\"0\"", "body") == "<pre>audit &lt;0&gt; &amp; \"quoted\"</pre>")
                let after = try #require(try await api.describe("orders")["messages"] as? [String: Any])
                #expect(int(after["ready"]) == 3, "peeking received nothing")

                // Group page: lag per partition as the API reports it.
                let group = ConsoleDOM(html: try await Chromium.dumpDOM("\(server.baseURL)/console#/group/clicks/g1"))
                let (_, groupBody) = try await http.request(.GET, "\(server.baseURL)/topics/clicks/groups/g1")
                let described = try HTTP.object(groupBody)
                let partitions = try #require(described["partitions"] as? [[String: Any]])
                for partition in partitions {
                    let p = int(partition["partition"]) ?? -1
                    #expect(group.field(row: "data-partition=\"\(p)\"", "lag") == "\(int(partition["lag"]) ?? -1)", "partition \(p)")
                }
                #expect(group.field(row: "data-partition=\"0\"", "lag") == "3")
                #expect(group.field(row: "data-partition=\"1\"", "lag") == "0")
                #expect(group.html.contains("data-field=\"lag\">3</b>"))
            }
        }
    }
}
