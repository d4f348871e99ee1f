import Foundation
import HTTPTypes
import Hummingbird
import TernCore

/// Browser-facing protections of the HTTP API: cross-origin request refusal, the `Host`
/// allow-list, CORS, and the reserve connections of the connection cap.
extension HTTPAPI {
    /// Whether `host` (a `Host` header value, with or without a port) names the loopback
    /// interface: `localhost`, a name under `.localhost` (RFC 6761 §6.3), `127.0.0.0/8` or `[::1]`.
    static func isLoopback(host: String) -> Bool {
        let name = hostName(host).lowercased()
        if name == "localhost" || name.hasSuffix(".localhost") || name == "::1" { return true }
        let octets = name.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets[0] == "127" && octets.allSatisfy { UInt8($0) != nil }
    }

    /// The name part of a `Host` value: `[::1]:7080` → `::1`, `localhost:7080` → `localhost`.
    static func hostName(_ host: String) -> String {
        if host.hasPrefix("[") {
            guard let end = host.firstIndex(of: "]") else { return host }
            return String(host[host.index(after: host.startIndex)..<end])
        }
        if let colon = host.lastIndex(of: ":"), host.firstIndex(of: ":") == colon { return String(host[..<colon]) }
        return host
    }

    /// Whether a listener on `address` (a host name or IP) is bound to loopback only.
    public static func isLoopbackAddress(_ address: String) -> Bool {
        isLoopback(host: address.contains(":") && !address.hasPrefix("[") ? "[\(address)]" : address)
    }

    /// The refusal of a cross-origin state-changing request, nil when it may proceed: Go 1.25's
    /// `http.CrossOriginProtection` (safe methods pass; `Sec-Fetch-Site` `same-origin` or `none`
    /// passes, other values are refused; without it, an `Origin` whose host differs from `Host`
    /// is refused; a trusted origin always passes; no header at all passes: not a browser).
    static func crossOriginRefusal(method: String, secFetchSite: String?, origin: String?, host: String?,
                                   trustedOrigins: Set<String>) -> TernError? {
        if ["GET", "HEAD", "OPTIONS"].contains(method) { return nil }
        let trusted = origin.map { trustedOrigins.contains($0) } ?? false
        if let site = secFetchSite?.lowercased(), !site.isEmpty {
            if site == "same-origin" || site == "none" || trusted { return nil }
            return TernError(.crossOriginRequest, "cross-origin \(method) refused (Sec-Fetch-Site: \(site)); list the origin in --cors-origins to allow it")
        }
        guard let origin, !origin.isEmpty else { return nil }
        if trusted { return nil }
        if let schemeEnd = origin.range(of: "://") {
            let originHost = origin[schemeEnd.upperBound...].split(separator: "/", maxSplits: 1).first.map(String.init) ?? ""
            if let host, originHost.lowercased() == host.lowercased() { return nil }
        }
        return TernError(.crossOriginRequest, "cross-origin \(method) from \(origin) refused; list the origin in --cors-origins to allow it")
    }
}

/// Refuses, before anything else runs: requests to a loopback listener whose `Host` is not
/// allowed (DNS rebinding), cross-origin state-changing requests from browsers, and requests
/// of a reserve connection that are neither health checks, metrics and alerts nor admin.
struct BrowserProtectionMiddleware<Context: RequestContext>: RouterMiddleware {
    let settings: HTTPAPI.Settings
    let authenticator: Authenticator?
    let trustedOrigins: Set<String>

    init(settings: HTTPAPI.Settings, auth: Auth.Settings) {
        self.settings = settings
        self.authenticator = auth.enabled ? Authenticator(settings: auth) : nil
        self.trustedOrigins = Set(settings.corsOrigins)
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let host = request.head.authority
        if settings.enforceAllowedHosts {
            let allowed = host.map { host in
                HTTPAPI.isLoopback(host: host) || settings.allowedHosts.contains { $0.lowercased() == HTTPAPI.hostName(host).lowercased() }
            } ?? false
            guard allowed else {
                throw TernError(.hostNotAllowed, "Host \(host ?? "(none)") is not allowed on this listener; add it with --allowed-hosts")
            }
        }
        if let refusal = HTTPAPI.crossOriginRefusal(
            method: request.method.rawValue, secFetchSite: request.headers[HTTPField.Name("Sec-Fetch-Site")!],
            origin: request.headers[HTTPField.Name("Origin")!], host: host, trustedOrigins: trustedOrigins) {
            throw refusal
        }
        if request.headers[HTTPField.Name(HTTP1RequestGuard.reserveHeader)!] != nil && !mayUseReserve(request) {
            throw TernError(.overloaded, "too many open connections; this one serves only /health, /metrics, /alerts and admin requests")
        }
        return try await next(request, context)
    }

    /// Health checks, metrics, alerts, and admin requests (a token with `admin` when
    /// authentication is on; an admin route when it is off).
    func mayUseReserve(_ request: Request) -> Bool {
        let path = request.uri.path
        if request.method == .get && ["/health", "/metrics", "/alerts"].contains(path) { return true }
        if let authenticator {
            let header = request.headers[.authorization] ?? ""
            let parts = header.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "bearer",
                  let token = authenticator.token(forSecret: String(parts[1]).trimmingCharacters(in: .whitespaces))
            else { return false }
            return token.permissions.contains(.admin)
        }
        return Auth.requirement(method: request.method.rawValue, path: path) == .admin
    }
}

/// CORS for the origins of ``HTTPAPI/Settings/corsOrigins`` (off when empty): answers
/// preflights (`OPTIONS` with `Access-Control-Request-Method`) with `204` and adds
/// `Access-Control-Allow-Origin` to every answer for a listed origin. No credentials (tokens
/// travel in `Authorization`, which the preflight allows).
struct CORSMiddleware<Context: RequestContext>: RouterMiddleware {
    let origins: Set<String>
    /// How long browsers may cache a preflight answer, in seconds.
    static var maxAgeSeconds: Int { 600 }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let origin = request.headers[HTTPField.Name("Origin")!], origins.contains(origin) else {
            return try await next(request, context)
        }
        if request.method == .options, request.headers[HTTPField.Name("Access-Control-Request-Method")!] != nil {
            var headers = HTTPFields()
            headers[HTTPField.Name("Access-Control-Allow-Origin")!] = origin
            headers[HTTPField.Name("Access-Control-Allow-Methods")!] = "GET, POST, PUT, PATCH, DELETE"
            headers[HTTPField.Name("Access-Control-Allow-Headers")!] = "Authorization, Content-Type"
            headers[HTTPField.Name("Access-Control-Max-Age")!] = "\(Self.maxAgeSeconds)"
            headers[HTTPField.Name("Vary")!] = "Origin"
            return Response(status: .noContent, headers: headers)
        }
        var response = try await next(request, context)
        response.headers[HTTPField.Name("Access-Control-Allow-Origin")!] = origin
        response.headers[HTTPField.Name("Access-Control-Expose-Headers")!] = "Retry-After, Allow, WWW-Authenticate"
        response.headers[HTTPField.Name("Vary")!] = "Origin"
        return response
    }
}
