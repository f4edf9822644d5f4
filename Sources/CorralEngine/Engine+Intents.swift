import CorralCore

extension LadderCommand {
    /// Whether carrying it out changes something a restart cannot find in the
    /// stored ladder: a limit, a freeze, a signal, a handler run. A warning or
    /// a scale-down request only records and publishes.
    var actsOutsideTheEngine: Bool {
        switch self {
        case .warn, .scaleDown, .scaleDownResolved: false
        case .throttle, .restore, .suspend, .terminate, .migrate, .custom: true
        }
    }
}

/// The engine's side of the intent journal (see `ActionIntent`).
struct IntentBookkeeping {
    /// The next intent's sequence (after a restart: past every one stored or journalled).
    var next: UInt64 = 1
    /// The last step intent appended (starts are not marked settled), and how many
    /// intents of any kind since the journal was last cleared.
    var last: UInt64 = 0
    var sinceClear = 0
    /// The journal could not be written: said once, until it can again.
    var failing = false

    /// Clear the journal once this many intents are in it and all are settled.
    static let clearAfter = 32
}

extension Engine {
    /// Appends what a step is about to do to the journal, before it does it;
    /// returns the sequence the step's commit marks settled (nil without a
    /// journal). A journal that cannot be written (a full disk) does not stop
    /// the action: enforcement goes on, and the daemon says once that a kill
    /// now could lose a record.
    func writeIntent(_ agent: String, at now: Timestamp, _ work: ActionIntent.Work, ladder: AgentLadder) -> UInt64? {
        guard let intents else { return nil }
        let sequence = intentLog.next
        intentLog.next += 1
        do {
            try intents.append(ActionIntent(sequence: sequence, agent: agent, at: now, work: work, ladder: ladder))
            // The last one a commit will mark settled: a start is never marked (it is kept by
            // the launch and the unsaved rows instead), so it must not hold the journal back.
            if case .start = work {} else { intentLog.last = sequence }
            intentLog.sinceClear += 1
            if intentLog.failing {
                intentLog.failing = false
                events.publish(.daemon, agent: nil, EventText.intentsWrittenAgain)
            }
        } catch {
            if !intentLog.failing {
                intentLog.failing = true
                events.publish(.daemon, agent: nil, EventText.intentNotWritten(error))
            }
        }
        return sequence
    }

    /// Writes a new agent's row down before its process enters its cgroup
    /// (see `ActionIntent.Work.start`).
    func writeStartIntent(_ record: AgentRecord) {
        _ = writeIntent(record.id, at: record.createdAt, .start(record), ladder: AgentLadder(agent: record.id))
    }

    /// Empties the journal once every intent in it is settled (from the
    /// tick): no launch halfway and no agent row waiting to be stored, whose
    /// start intents a restart would need.
    func clearSettledIntents() {
        guard let intents, intentLog.sinceClear >= IntentBookkeeping.clearAfter, writer.settledIntent >= intentLog.last,
            launching.isEmpty, writer.unsavedCount == 0
        else { return }
        do {
            try intents.clear()
            intentLog.sinceClear = 0
        } catch {
            // Kept: a restart ignores settled intents; tried again at the next tick.
        }
    }

    /// What a restart reads from the journal: the step intents to replay
    /// (those past the store's settled mark, in order) and the latest start
    /// intent of each agent (all of them: a start is never marked). Sets the
    /// next sequence past every one.
    func unsettledIntents(settled: UInt64, problems: inout [String]) -> (replay: [ActionIntent], starts: [String: AgentRecord]) {
        guard let intents else { return ([], [:]) }
        do {
            let (all, unreadable) = try intents.read()
            problems += unreadable
            intentLog.next = max(settled, all.map(\.sequence).max() ?? 0) + 1
            var replay: [ActionIntent] = []
            var starts: [String: AgentRecord] = [:]
            for intent in all.sorted(by: { $0.sequence < $1.sequence }) {
                if case .start(let record) = intent.work {
                    starts[intent.agent] = record
                } else if intent.sequence > settled {
                    replay.append(intent)
                }
            }
            return (replay, starts)
        } catch {
            problems.append("the intent journal cannot be read (\(error)): actions of the last moments before the stop are not replayed")
            intentLog.next = settled + 1
            return ([], [:])
        }
    }

    /// After a restart's replay is stored: the journal starts empty.
    func clearReplayedIntents(problems: inout [String]) {
        guard let intents else { return }
        do {
            try intents.clear()
            intentLog.sinceClear = 0
        } catch {
            problems.append(
                "the intent journal cannot be cleared (\(error)); its replayed intents are settled and will not be replayed again")
        }
    }
}
