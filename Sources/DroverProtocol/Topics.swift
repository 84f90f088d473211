import DroverCore

/// The MQTT topic tree. Every topic Drover uses is built and parsed here and nowhere else.
public enum Topic {
    public static let prefix = "drover/v1/"

    /// Per-device channels under `drover/v1/dev/<id>/`.
    public enum Channel: String, Sendable, CaseIterable {
        case hello, state, beat, report, desired
        /// Request/response: the request carries an MQTT 5 response topic and correlation data.
        case cmd
        case cmdReply = "cmd/reply"
    }

    public static func device(_ id: String, _ channel: Channel) -> String {
        "\(prefix)dev/\(id)/\(channel.rawValue)"
    }

    /// Controller presence: `online` while connected, `offline` by last will.
    public static let controllerState = "\(prefix)ctl/state"

    /// What the controller subscribes to: everything devices send.
    public static let controllerSubscriptions: [String] = [Channel.hello, .state, .beat, .report, .cmdReply].map {
        "\(prefix)dev/+/\($0.rawValue)"
    }

    /// Splits `drover/v1/dev/<id>/<channel>`; nil for anything else, including device ids
    /// that break the naming rules.
    public static func parse(_ topic: String) -> (device: String, channel: Channel)? {
        // By bytes: every message's topic is parsed, and String's splitting was generic code.
        let bytes = topic.utf8
        guard bytes.starts(with: devicePrefix), let slash = bytes.dropFirst(devicePrefix.count).firstIndex(of: 0x2F) else { return nil }
        let start = bytes.index(bytes.startIndex, offsetBy: devicePrefix.count)
        guard let channel = Channel(rawValue: String(topic[bytes.index(after: slash)...])) else { return nil }
        let device = String(topic[start..<slash])
        guard Names.isValidDeviceID(device) else { return nil }
        return (device, channel)
    }

    private static let devicePrefix = Array((prefix + "dev/").utf8)
}
