#pragma once
/// @file
/// ReadIndex (Raft dissertation 6.4): read requests waiting for a heartbeat quorum.

#include <algorithm>
#include <cstdint>
#include <deque>
#include <vector>

#include "quorum.hpp"
#include "types.hpp"

namespace craft::core {

/// A read request confirmed by a quorum: serve it once `index` is applied.
struct ready_read {
    read_state state;
    node_id requester = no_node;  ///< Who asked (the leader itself, or a follower).
};

/// The leader's queue of read requests awaiting confirmation that it still leads.
class read_only_queue {
public:
    /// Queues the request `context` of `requester`, whose read point is `commit`; heartbeats
    /// carry `key` (unique on this leader) to confirm it. `self` acknowledges at once.
    void add(index_t commit, std::uint64_t context, node_id requester, node_id self,
             std::uint64_t key) {
        pending_.push_back({{{commit, context}, requester}, key, {self}});
    }
    /// Records a heartbeat answer carrying `key` from `from`. When the request with that
    /// key has a quorum under `conf`, it and every request queued before it are confirmed
    /// (a quorum that answered a later heartbeat also vouches for the earlier ones) and moved
    /// to `out`.
    void acknowledge(node_id from, std::uint64_t key, const configuration& conf,
                     std::vector<ready_read>& out) {
        auto it = std::find_if(pending_.begin(), pending_.end(),
                               [&](const request& r) { return r.key == key; });
        if (it == pending_.end()) return;
        if (std::find(it->acks.begin(), it->acks.end(), from) == it->acks.end())
            it->acks.push_back(from);
        const auto& acks = it->acks;
        auto granted = [&](node_id id) -> std::optional<bool> {
            if (std::find(acks.begin(), acks.end(), id) != acks.end()) return true;
            return std::nullopt;
        };
        if (joint_vote(conf, granted) != vote_result::won) return;
        const auto end = std::next(it);
        for (auto r = pending_.begin(); r != end; ++r) out.push_back(r->read);
        pending_.erase(pending_.begin(), end);
    }
    [[nodiscard]] bool empty() const noexcept { return pending_.empty(); }
    [[nodiscard]] std::size_t size() const noexcept { return pending_.size(); }
    /// Drops every request (leadership lost); returns them so callers can be told.
    std::vector<ready_read> clear() {
        std::vector<ready_read> dropped;
        for (auto& r : pending_) dropped.push_back(r.read);
        pending_.clear();
        return dropped;
    }

private:
    struct request {
        ready_read read;
        std::uint64_t key = 0;
        std::vector<node_id> acks;
    };
    std::deque<request> pending_;
};

}  // namespace craft::core
