import TernServer
import TernSQS

/// The `sqs` section of ternd's configuration: the SQS-compatible endpoint (off unless `listen`
/// is set).
///
/// ```yaml
/// sqs:
///   listen: 127.0.0.1:9324          # --sqs, TERN_SQS
///   account_id: "000000000000"      # --sqs-account-id, TERN_SQS_ACCOUNT_ID
///   region: us-east-1               # --sqs-region, TERN_SQS_REGION
///   advertised_url: https://sqs.example.com   # --sqs-advertised-url, TERN_SQS_ADVERTISED_URL
/// ```
struct SQSConfiguration: Equatable {
    /// HOST:PORT of the SQS listener; nil = no SQS endpoint.
    var listen: String?
    var accountID = SQS.Settings().accountID
    var region = SQS.Settings().region
    /// The base of queue URLs; nil = `http://` + the request's Host header.
    var advertisedURL: String?

    static let environmentVariables: [(String, String)] = [
        ("TERN_SQS", "listen"), ("TERN_SQS_ACCOUNT_ID", "account_id"), ("TERN_SQS_REGION", "region"),
        ("TERN_SQS_ADVERTISED_URL", "advertised_url"),
    ]

    mutating func apply(yaml value: Any) throws {
        let section = try Configuration.mapping(value, "sqs", allowed: ["listen", "account_id", "region", "advertised_url"])
        for (key, item) in section { try set(key, try Configuration.string(item, "sqs.\(key)")) }
    }

    mutating func apply(environment: [String: String]) throws {
        for (variable, key) in Self.environmentVariables {
            if let value = environment[variable] { try set(key, value) }
        }
    }

    mutating func set(_ key: String, _ value: String) throws {
        switch key {
        case "listen": listen = value
        case "account_id": accountID = value
        case "region": region = value
        case "advertised_url": advertisedURL = value
        default: throw ConfigurationError("unknown setting sqs.\(key)")
        }
    }

    func validate() throws {
        if let listen, parseAddress(listen) == nil { throw ConfigurationError("sqs.listen must be HOST:PORT, got \(listen)") }
        guard accountID.count == 12, accountID.allSatisfy(\.isASCII), accountID.allSatisfy(\.isNumber) else {
            throw ConfigurationError("sqs.account_id must be 12 digits, got \(accountID)")
        }
        guard !region.isEmpty, region.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }) else {
            throw ConfigurationError("sqs.region must be letters, digits and '-', got \(region)")
        }
        if let advertisedURL {
            guard advertisedURL.hasPrefix("http://") || advertisedURL.hasPrefix("https://"), !advertisedURL.hasSuffix("/") else {
                throw ConfigurationError("sqs.advertised_url must be http(s)://HOST[:PORT][/PATH] without a trailing slash, got \(advertisedURL)")
            }
        }
    }

    func yamlLines(quoted: (String) -> String) -> [String] {
        ["sqs:", "  listen: \(listen.map(quoted) ?? "null")", "  account_id: \(quoted(accountID))", "  region: \(quoted(region))",
         "  advertised_url: \(advertisedURL.map(quoted) ?? "null")"]
    }
}
