#pragma once
/// @file
/// Options of the Raft core, and the errors it reports as values.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "types.hpp"

namespace craft::core {

/// Options of one node's Raft core. Times are in ticks: the runtime decides how long a tick
/// is (the simulation uses virtual milliseconds).
struct options {
    node_id id = no_node;           ///< This node; never 0.
    std::vector<node_id> voters;    ///< Bootstrap voters, used when storage has none.
    std::vector<node_id> learners;  ///< Bootstrap learners.
    int election_tick = 10;         ///< Election timeout; randomized in [e, 2e).
    int heartbeat_tick = 1;         ///< Heartbeat interval; must be below election_tick.
    bool pre_vote = true;           ///< Ask before disrupting a cluster (dissertation 9.6).
    bool check_quorum = true;       ///< Leader steps down without a live quorum; lease.
    std::size_t max_entries_per_message = 4096;   ///< Batching bound by count.
    std::size_t max_bytes_per_message = 1 << 20;  ///< Batching bound by bytes.
    std::size_t max_inflight_messages = 256;      ///< Pipelining bound per follower.
    std::size_t max_inflight_bytes = 64u << 20;   ///< Pipelining bound per follower (0: none).
    std::size_t max_apply_bytes = 64u << 20;      ///< Committed bytes per ready batch.
    std::size_t max_uncommitted_bytes = 0;        ///< Leader backpressure (0: none).
    index_t applied = 0;     ///< Last index the state machine already holds (its own durable data).
    std::uint64_t seed = 0;  ///< Seeds election jitter; same seed, same decisions.

    /// A message naming the first invalid option, or nothing when all are valid.
    [[nodiscard]] std::optional<std::string> validate() const {
        if (id == no_node) return "options.id: must not be 0";
        if (heartbeat_tick <= 0) return "options.heartbeat_tick: must be positive";
        if (election_tick <= heartbeat_tick)
            return "options.election_tick: must be greater than heartbeat_tick";
        if (max_entries_per_message == 0)
            return "options.max_entries_per_message: must be positive";
        if (max_bytes_per_message == 0) return "options.max_bytes_per_message: must be positive";
        if (max_inflight_messages == 0) return "options.max_inflight_messages: must be positive";
        if (max_apply_bytes == 0) return "options.max_apply_bytes: must be positive";
        for (node_id v : voters)
            if (v == no_node) return "options.voters: node id 0 is reserved";
        for (node_id l : learners) {
            if (l == no_node) return "options.learners: node id 0 is reserved";
            for (node_id v : voters)
                if (v == l) return "options.learners: a node cannot be both voter and learner";
        }
        return std::nullopt;
    }
};

/// Why the core refused a request.
enum class errc : std::uint8_t {
    ok = 0,
    not_leader,        ///< Only the leader accepts proposals; see `leader`.
    no_leader,         ///< No leader is known to forward a read to.
    proposal_dropped,  ///< The leader's uncommitted-bytes budget is exhausted; retry later.
    config_pending,    ///< A configuration change is still being applied.
    config_invalid,    ///< The requested configuration is not a legal next step.
};

/// Plain-words description of an error code.
[[nodiscard]] constexpr std::string_view to_string(errc e) noexcept {
    switch (e) {
    case errc::ok: return "ok";
    case errc::not_leader: return "this node is not the leader; send the request to the leader";
    case errc::no_leader: return "no leader is known; retry after an election";
    case errc::proposal_dropped: return "too many uncommitted bytes at the leader; retry later";
    case errc::config_pending: return "a configuration change is in progress; retry after it";
    case errc::config_invalid: return "the configuration is not a legal change of the current one";
    }
    return "unknown error";
}

/// Result of a proposal: the indexes and term the entries got, or why they were refused.
struct propose_result {
    errc error = errc::ok;
    index_t first = 0;         ///< Index of the first proposed entry.
    index_t last = 0;          ///< Index of the last proposed entry.
    term_t term = 0;           ///< Term they were proposed in.
    node_id leader = no_node;  ///< Known leader, for redirection when `error` is not_leader.

    [[nodiscard]] bool ok() const noexcept { return error == errc::ok; }
};

}  // namespace craft::core
