import DroverCore

extension FleetState {
    /// Starts a round-trip measurement to every online device whose beats do not carry its
    /// round-trip time; returns (device, correlation data) pairs to publish. Pings never
    /// answered are forgotten after a minute.
    mutating func startPings() -> [(device: String, correlation: [UInt8])] {
        let now = ContinuousClock.now
        pings = pings.filter { now - $0.value.sent < .seconds(60) }
        return devices.values.filter { $0.presence == .online && links[$0.id]?.tellsRTT != true }.sorted { $0.id < $1.id }.map { d in
            let n = nextPing
            nextPing += 1
            pings[n] = (d.id, now)
            return (d.id, withUnsafeBytes(of: n.bigEndian) { Array($0) })
        }
    }

    /// A device answered a ping: fold the round trip into its smoothed RTT.
    mutating func pingAnswered(device: String, correlation: [UInt8]?) {
        guard let correlation, correlation.count == 8 else { return }
        let n = correlation.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard let ping = pings.removeValue(forKey: n), ping.device == device, var d = devices[device] else { return }
        let millis = Self.millis(since: ping.sent)
        // Smoothed like TCP's SRTT: one slow answer moves it by an eighth.
        d.rttMillis = d.rttMillis.map { $0 * 7 / 8 + millis / 8 } ?? millis
        devices[device] = d
    }
}

/// What a device promised in its hello and has told in its beats since: beats carry only
/// what changed, so the controller keeps the rest.
struct DeviceLink: Sendable {
    typealias Summary = (generation: Generation, reportSeq: Int64, digest: String)
    /// The longest the device goes between beats (ms); nil: it did not say.
    var beatEvery: Int64?
    /// Its newest generation, report sequence and replica digest, told together.
    var summary: Summary?
    /// Whether its beats carry its round-trip time (then it is never pinged).
    var tellsRTT = false
}
