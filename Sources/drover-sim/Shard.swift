import CDroverEpoll
import CMosquitto
import DroverMQTT
import DroverSim
import Glibc
import Synchronization

/// Counters every shard adds to; the main thread prints them.
final class SimStats: Sendable {
    let connected = Atomic<Int>(0)
    let connects = Atomic<Int>(0)
    let drops = Atomic<Int>(0)
    let published = Atomic<Int>(0)
    let beats = Atomic<Int>(0)
    let reports = Atomic<Int>(0)
    let desired = Atomic<Int>(0)
    let running = Atomic<Int>(0)
    let refused = Atomic<Int>(0)
}

/// Devices driven by one thread: one epoll set over their MQTT sockets (libmosquitto's
/// external-loop calls, no thread per connection) and one timer heap for beats, replica
/// starts, reconnects and churn. Everything here is touched by that thread only.
final class Shard: @unchecked Sendable {
    struct Slot {
        var mosq: OpaquePointer
        var device: SimDevice
        let broker: BrokerAddress
        let password: String?
        var fd: Int32 = -1
        var writing = false
        var connected = false
        var churned = false
        var attempts = 0
        /// Subscriptions the broker acknowledged in the session as it stands.
        var subscribed = 0
        /// A beat timer is in the heap: a reconnect within a beat interval does not add another.
        var beating = false
    }

    /// The context libmosquitto hands back to a callback.
    final class Conn {
        let index: Int
        unowned let shard: Shard
        init(index: Int, shard: Shard) {
            self.index = index
            self.shard = shard
        }
    }

    enum Timer: UInt8 { case beat, start, reconnect }

    var slots: [Slot] = []
    private var conns: [Conn] = []
    let epfd: Int32
    var timers = TimerHeap()
    let stats: SimStats
    let stop: Atomic<Bool>
    let options: SimOptions
    /// Disconnects this shard makes per minute (`--churn`, its share).
    private let churnPerMinute: Double
    private var nextChurn: Int64 = .max
    private var random: SplitMix64

    struct Member {
        var device: SimDevice
        var broker: BrokerAddress
        var password: String?
    }

    init(_ members: [Member], options: SimOptions, churnPerMinute: Double, stats: SimStats) throws(SimError) {
        self.options = options
        self.stats = stats
        self.churnPerMinute = churnPerMinute
        stop = Atomic(false)
        random = SplitMix64(seed: UInt64(members.count) &+ 0x5EED)
        epfd = drover_epoll_create()
        guard epfd >= 0 else { throw SimError("epoll_create1: errno \(errno)") }
        for (index, d) in members.enumerated() {
            let device = d.device
            guard let mosq = mosquitto_new("drover-sim-\(device.id)", false, nil) else { throw SimError("mosquitto_new: out of memory") }
            _ = mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5)
            _ = mosquitto_username_pw_set(mosq, device.id, d.password)
            let will = device.willPayload
            _ = will.withUnsafeBytes { mosquitto_will_set_v5(mosq, device.willTopic, Int32($0.count), $0.baseAddress, 1, true, nil) }
            let conn = Conn(index: index, shard: self)
            conns.append(conn)
            mosquitto_user_data_set(mosq, Unmanaged.passUnretained(conn).toOpaque())
            Self.setCallbacks(mosq)
            slots.append(Slot(mosq: mosq, device: device, broker: d.broker, password: d.password))
        }
    }

    deinit {
        for slot in slots { mosquitto_destroy(slot.mosq) }
        close(epfd)
    }

    static func now() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    /// The thread's body: connects its devices at the given rate, then serves events until
    /// `stop`, then says goodbye (`offline`) and disconnects cleanly.
    func run(connectsPerSecond: Int) {
        let start = Self.now()
        for index in slots.indices {
            let at = start + Int64(index) * 1000 / Int64(max(1, connectsPerSecond))
            timers.push(at, Int32(index), Timer.reconnect.rawValue)
        }
        if churnPerMinute > 0 { nextChurn = start + churnGap() }
        var tags = [UInt64](repeating: 0, count: 256)
        var flags = [UInt32](repeating: 0, count: 256)
        var lastMisc = start
        while !stop.load(ordering: .relaxed) {
            let now = Self.now()
            let wait = min(100, max(0, min(timers.peek ?? .max, nextChurn) - now))
            let n = drover_epoll_wait(epfd, &tags, &flags, Int32(tags.count), Int32(wait))
            for i in 0..<max(0, Int(n)) {
                let index = Int(tags[i])
                guard slots.indices.contains(index), slots[index].fd >= 0 else { continue }
                if flags[i] & (DROVER_EPOLL_READ | DROVER_EPOLL_ERROR) != 0 { handle(index, mosquitto_loop_read(slots[index].mosq, 1)) }
                if slots[index].fd >= 0, flags[i] & DROVER_EPOLL_WRITE != 0 { handle(index, mosquitto_loop_write(slots[index].mosq, 1)) }
                updateInterest(index)
            }
            let after = Self.now()
            while let (due, index, kind) = timers.popDue(after) { fire(Timer(rawValue: kind) ?? .beat, Int(index), due: due, now: after) }
            if after >= nextChurn {
                churn()
                nextChurn = after + churnGap()
            }
            // Keepalive and retries: once a second for every connection.
            if after - lastMisc >= 1000 {
                lastMisc = after
                for index in slots.indices where slots[index].fd >= 0 {
                    handle(index, mosquitto_loop_misc(slots[index].mosq))
                    updateInterest(index)
                }
            }
        }
        for index in slots.indices where slots[index].connected {
            let goodbye = slots[index].device.willPayload
            publish(index, SimPublish(topic: slots[index].device.willTopic, payload: goodbye, retain: true))
            _ = mosquitto_loop_write(slots[index].mosq, 1)
            _ = mosquitto_disconnect(slots[index].mosq)
            _ = mosquitto_loop_write(slots[index].mosq, 1)
        }
    }

    func requestStop() { stop.store(true, ordering: .relaxed) }

    private func churnGap() -> Int64 {
        let mean = 60_000 / churnPerMinute
        // Exponential gaps: disconnects arrive as a Poisson process.
        let u = max(1e-9, Double(random.next() % 1_000_000) / 1_000_000)
        return Int64(min(86_400_000, max(1, -log(u) * mean)))
    }

    private func fire(_ timer: Timer, _ index: Int, due: Int64, now: Int64) {
        switch timer {
        case .reconnect:
            connect(index)
        case .beat:
            guard slots[index].connected else {
                slots[index].beating = false
                return
            }
            if let beat = slots[index].device.beat(now: now) { publish(index, beat) }
            timers.push(due + options.profile.beatInterval, Int32(index), Timer.beat.rawValue)
        case .start:
            let before = slots[index].device.running
            let out = slots[index].device.startDue(now: now)
            stats.running.add(slots[index].device.running - before, ordering: .relaxed)
            guard slots[index].connected else { return }
            for p in out { publish(index, p) }
            if let next = slots[index].device.nextStart { timers.push(next, Int32(index), Timer.start.rawValue) }
        }
        updateInterest(index)
    }

    /// Cuts one connected device off without a DISCONNECT, as a flaky link does: the broker
    /// fires its will; it comes back after `--churn-downtime`.
    private func churn() {
        let connected = slots.indices.filter { slots[$0].connected }
        guard !connected.isEmpty else { return }
        let index = connected[Int(random.next() % UInt64(connected.count))]
        slots[index].churned = true
        shutdown(slots[index].fd, Int32(SHUT_RDWR))
    }
}

/// A min-heap of (due, device index, kind).
struct TimerHeap {
    private var items: [(Int64, Int32, UInt8)] = []

    var peek: Int64? { items.first?.0 }

    mutating func push(_ due: Int64, _ index: Int32, _ kind: UInt8) {
        items.append((due, index, kind))
        var i = items.count - 1
        while i > 0, items[(i - 1) / 2].0 > items[i].0 {
            items.swapAt(i, (i - 1) / 2)
            i = (i - 1) / 2
        }
    }

    mutating func popDue(_ now: Int64) -> (Int64, Int32, UInt8)? {
        guard let first = items.first, first.0 <= now else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < items.count, items[l].0 < items[m].0 { m = l }
                if r < items.count, items[r].0 < items[m].0 { m = r }
                if m == i { break }
                items.swapAt(i, m)
                i = m
            }
        }
        return first
    }
}
