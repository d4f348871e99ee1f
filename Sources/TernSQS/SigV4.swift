import Crypto
import Foundation

/// Verification of AWS Signature Version 4 (`Authorization: AWS4-HMAC-SHA256 Credential=…,
/// SignedHeaders=…, Signature=…`), as the AWS SDKs sign SQS requests.
///
/// Source: AWS General Reference, "Signature Version 4 signing process" (canonical request,
/// string to sign, signing key `HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region), service),
/// "aws4_request")`). The signature is compared in constant time; the request time must be
/// within ``maxClockSkewSeconds`` of the server's clock.
enum SigV4 {
    /// ±15 minutes, as AWS allows.
    static let maxClockSkewSeconds = 15 * 60
    static let algorithm = "AWS4-HMAC-SHA256"

    /// The parsed `Authorization` header.
    struct Authorization: Sendable, Equatable {
        var accessKeyID: String
        /// `yyyyMMdd`.
        var date: String
        var region: String
        var service: String
        var signedHeaders: [String]
        /// 64 lowercase hex digits.
        var signature: String

        var scope: String { "\(date)/\(region)/\(service)/aws4_request" }

        /// Parses the header value.
        /// - Throws: ``SQSError`` `IncompleteSignature` when a part is missing or malformed,
        ///   `InvalidParameterValue`-free: every failure here is the signature's.
        init(parsing header: String) throws(SQSError) {
            guard header.hasPrefix(SigV4.algorithm + " ") else {
                throw SQSError(.incompleteSignature, "Unsupported authorization type: only \(SigV4.algorithm) is accepted.")
            }
            var fields = [String: String]()
            for part in header.dropFirst(SigV4.algorithm.count + 1).split(separator: ",") {
                let trimmed = part.trimmingCharacters(in: .whitespaces)
                guard let equals = trimmed.firstIndex(of: "=") else {
                    throw SQSError(.incompleteSignature, "Authorization header part '\(trimmed)' is not KEY=VALUE.")
                }
                fields[String(trimmed[..<equals])] = String(trimmed[trimmed.index(after: equals)...])
            }
            guard let credential = fields["Credential"], let signed = fields["SignedHeaders"], let signature = fields["Signature"] else {
                throw SQSError(.incompleteSignature,
                               "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters.")
            }
            let scope = credential.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            guard scope.count == 5, !scope[0].isEmpty, scope[1].count == 8, scope[4] == "aws4_request" else {
                throw SQSError(.incompleteSignature, "Credential should be scoped to a valid region and service: ACCESS_KEY/DATE/REGION/SERVICE/aws4_request.")
            }
            accessKeyID = scope[0]
            date = scope[1]
            region = scope[2]
            service = scope[3]
            signedHeaders = signed.split(separator: ";").map { $0.lowercased() }
            guard signedHeaders.contains("host") else {
                throw SQSError(.incompleteSignature, "The host header must be signed.")
            }
            self.signature = signature.lowercased()
        }
    }

    /// The request data that SigV4 signs.
    struct Request: Sendable {
        var method: String
        /// The path as sent (percent-encoded).
        var path: String
        /// The raw query string (without `?`), empty when none.
        var query: String
        /// Header names in lower case; repeated headers joined with `,`.
        var headers: [String: String]
        var body: [UInt8]
    }

    /// Checks `request`'s signature against `secret`.
    /// - Parameters:
    ///   - now: the server's time, in seconds since 1970.
    /// - Throws: ``SQSError`` `SignatureDoesNotMatch` (wrong signature, expired or future
    ///   request time, date mismatch), `IncompleteSignature` (no `X-Amz-Date`).
    static func verify(_ request: Request, authorization: Authorization, secret: String, now: Int64) throws(SQSError) {
        guard let amzDate = request.headers["x-amz-date"] else {
            throw SQSError(.incompleteSignature, "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
        }
        guard let time = parseAmzDate(amzDate) else {
            throw SQSError(.incompleteSignature, "X-Amz-Date '\(amzDate)' is not of the form yyyyMMddTHHmmssZ.")
        }
        guard abs(time - now) <= Int64(maxClockSkewSeconds) else {
            throw SQSError(.signatureDoesNotMatch,
                           "Signature expired: \(amzDate) is now earlier or later than the server time by more than 15 minutes.")
        }
        guard amzDate.hasPrefix(authorization.date) else {
            throw SQSError(.signatureDoesNotMatch, "Date in Credential scope does not match YYYYMMDD from X-Amz-Date.")
        }
        let expected = signature(request, authorization: authorization, amzDate: amzDate, secret: secret)
        guard constantTimeEqual(Array(expected.utf8), Array(authorization.signature.utf8)) else {
            throw SQSError(.signatureDoesNotMatch,
                           "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.")
        }
    }

    /// The hex signature of `request` (exposed for tests that sign requests).
    static func signature(_ request: Request, authorization: Authorization, amzDate: String, secret: String) -> String {
        let canonical = canonicalRequest(request, signedHeaders: authorization.signedHeaders)
        let stringToSign = [algorithm, amzDate, authorization.scope, hex(SHA256.hash(data: Array(canonical.utf8)))].joined(separator: "\n")
        var key = SymmetricKey(data: Array(("AWS4" + secret).utf8))
        for part in [authorization.date, authorization.region, authorization.service, "aws4_request"] {
            key = SymmetricKey(data: Array(HMAC<SHA256>.authenticationCode(for: Array(part.utf8), using: key)))
        }
        return hex(HMAC<SHA256>.authenticationCode(for: Array(stringToSign.utf8), using: key))
    }

    static func canonicalRequest(_ request: Request, signedHeaders: [String]) -> String {
        let headers = signedHeaders.map { name in
            name + ":" + collapseSpaces(request.headers[name] ?? "")
        }
        let payloadHash = request.headers["x-amz-content-sha256"] ?? hex(SHA256.hash(data: request.body))
        return [request.method, canonicalURI(request.path), canonicalQuery(request.query)].joined(separator: "\n") + "\n"
            + headers.joined(separator: "\n") + "\n\n" + signedHeaders.joined(separator: ";") + "\n" + payloadHash
    }

    /// Each path segment percent-decoded and encoded again (RFC 3986 unreserved characters
    /// stay), as AWS services other than S3 do.
    static func canonicalURI(_ path: String) -> String {
        guard !path.isEmpty else { return "/" }
        return path.split(separator: "/", omittingEmptySubsequences: false)
            .map { uriEncode((try? QueryProtocol.percentDecodeStrict($0.utf8)) ?? String($0)) }
            .joined(separator: "/")
    }

    static func canonicalQuery(_ query: String) -> String {
        guard !query.isEmpty else { return "" }
        let pairs = query.split(separator: "&").map { part -> (String, String) in
            let pieces = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = (try? QueryProtocol.percentDecode(pieces[0].utf8)) ?? String(pieces[0])
            let value = pieces.count > 1 ? ((try? QueryProtocol.percentDecode(pieces[1].utf8)) ?? String(pieces[1])) : ""
            return (uriEncode(key), uriEncode(value))
        }
        return pairs.sorted { $0.0 == $1.0 ? $0.1 < $1.1 : $0.0 < $1.0 }.map { "\($0.0)=\($0.1)" }.joined(separator: "&")
    }

    static func uriEncode(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                out += "%" + String(byte >> 4, radix: 16, uppercase: true) + String(byte & 0xF, radix: 16, uppercase: true)
            }
        }
        return out
    }

    static func collapseSpaces(_ value: String) -> String {
        value.trimmingCharacters(in: .whitespaces).split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
    }

    /// Seconds since 1970 of `yyyyMMddTHHmmssZ`, nil when malformed.
    static func parseAmzDate(_ text: String) -> Int64? {
        let bytes = Array(text.utf8)
        guard bytes.count == 16, bytes[8] == UInt8(ascii: "T"), bytes[15] == UInt8(ascii: "Z") else { return nil }
        func number(_ range: Range<Int>) -> Int? {
            var value = 0
            for index in range {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) else { return nil }
                value = value * 10 + Int(bytes[index] - UInt8(ascii: "0"))
            }
            return value
        }
        guard let year = number(0..<4), let month = number(4..<6), let day = number(6..<8), let hour = number(9..<11),
            let minute = number(11..<13), let second = number(13..<15), (1...12).contains(month), (1...31).contains(day),
            hour < 24, minute < 60, second < 61
        else { return nil }
        // Days from civil (Howard Hinnant's algorithm).
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        return Int64(days) * 86_400 + Int64(hour * 3600 + minute * 60 + second)
    }

    static func hex(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for index in 0..<max(a.count, b.count) {
            difference |= (index < a.count ? a[index] : 0) ^ (index < b.count ? b[index] : 0)
        }
        return difference == 0
    }
}

extension QueryProtocol {
    /// Percent-decoding without the form rule that `+` is a space (for paths).
    static func percentDecodeStrict(_ bytes: some Collection<UInt8>) throws(SQSError) -> String {
        if bytes.contains(UInt8(ascii: "+")) {
            let parts = bytes.split(separator: UInt8(ascii: "+"), omittingEmptySubsequences: false)
            var pieces = [String]()
            for part in parts { pieces.append(try percentDecode(part)) }
            return pieces.joined(separator: "+")
        }
        return try percentDecode(bytes)
    }
}
