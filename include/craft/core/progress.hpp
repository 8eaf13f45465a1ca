#pragma once
/// @file
/// What a leader knows about each follower's log, and the flow control it applies.

#include <algorithm>
#include <cstdint>
#include <string_view>

#include "inflights.hpp"
#include "types.hpp"

namespace craft::core {

/// How the leader currently replicates to one follower.
enum class replication_state : std::uint8_t {
    probe,      ///< One message per heartbeat until the match point is found.
    replicate,  ///< Optimistic pipelining: next index advances as entries are sent.
    snapshot,   ///< A snapshot is on its way; nothing else is sent.
};

/// Name of a replication state, for status output.
[[nodiscard]] constexpr std::string_view to_string(replication_state s) noexcept {
    switch (s) {
    case replication_state::probe: return "probe";
    case replication_state::replicate: return "replicate";
    case replication_state::snapshot: return "snapshot";
    }
    return "?";
}

/// The leader's view of one follower (Raft paper's nextIndex and matchIndex, plus flow
/// control after etcd/raft's progress).
struct progress {
    index_t match = 0;  ///< Highest index known to be durable on the follower.
    index_t next = 1;   ///< Next index to send.
    replication_state state = replication_state::probe;
    bool probe_sent = false;        ///< In probe: a message is outstanding.
    index_t pending_snapshot = 0;   ///< In snapshot: the snapshot's index.
    index_t commit_sent = 0;        ///< Highest commit index told to the follower.
    index_t commit_known = 0;       ///< Highest commit index the follower said it knows.
    std::uint64_t last_active = 0;  ///< Tick at which the follower last answered.
    std::uint64_t last_sent = 0;    ///< Tick at which an append was last sent.
    bool learner = false;
    core::inflights window;  ///< In replicate: messages in flight.

    progress(index_t next_index, std::size_t max_inflight, std::size_t max_inflight_bytes)
        : next(next_index), window(max_inflight, max_inflight_bytes) {}

    /// Back to probing (after a rejection or an unreachable report).
    void become_probe() {
        if (state == replication_state::snapshot) {
            const index_t pending = pending_snapshot;
            reset_state(replication_state::probe);
            next = std::max(match + 1, pending + 1);
        } else {
            reset_state(replication_state::probe);
            next = match + 1;
        }
    }
    /// Matched: start pipelining.
    void become_replicate() {
        reset_state(replication_state::replicate);
        next = match + 1;
    }
    /// The follower needs the snapshot at `index`.
    void become_snapshot(index_t index) {
        reset_state(replication_state::snapshot);
        pending_snapshot = index;
    }
    /// Records an acknowledgement of `n`; true if it moved the match point.
    bool maybe_update(index_t n) {
        bool updated = false;
        if (match < n) {
            match = n;
            updated = true;
            probe_sent = false;
        }
        next = std::max(next, n + 1);
        return updated;
    }
    /// Entries up to `n` were sent optimistically.
    void optimistic_update(index_t n) { next = n + 1; }
    /// Handles a rejection of the append at `rejected`; `hint` is where to probe next.
    /// False when the rejection is stale (from an earlier, already superseded message).
    bool maybe_decrease_to(index_t rejected, index_t hint) {
        if (state == replication_state::replicate) {
            if (rejected <= match) return false;  // stale
            next = match + 1;
            return true;
        }
        if (next == 0 || next - 1 != rejected) return false;  // stale
        next = std::max<index_t>(std::min(rejected, hint + 1), match + 1);
        probe_sent = false;
        return true;
    }
    /// True when nothing more should be sent until an answer arrives.
    [[nodiscard]] bool paused() const noexcept {
        switch (state) {
        case replication_state::probe: return probe_sent;
        case replication_state::replicate: return window.full();
        case replication_state::snapshot: return true;
        }
        return true;
    }

private:
    void reset_state(replication_state s) {
        probe_sent = false;
        pending_snapshot = 0;
        state = s;
        window.reset();
    }
};

}  // namespace craft::core
