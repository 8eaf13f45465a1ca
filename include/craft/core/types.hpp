#pragma once
/// @file
/// Vocabulary of the Raft core: ids, entries, messages, hard state and configurations.
/// Standard library only, so the core stays pure and deterministic.

#include <algorithm>  // sorted member sets
#include <cstddef>    // std::byte
#include <cstdint>    // ids, terms, indexes
#include <cstring>    // payload copies at the edges
#include <map>        // members' addresses
#include <memory>     // shared payloads
#include <optional>   // absent terms
#include <span>       // byte views
#include <string>     // debugging names
#include <string_view>
#include <vector>

namespace craft {

/// Identifies a node within a cluster; 0 means "nobody".
using node_id = std::uint64_t;
/// A Raft term.
using term_t = std::uint64_t;
/// A position in the replicated log; the first entry has index 1.
using index_t = std::uint64_t;

/// The id that names no node (no vote, no known leader).
inline constexpr node_id no_node = 0;

/// An immutable, reference-counted byte buffer.
///
/// Entry payloads are shared, never copied, between the unstable log, the log store's cache,
/// outgoing messages and the state machine: copying a `shared_bytes` copies a pointer.
class shared_bytes {
public:
    /// An empty buffer; allocates nothing.
    shared_bytes() = default;
    /// Copies `bytes` once into a new shared buffer.
    explicit shared_bytes(std::span<const std::byte> bytes) : size_(bytes.size()) {
        if (size_ != 0) {
            auto p = std::make_shared_for_overwrite<std::byte[]>(size_);
            std::memcpy(p.get(), bytes.data(), size_);
            data_ = std::move(p);
        }
    }
    /// Shares `size` bytes at `owner.get()` with `owner` (no copy): a view into a larger
    /// buffer, such as a received frame, that lives as long as any view of it.
    shared_bytes(std::shared_ptr<const std::byte[]> owner, std::size_t size) noexcept
        : data_(size != 0 ? std::move(owner) : nullptr), size_(size) {}
    /// Copies the characters of `text` once into a new shared buffer.
    explicit shared_bytes(std::string_view text)
        : shared_bytes(std::as_bytes(std::span<const char>(text.data(), text.size()))) {}

    /// Pointer to the first byte (null when empty).
    [[nodiscard]] const std::byte* data() const noexcept { return data_.get(); }
    /// Number of bytes.
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    /// True when the buffer holds no bytes.
    [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
    /// The bytes as a span.
    [[nodiscard]] std::span<const std::byte> bytes() const noexcept { return {data(), size_}; }
    /// The bytes viewed as characters.
    [[nodiscard]] std::string_view str() const noexcept {
        return {reinterpret_cast<const char*>(data()), size_};
    }
    /// Compares contents, not identity.
    friend bool operator==(const shared_bytes& a, const shared_bytes& b) noexcept {
        return a.str() == b.str();
    }

private:
    std::shared_ptr<const std::byte[]> data_;
    std::size_t size_ = 0;
};

/// What an entry carries.
enum class entry_type : std::uint8_t {
    normal = 0,         ///< A state machine command (empty: the leader's no-op of a new term).
    configuration = 1,  ///< An encoded `configuration` (see codec below).
};

/// One log entry.
struct entry {
    term_t term = 0;
    index_t index = 0;
    entry_type type = entry_type::normal;
    shared_bytes data;

    friend bool operator==(const entry&, const entry&) = default;
};

/// Bytes an entry is charged for when batches and inflight windows are bounded.
[[nodiscard]] inline std::size_t entry_cost(const entry& e) noexcept {
    return e.data.size() + 24;
}

/// The state every node must persist before it answers a message (Raft paper, Figure 2),
/// plus the commit index so a restarted node can re-apply without waiting for a leader.
struct hard_state {
    term_t term = 0;
    node_id vote = no_node;
    index_t commit = 0;

    friend bool operator==(const hard_state&, const hard_state&) = default;
};

/// Cluster membership: who votes, and who only receives the log.
///
/// A *joint* configuration (Raft dissertation, section 4.3) has a non-empty `voters_outgoing`:
/// decisions then need a majority of `voters` and, separately, a majority of `voters_outgoing`.
/// Member lists are kept sorted and free of duplicates.
struct configuration {
    std::vector<node_id> voters;           ///< The incoming (or only) voter set.
    std::vector<node_id> voters_outgoing;  ///< The old voter set while joint; empty otherwise.
    std::vector<node_id> learners;         ///< Receive the log, never vote or count.
    /// Opaque data kept per member and replicated with the membership: `basic_node` stores
    /// there the "host:port" of members added with an address. The core never reads it;
    /// `normalize` keeps only members' entries.
    std::map<node_id, std::string> addresses;
    index_t index = 0;  ///< Log index of the entry that created it (0: bootstrap).

    /// True while old and new voter sets must both agree.
    [[nodiscard]] bool joint() const noexcept { return !voters_outgoing.empty(); }
    /// True when `id` votes in either half.
    [[nodiscard]] bool is_voter(node_id id) const noexcept {
        return std::binary_search(voters.begin(), voters.end(), id) ||
               std::binary_search(voters_outgoing.begin(), voters_outgoing.end(), id);
    }
    /// True when `id` is a learner.
    [[nodiscard]] bool is_learner(node_id id) const noexcept {
        return std::binary_search(learners.begin(), learners.end(), id);
    }
    /// Every node that receives the log, sorted.
    [[nodiscard]] std::vector<node_id> members() const {
        std::vector<node_id> all;
        all.reserve(voters.size() + voters_outgoing.size() + learners.size());
        all.insert(all.end(), voters.begin(), voters.end());
        all.insert(all.end(), voters_outgoing.begin(), voters_outgoing.end());
        all.insert(all.end(), learners.begin(), learners.end());
        std::sort(all.begin(), all.end());
        all.erase(std::unique(all.begin(), all.end()), all.end());
        return all;
    }
    /// Sorts and de-duplicates every member list; forgets the addresses of non-members.
    void normalize() {
        for (auto* v : {&voters, &voters_outgoing, &learners}) {
            std::sort(v->begin(), v->end());
            v->erase(std::unique(v->begin(), v->end()), v->end());
        }
        std::erase_if(addresses,
                      [&](const auto& a) { return !is_voter(a.first) && !is_learner(a.first); });
    }
    /// True when the configuration names no voter at all (a node that was never bootstrapped).
    [[nodiscard]] bool empty() const noexcept { return voters.empty() && voters_outgoing.empty(); }

    friend bool operator==(const configuration&, const configuration&) = default;
};

/// Metadata of a snapshot: the last entry it covers and the membership at that point.
struct snapshot_meta {
    index_t index = 0;
    term_t term = 0;
    configuration conf;

    friend bool operator==(const snapshot_meta&, const snapshot_meta&) = default;
};

/// The kinds of messages nodes exchange.
enum class message_type : std::uint8_t {
    vote,                 ///< RequestVote.
    vote_response,        ///< Answer to RequestVote.
    pre_vote,             ///< Would you vote for me? (changes no state; Raft dissertation 9.6).
    pre_vote_response,    ///< Answer to pre_vote.
    append,               ///< AppendEntries carrying entries (or a probe).
    append_response,      ///< Answer to append or snapshot.
    heartbeat,            ///< Leader liveness, commit, and ReadIndex confirmation.
    heartbeat_response,   ///< Answer to heartbeat.
    commit,               ///< One-way commit-index notice; no answer is expected.
    snapshot,             ///< InstallSnapshot.
    read_index,           ///< A follower asks the leader for a linearizable read point.
    read_index_response,  ///< The leader's confirmed read point.
    snapshot_ack,         ///< A follower's answer to one snapshot chunk (runtime only).
    /// A follower passes its clients' proposals to the leader (runtime only): `entries`
    /// carry the commands, `context` names the request.
    propose_forward,
    /// The leader's answer to propose_forward (runtime only): the commands were appended from
    /// `index` in term `log_term`, or `reject` (then `reject_hint` names the leader, if known).
    propose_forward_response,
    /// The leader asks a caught-up follower to campaign now: leadership transfer (runtime only).
    timeout_now,
};

/// The last message type (for range checks when decoding).
inline constexpr message_type last_message_type = message_type::timeout_now;

/// Human-readable name of a message type, for logs and failure reports.
[[nodiscard]] constexpr std::string_view to_string(message_type t) noexcept {
    constexpr std::string_view names[] = {
        "vote",
        "vote_response",
        "pre_vote",
        "pre_vote_response",
        "append",
        "append_response",
        "heartbeat",
        "heartbeat_response",
        "commit",
        "snapshot",
        "read_index",
        "read_index_response",
        "snapshot_ack",
        "propose_forward",
        "propose_forward_response",
        "timeout_now",
    };
    return names[static_cast<std::size_t>(t)];
}

/// One message between two nodes. Field meaning depends on `type`, as in the Raft paper:
/// for append, (`index`, `log_term`) is the entry preceding `entries`; for votes, it is the
/// candidate's last entry; for append_response, `index` is the last matched index (or the
/// rejected one, with `reject_hint` and `log_term` hinting where the logs may agree).
struct message {
    message_type type = message_type::append;
    node_id from = no_node;
    node_id to = no_node;
    term_t term = 0;
    term_t log_term = 0;
    index_t index = 0;
    index_t commit = 0;
    index_t reject_hint = 0;
    bool reject = false;
    std::uint64_t context = 0;  ///< ReadIndex request id carried by heartbeats and read_index.
    std::vector<entry> entries = {};
    snapshot_meta snap = {};  ///< For `snapshot` and `snapshot_ack`: which snapshot.
    /// `snapshot` and `snapshot_ack` between runtimes: the snapshot travels as a byte stream
    /// in chunks. A chunk carries `snap_offset` and `snap_data`; `snap_partial` marks a chunk
    /// still in transit (the core only notes the leader's contact). The core sees a complete
    /// `snapshot` (not partial) only once the runtime holds it durably in its snapshot store.
    /// An ack's `index` is the next offset the follower wants.
    std::uint64_t snap_offset = 0;
    shared_bytes snap_data = {};
    bool snap_partial = false;
};

/// A linearizable read point: once the state machine has applied `index`, a read issued with
/// `context` may be served locally.
struct read_state {
    index_t index = 0;
    std::uint64_t context = 0;

    friend bool operator==(const read_state&, const read_state&) = default;
};

/// What the rest of the cluster persists and restores for a node.
struct persistent_state {
    hard_state hard;
    configuration conf;
};

}  // namespace craft
