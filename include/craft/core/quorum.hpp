#pragma once
/// @file
/// Quorums: majorities over one voter set, and joint quorums over two (Raft dissertation 4.3).

#include <algorithm>  // nth_element
#include <cstdint>
#include <functional>  // std::greater
#include <limits>
#include <optional>
#include <span>
#include <vector>

#include "types.hpp"

namespace craft::core {

/// Outcome of counting votes.
enum class vote_result : std::uint8_t {
    pending,  ///< Neither won nor lost yet.
    lost,     ///< A quorum can no longer be reached.
    won,      ///< A quorum granted.
};

/// The highest index acknowledged by a majority of `voters`, given each voter's acknowledged
/// index (`acked` returns nothing for a voter it has not heard from, counted as 0). An empty
/// voter set places no constraint, so it returns the largest index.
template <class Acked>
[[nodiscard]] index_t majority_committed(std::span<const node_id> voters, Acked&& acked) {
    if (voters.empty()) return std::numeric_limits<index_t>::max();
    // Small clusters: a stack buffer avoids an allocation on the commit path.
    constexpr std::size_t inline_size = 16;
    index_t small[inline_size];
    std::vector<index_t> large;
    index_t* v = small;
    if (voters.size() > inline_size) {
        large.resize(voters.size());
        v = large.data();
    }
    for (std::size_t i = 0; i < voters.size(); ++i) v[i] = acked(voters[i]).value_or(0);
    // Sorted descending, the (n/2)-th value is acknowledged by n/2+1 voters: a majority.
    const std::size_t pos = voters.size() / 2;
    std::nth_element(v, v + pos, v + voters.size(), std::greater<>{});
    return v[pos];
}

/// Vote outcome over one voter set; `vote` returns true (granted), false (rejected) or
/// nothing (not answered yet). An empty voter set wins, so a joint quorum degenerates nicely.
template <class Vote>
[[nodiscard]] vote_result majority_vote(std::span<const node_id> voters, Vote&& vote) {
    if (voters.empty()) return vote_result::won;
    std::size_t granted = 0;
    std::size_t missing = 0;
    for (node_id id : voters) {
        auto v = vote(id);
        if (!v) {
            ++missing;
        } else if (*v) {
            ++granted;
        }
    }
    const std::size_t q = voters.size() / 2 + 1;
    if (granted >= q) return vote_result::won;
    if (granted + missing >= q) return vote_result::pending;
    return vote_result::lost;
}

/// Commit index under a possibly joint configuration: both halves must agree.
template <class Acked>
[[nodiscard]] index_t joint_committed(const configuration& c, Acked&& acked) {
    const index_t a = majority_committed(c.voters, acked);
    const index_t b = majority_committed(c.voters_outgoing, acked);
    return std::min(a, b);
}

/// Vote outcome under a possibly joint configuration: wins only if both halves win.
template <class Vote>
[[nodiscard]] vote_result joint_vote(const configuration& c, Vote&& vote) {
    const vote_result a = majority_vote(c.voters, vote);
    const vote_result b = majority_vote(c.voters_outgoing, vote);
    if (a == b) return a;
    if (a == vote_result::lost || b == vote_result::lost) return vote_result::lost;
    return vote_result::pending;
}

}  // namespace craft::core
