import Foundation
import Hummingbird
public import TernCore

/// Bearer-token authentication and name-pattern permissions, for the HTTP API (as middleware)
/// and the binary protocol (through ``Authenticator/authorize(token:_:)``).
///
/// Off by default (every request is allowed); one setting turns it on:
///
/// ```yaml
/// auth:
///   enabled: true
///   tokens:
///     - name: operator
///       token: "s3cret-operator-token"
///       permissions: [admin]
///     - name: orders-service
///       token: "s3cret-orders-token"
///       permissions: ["produce:orders-*", "consume:orders-*"]
/// ```
///
/// Tokens are secrets: they are never logged, ``Auth/Token/description`` hides them, and
/// `ternd --print-config` prints them as `"<redacted>"`.
public enum Auth {
    /// What a token may do.
    public enum Permission: Sendable, Hashable, CustomStringConvertible {
        /// Everything: create, update, delete, purge, redrive, and all of produce and consume.
        case admin
        /// Send to queues / produce to topics whose name matches the pattern.
        case produce(NamePattern)
        /// Receive, acknowledge, change visibility, peek (queues); fetch and consumer-group
        /// calls (topics) on names that match the pattern.
        case consume(NamePattern)

        /// Parses `admin`, `produce:PATTERN` or `consume:PATTERN`.
        /// - Throws: a message naming the bad permission.
        public init(parsing text: String) throws(ConfigurationError) {
            if text == "admin" {
                self = .admin
                return
            }
            let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[1].isEmpty else {
                throw ConfigurationError("permission \"\(text)\" must be admin, produce:PATTERN or consume:PATTERN")
            }
            switch parts[0] {
            case "produce": self = .produce(NamePattern(parts[1]))
            case "consume": self = .consume(NamePattern(parts[1]))
            default: throw ConfigurationError("permission \"\(text)\" must be admin, produce:PATTERN or consume:PATTERN")
            }
        }

        public var description: String {
            switch self {
            case .admin: "admin"
            case .produce(let pattern): "produce:\(pattern)"
            case .consume(let pattern): "consume:\(pattern)"
            }
        }
    }

    /// One bearer token and what it may do.
    public struct Token: Sendable, Hashable, CustomStringConvertible {
        /// A name for logs and metrics (never the secret).
        public var name: String
        /// The secret the client sends as `Authorization: Bearer <secret>`.
        public var secret: String
        public var permissions: [Permission]

        public init(name: String, secret: String, permissions: [Permission]) {
            self.name = name
            self.secret = secret
            self.permissions = permissions
        }

        /// The name and permissions, never the secret.
        public var description: String { "\(name) \(permissions)" }
    }

    /// Authentication settings.
    public struct Settings: Sendable, Hashable {
        /// Whether requests must carry a token. Default false (local development).
        public var enabled = false
        /// The accepted tokens.
        public var tokens: [Token] = []

        public init() {}
    }

    /// What a request needs.
    public enum Requirement: Sendable, Hashable {
        /// Nothing (health checks, the console's static page).
        case none
        /// Any valid token (listing and describing, metrics, alerts).
        case authenticated
        case admin
        case produce(String)
        case consume(String)
    }

    /// The requirement of `method path` on Tern's HTTP API (queues, topics, operations).
    public static func requirement(method: String, path: String) -> Requirement {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        let isRead = method == "GET" || method == "HEAD"
        guard let first = segments.first else { return .authenticated }
        switch first {
        case "health":
            return .none
        case "console":
            return .none  // static HTML and script; the data it loads goes through the API with a token
        case "metrics", "alerts":
            return .authenticated
        case "queues", "topics":
            guard segments.count >= 2 else { return isRead ? .authenticated : .admin }
            let name = segments[1]
            guard segments.count >= 3 else { return isRead ? .authenticated : .admin }
            switch segments[2] {
            case "messages" where method == "POST" && segments.count == 3:
                return .produce(name)
            case "messages", "peek", "partitions", "groups", "offsets", "consumers":
                return isRead || method == "DELETE" || method == "PATCH" || method == "POST" || method == "PUT"
                    ? .consume(name) : .admin
            default:
                return isRead ? .authenticated : .admin
            }
        case "producers", "transactions":
            // As over the binary protocol: any valid token; a transaction's per-queue and
            // per-topic permissions are checked against its body by the handler.
            return .authenticated
        case "groups":
            // Consumer-group calls name the topic in the body or below; require consume on any topic.
            return .consume("*")
        default:
            return isRead ? .authenticated : .admin
        }
    }
}

/// A name pattern: `*` matches any run of characters (also none), `?` one character; anything
/// else matches itself (names are case-sensitive).
public struct NamePattern: Sendable, Hashable, CustomStringConvertible {
    public let text: String

    public init(_ text: String) { self.text = text }

    public var description: String { text }

    /// Whether `name` matches (iterative glob with backtracking to the last `*`).
    public func matches(_ name: String) -> Bool {
        let p = Array(text.utf8), s = Array(name.utf8)
        var pi = 0, si = 0
        var star = -1, mark = 0
        while si < s.count {
            if pi < p.count && (p[pi] == UInt8(ascii: "?") || p[pi] == s[si]) {
                pi += 1
                si += 1
            } else if pi < p.count && p[pi] == UInt8(ascii: "*") {
                star = pi
                mark = si
                pi += 1
            } else if star >= 0 {
                pi = star + 1
                mark += 1
                si = mark
            } else {
                return false
            }
        }
        while pi < p.count && p[pi] == UInt8(ascii: "*") { pi += 1 }
        return pi == p.count
    }
}

/// A configuration value that is invalid; the message names it.
public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Checks bearer tokens against ``Auth/Settings``. Shared by the HTTP middleware and the binary
/// protocol's connection handler (which calls ``authorize(token:_:)`` once per request).
public struct Authenticator: Sendable {
    public let settings: Auth.Settings

    public init(settings: Auth.Settings) { self.settings = settings }

    /// The token whose secret is `secret` (compared in time independent of where they differ),
    /// nil when none.
    public func token(forSecret secret: String) -> Auth.Token? {
        let offered = Array(secret.utf8)
        var found: Auth.Token?
        for token in settings.tokens where Self.constantTimeEqual(Array(token.secret.utf8), offered) {
            found = token
        }
        return found
    }

    /// Checks that `token` (the bearer secret, nil when the client sent none) may do what
    /// `requirement` asks.
    /// - Returns: the matching token (nil when authentication is off or not required).
    /// - Throws: ``TernError`` `Unauthorized` (401) for a missing or unknown token,
    ///   `Forbidden` (403) for a token without the permission.
    @discardableResult
    public func authorize(token secret: String?, _ requirement: Auth.Requirement) throws(TernError) -> Auth.Token? {
        guard settings.enabled, requirement != .none else { return nil }
        guard let secret, !secret.isEmpty else {
            throw TernError(.unauthorized, "a bearer token is required (Authorization: Bearer <token>)")
        }
        guard let token = token(forSecret: secret) else {
            throw TernError(.unauthorized, "the bearer token is not valid")
        }
        guard Self.allows(token.permissions, requirement) else {
            throw TernError(.forbidden, "token \(token.name) lacks the permission for this request (\(Self.describe(requirement)))")
        }
        return token
    }

    static func allows(_ permissions: [Auth.Permission], _ requirement: Auth.Requirement) -> Bool {
        if permissions.contains(.admin) { return true }
        switch requirement {
        case .none, .authenticated: return true
        case .admin: return false
        case .produce(let name):
            return permissions.contains { if case .produce(let p) = $0 { p.matches(name) } else { false } }
        case .consume(let name):
            return permissions.contains { if case .consume(let p) = $0 { p.matches(name) } else { false } }
        }
    }

    static func describe(_ requirement: Auth.Requirement) -> String {
        switch requirement {
        case .none: "none"
        case .authenticated: "any valid token"
        case .admin: "admin"
        case .produce(let name): "produce on \(name)"
        case .consume(let name): "consume on \(name)"
        }
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for index in 0..<max(a.count, b.count) {
            difference |= (index < a.count ? a[index] : 0) ^ (index < b.count ? b[index] : 0)
        }
        return difference == 0
    }
}

/// Rejects requests whose bearer token does not allow them (before any handler runs, so a
/// rejected request changes nothing). The failure is thrown as a ``TernError`` and rendered by
/// the error middleware with `WWW-Authenticate` added for 401.
struct AuthMiddleware<Context: RequestContext>: RouterMiddleware {
    let authenticator: Authenticator

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let requirement = Auth.requirement(method: request.method.rawValue, path: request.uri.path)
        var secret: String?
        if let header = request.headers[.authorization] {
            let parts = header.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" {
                secret = String(parts[1]).trimmingCharacters(in: .whitespaces)
            } else {
                secret = ""
            }
        }
        try authenticator.authorize(token: secret, requirement)
        return try await next(request, context)
    }
}
