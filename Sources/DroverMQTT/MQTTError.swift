import CMosquitto

/// Everything the MQTT client can fail with.
public enum MQTTError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalidURL(String, String)
    /// A libmosquitto call returned an error code.
    case mosquitto(call: String, code: Int32, message: String)
    /// The client is not connected right now; QoS 1 senders keep the message and retry.
    case notConnected
    /// The connection dropped before the broker acknowledged a QoS 1 publish.
    case connectionLost
    /// `shutdown()` was called.
    case closed

    public var description: String {
        switch self {
        case .invalidURL(let url, let why): "invalid broker URL '\(url)': \(why)"
        case .mosquitto(let call, let code, let message): "\(call) failed (\(code)): \(message)"
        case .notConnected: "not connected to the broker"
        case .connectionLost: "connection lost before the broker acknowledged"
        case .closed: "client closed"
        }
    }
}

/// The one place a libmosquitto return code becomes a Swift error.
@inline(__always)
func mosqCheck(_ rc: Int32, _ call: String) throws(MQTTError) {
    guard rc != MOSQ_ERR_SUCCESS.rawValue else { return }
    if rc == MOSQ_ERR_NO_CONN.rawValue { throw .notConnected }
    throw .mosquitto(call: call, code: rc, message: String(cString: mosquitto_strerror(rc)))
}

/// libmosquitto wants one global init per process; a lazy global runs it exactly once.
let mosquittoLibrary: Int32 = mosquitto_lib_init()
