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
        guard topic.hasPrefix(prefix + "dev/") else { return nil }
        let rest = topic.dropFirst(prefix.count + 4).split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard rest.count == 2, let channel = Channel(rawValue: String(rest[1])) else { return nil }
        let device = String(rest[0])
        guard Names.isValidDeviceID(device) else { return nil }
        return (device, channel)
    }
}
