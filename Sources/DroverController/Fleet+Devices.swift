import DroverAPI
import DroverCore
import DroverProtocol
import DroverScheduler
import DroverStore

/// Device events as pure transitions: given the event and the time, they change the state and
/// return what to store and what to publish (`Effects`); the `Fleet` actor performs that.
extension FleetState {
    mutating func hello(_ m: Hello, now: Int64) -> Effects {
        clock = now
        heldWills.remove(m.device)
        // The device tells everything again in its next beat.
        links[m.device] = DeviceLink(beatEvery: m.beatEvery)
        var batch = StoreBatch()
        var needsPlan = false
        // A device that no longer reads deflate (an older agent) gets its state again as JSON:
        // the retained copy may be deflated.
        let stoppedDeflate = devices[m.device]?.facts.readsDeflate == true && !m.facts.readsDeflate
        if var d = devices[m.device] {
            needsPlan = d.facts != m.facts || d.presence != .online
            if d.bootID != m.bootID { event("DeviceRebooted", m.device, "device \(m.device) rebooted", into: &batch) }
            if d.presence != .online { event("DeviceOnline", m.device, "device \(m.device) is back online", into: &batch) }
            d.facts = m.facts
            d.setPresence(.online, at: now)
            d.lastSeen = now
            d.bootID = m.bootID
            d.lastAppliedGeneration = m.lastAppliedGeneration
            devices[m.device] = d
            batch.devices.append(d)
        } else {
            let d = DeviceRecord(id: m.device, facts: m.facts, presence: .online, lastSeen: now, joinedAt: now, bootID: m.bootID, lastAppliedGeneration: m.lastAppliedGeneration)
            devices[m.device] = d
            batch.devices.append(d)
            needsPlan = true
            event("DeviceJoined", m.device, "device \(m.device) joined (\(m.facts.arch), cpu \(Quantity.formatCPU(m.facts.capacity.cpuMillis)), memory \(Quantity.formatMemory(m.facts.capacity.memoryBytes)))", into: &batch)
        }
        var messages: [Desired] = []
        if needsPlan { messages = replan(devices: [m.device], into: &batch, now: now) }
        // A device that applied a generation this controller never sent (the controller's
        // store was restored from an older copy) would ignore everything until the counter
        // caught up: jump past it, sending the whole state, which may well be empty.
        if m.lastAppliedGeneration > (desired[m.device]?.generation ?? 0) {
            let previous = desired[m.device]
            var record = previous ?? DesiredRecord(device: m.device, generation: 0, replicas: [], digest: ReplicaSpecs.digest([]))
            record.generation = m.lastAppliedGeneration + 1
            desired[m.device] = record
            batch.desired.append(DesiredWrite(record))
            messages.removeAll { $0.device == m.device }
            messages.append(Desired(device: m.device, generation: record.generation, replicas: record.replicas))
            event("GenerationResynced", m.device, "device \(m.device) had applied generation \(m.lastAppliedGeneration); desired state resent as \(record.generation)", into: &batch)
        } else if let current = desired[m.device], m.lastAppliedGeneration < current.generation || stoppedDeflate, !messages.contains(where: { $0.device == m.device }) {
            // Behind: the retained message may be lost (a broker that crashed before saving
            // it), so the newest is sent again; applying it twice is harmless.
            messages.append(Desired(device: m.device, generation: current.generation, replicas: current.replicas))
        }
        return Effects(batch, publish: messages)
    }

    mutating func state(_ m: DeviceState, now: Int64) -> Effects {
        clock = now
        guard var d = devices[m.device] else { return Effects() }
        let presence: Presence = m.state == .online ? .online : .unreachable
        if presence == .online {
            // Heard: a will held through the grace is answered, and silence counts from now
            // (a device back on its kept session says only `online`, no hello or beat).
            heldWills.remove(m.device)
            d.lastSeen = clock
            devices[m.device] = d
        }
        guard d.presence != presence else { return Effects() }
        // Within the grace after the controller regained sight, an `offline` may be a will
        // the broker fired while it went down with the controller, queued for the
        // controller's session: it is held until the grace ends, and dropped if the device
        // shows life before that.
        if presence == .unreachable, inGrace(now: now) {
            heldWills.insert(m.device)
            return Effects()
        }
        heldWills.remove(m.device)
        var batch = StoreBatch()
        d.setPresence(presence, at: clock)
        if presence == .online { d.lastSeen = clock }
        devices[m.device] = d
        batch.devices.append(d)
        event(presence == .online ? "DeviceOnline" : "DeviceUnreachable", m.device,
              presence == .online ? "device \(m.device) is online" : "device \(m.device) is unreachable (last will or clean disconnect)", into: &batch)
        let messages = replan(devices: [m.device], into: &batch)
        return Effects(batch, publish: messages)
    }

    /// Takes a beat; returns true when the device should be asked for a full snapshot
    /// (its replica digest says the controller's view has drifted).
    mutating func beat(_ m: Beat, now: Int64) -> (snapshot: Bool, effects: Effects) {
        clock = now
        guard var d = devices[m.device] else { return (false, Effects()) }
        // A field a beat leaves out has not changed since the device last told it.
        var link = links[m.device] ?? DeviceLink()
        if let generation = m.generation, let seq = m.reportSeq, let digest = m.digest { link.summary = (generation, seq, digest) }
        if let rtt = m.rtt {
            d.rttMillis = rtt
            link.tellsRTT = true
        }
        links[m.device] = link
        let snapshot = wantsSnapshot(m.device, link.summary, now: now)
        heldWills.remove(m.device)
        d.lastSeen = clock
        if let usage = m.usage { d.usage = usage }
        if let phases = m.phases { d.phases = phases }
        if let generation = m.generation { d.lastAppliedGeneration = generation }
        for (id, millis) in m.replicaCPU ?? [:] where replicas[id]?.device == m.device {
            replicaCPU[id] = (millis, m.device)
        }
        let cameBack = d.presence != .online
        d.setPresence(.online, at: d.lastSeen)
        devices[m.device] = d
        // Beats are frequent and carry nothing that must survive a restart except presence;
        // write only when presence changed.
        guard cameBack else { return (snapshot, Effects()) }
        var batch = StoreBatch()
        batch.devices.append(d)
        event("DeviceOnline", m.device, "device \(m.device) is back online", into: &batch)
        let messages = replan(devices: [m.device], into: &batch)
        return (snapshot, Effects(batch, publish: messages))
    }

    /// Applies a report once: a seq at or below the last one applied is a resend.
    mutating func report(_ m: Report, now: Int64) -> Effects {
        var (effects, reported, _) = statuses(m, now: now)
        // Only the rollouts of the workloads it reported on: time moves the others (presence pass).
        effects.publish += advanceRollouts(into: &effects.batch, only: reported)
        return effects
    }

    /// A report's replica statuses, without stepping rollouts (a burst of reports steps them
    /// once, after the last: each step looks at every replica of its workload). Returns the
    /// workloads reported on, and those of them with a replica reported failing or not ready:
    /// a rollout must see that before a later report in the burst clears it (its failure
    /// count, its rollback, how long a replica has been ready).
    mutating func statuses(_ m: Report, now: Int64) -> (Effects, reported: Set<String>, troubled: Set<String>) {
        clock = now
        guard var d = devices[m.device] else { return (Effects(), [], []) }
        var batch = StoreBatch()
        if let epoch = m.epoch, epoch != d.reportEpoch {
            // The device's agent.db was created afresh: its sequence numbers start again.
            if d.reportEpoch != nil {
                event("DeviceStoreRecreated", m.device, "device \(m.device) has a new agent.db (outbox epoch \(epoch)); its reports count from seq \(m.seq)", into: &batch)
            }
            d.reportEpoch = epoch
            d.lastReportSeq = 0
        }
        guard m.seq > d.lastReportSeq else { return (Effects(), [], []) }
        d.lastReportSeq = m.seq
        // Statuses say which generation the device was applying: what it has applied since its hello.
        d.lastAppliedGeneration = max(d.lastAppliedGeneration, m.replicas.map(\.generation).max() ?? 0)
        d.lastSeen = clock
        devices[m.device] = d
        batch.devices.append(d)
        if m.full == true { resetUnlisted(m, into: &batch) }
        var reported = Set<String>()
        var troubled = Set<String>()
        for status in m.replicas {
            // A device may only speak for replicas placed on it.
            guard var row = replicas[status.id], row.device == m.device, status.phase != .stopped else { continue }
            let wasReady = row.ready ?? (row.phase == .running)
            if row.phase != status.phase {
                event("Replica\(status.phase.rawValue.capitalized)", row.workload, "replica \(row.id) on \(m.device) is \(status.phase.rawValue)\(status.exitCode.map { " (exit code \($0))" } ?? "")", into: &batch)
            }
            row.phase = status.phase
            row.pid = status.pid
            row.exitCode = status.exitCode
            row.restarts = status.restarts
            row.message = status.message
            if row.ready != status.ready, let ready = status.ready, status.phase == .running {
                event(ready ? "ReplicaReady" : "ReplicaNotReady", row.workload, "replica \(row.id) on \(m.device) is \(ready ? "ready" : "not ready")", into: &batch)
            }
            row.ready = status.phase == .running ? status.ready : nil
            if let revision = status.revision { row.revision = revision }
            row.updatedAt = clock
            replicas[row.id] = row
            batch.replicas.append(row)
            reported.insert(row.workload)
            // (A replica still starting is no trouble: a wave of them would step the rollout per report.)
            let failing = status.phase == .restarting || status.phase == .failed || (status.phase == .exited && status.exitCode != 0)
            let lostReady = wasReady && !(status.ready ?? (status.phase == .running))
            if failing || lostReady, workloads[row.workload]?.rollout?.isActive == true { troubled.insert(row.workload) }
        }
        return (Effects(batch), reported, troubled)
    }

    /// Marks devices whose beats stopped as unreachable. Nobody is judged while the
    /// controller itself cannot hear the fleet, nor within `unreachableAfter` of it regaining
    /// sight, and the controller's blind time never counts as a device's silence.
    mutating func checkPresence(now: Int64) -> Effects {
        clock = now
        let bound = unreachableAfterMillis
        var batch = StoreBatch()
        // While blind there is no sign of life to record: a crash then must leave the whole
        // blind span, from before it, to the next start.
        guard !sight.isBlind else { return Effects(batch) }
        markAlive(now: now, into: &batch)
        var changed: [String] = []
        if !inGrace(now: now) {
            // Runs every second: filter before sorting, so a large quiet fleet costs one pass.
            // Each device is allowed the beat interval it promised, and `unreachableAfter` past it.
            let silent = devices.filter {
                $0.value.presence == .online
                    && (heldWills.contains($0.key) || now - sight.effectiveLastSeen($0.value.lastSeen, now: now) > bound + (links[$0.key]?.beatEvery ?? 0))
            }
            for (id, var d) in silent.sorted(by: { $0.key < $1.key }) {
                d.setPresence(.unreachable, at: now)
                devices[id] = d
                batch.devices.append(d)
                changed.append(id)
                let silence = Duration.milliseconds(bound + (links[id]?.beatEvery ?? 0))
                let why = heldWills.contains(id) ? "its last will, held through the grace after the controller started" : "nothing heard for \(silence)"
                event("DeviceUnreachable", id, "device \(id) is unreachable (\(why))", into: &batch)
            }
            heldWills.removeAll()
        }
        // Replicas on a device that stays unreachable move once their workload's
        // tolerateOffline has passed; look for that every 10 s on each such device.
        if now - lastOfflineReplan >= 10_000 {
            lastOfflineReplan = now
            changed += replicasOn.filter { !$0.value.isEmpty && devices[$0.key]?.presence == .unreachable }.keys.sorted()
        }
        // Rollouts move on with time too (bakes, deadlines): stepped every pass. The first
        // plan after a start or a reload runs here, on the actor; the periodic one runs off it
        // (`Fleet.reconcileIfDue`).
        let firstPlan = scheduler == nil && !workloads.isEmpty
        guard !changed.isEmpty || firstPlan else {
            // (The messages first: they add to the batch.)
            let messages = advanceRollouts(into: &batch)
            return Effects(batch, publish: messages)
        }
        var messages = replan(devices: Array(Set(changed)).sorted(), into: &batch, now: now)
        messages += advanceRollouts(into: &batch)
        return Effects(batch, publish: messages)
    }

    /// Cordon (no new replicas), drain (no new replicas, and existing ones move away) or
    /// return a device to normal.
    mutating func setSchedulability(_ id: String, _ value: Schedulability, now: Int64) throws(FleetError) -> Effects {
        clock = now
        guard var d = devices[id] else { throw .notFound(kind: "device", name: id) }
        guard d.schedulability != value.rawValue else { return Effects() }
        d.schedulability = value.rawValue
        devices[id] = d
        var batch = StoreBatch()
        batch.devices.append(d)
        let (kind, verb) = switch value {
        case .normal: ("DeviceUncordoned", "uncordoned")
        case .cordoned: ("DeviceCordoned", "cordoned: no new replicas")
        case .draining: ("DeviceDraining", "draining: its replicas move away")
        }
        event(kind, id, "device \(id) \(verb)", into: &batch)
        let messages = replan(devices: [id], into: &batch)
        return Effects(batch, publish: messages)
    }

    mutating func revoked(_ id: String, now: Int64) throws(FleetError) -> Effects {
        guard var d = devices[id] else { throw .notFound(kind: "device", name: id) }
        clock = now
        var batch = StoreBatch()
        if d.presence == .online {
            d.setPresence(.unreachable, at: now)
            event("DeviceUnreachable", id, "device \(id) is unreachable (revoked)", into: &batch)
        }
        if d.schedulability != Schedulability.draining.rawValue {
            d.schedulability = Schedulability.draining.rawValue
            event("DeviceDraining", id, "device \(id) draining: its replicas move away", into: &batch)
        }
        devices[id] = d
        batch.devices.append(d)
        let messages = replan(devices: [id], into: &batch)
        return Effects(batch, publish: messages)
    }

    // MARK: reads

    func deviceList() -> [DeviceView] {
        devices.values.sorted { $0.id < $1.id }.map(view)
    }

    func device(_ id: String) throws(FleetError) -> DeviceView {
        guard let d = devices[id] else { throw .notFound(kind: "device", name: id) }
        return view(d)
    }

    func view(_ d: DeviceRecord) -> DeviceView {
        let mine = (replicasOn[d.id] ?? []).compactMap { replicas[$0] }.sorted { $0.id < $1.id }
        let allocated = mine.compactMap { workloads[$0.workload]?.spec.resources }.reduce(Resources.zero, +)
        return DeviceView(record: d, allocated: allocated, replicas: mine, generation: desired[d.id]?.generation ?? 0)
    }

    /// The fleet's shape for `/metrics`.
    func metricsShape() -> ControllerMetrics.Shape {
        var shape = ControllerMetrics.Shape()
        for d in devices.values { shape.devices[d.presence, default: 0] += 1 }
        for r in replicas.values { shape.replicas[r.phase, default: 0] += 1 }
        for w in workloads.values { if let phase = w.rollout?.phase { shape.rollouts[phase, default: 0] += 1 } }
        shape.workloads = workloads.count
        return shape
    }

    func summary() -> FleetSummary {
        // Counted in place: `filter` would copy every record (status is polled).
        var online = 0, unreachable = 0, running = 0
        for d in devices.values {
            if d.presence == .online { online += 1 } else if d.presence == .unreachable { unreachable += 1 }
        }
        for r in replicas.values where r.phase == .running { running += 1 }
        return FleetSummary(
            devices: devices.count, online: online, unreachable: unreachable, workloads: workloads.count,
            desiredReplicas: desiredCounts().values.reduce(0, +), runningReplicas: running,
            droppedMessages: Dictionary(uniqueKeysWithValues: drops.counts.map { ($0.key.rawValue, $0.value) }), placement: placementStats)
    }
}
