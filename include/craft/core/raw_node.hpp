#pragma once
/// @file
/// `raw_node`: the core's interface to a runtime. Feed it ticks, messages and proposals; take
/// a `ready` batch, make it durable, send and apply it, then `advance()`.

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "log_reader.hpp"
#include "options.hpp"
#include "raft.hpp"
#include "types.hpp"

namespace craft::core {

/// Volatile state a runtime may want to observe (not persisted).
struct soft_state {
    node_id leader = no_node;
    enum role role = role::follower;

    friend bool operator==(const soft_state&, const soft_state&) = default;
};

/// One batch of work for the runtime. Handle it in this order:
/// 1. send `messages` (the leader's replication traffic: it need not wait for the disk);
/// 2. persist `snapshot`, `entries` (appending, replacing any stored suffix from the first
///    entry's index), `hard` and `conf` — one write, one sync;
/// 3. then send `messages_after_persist`, and apply `committed` in order (after loading
///    `snapshot` into the state machine, if any);
/// 4. call `advance()`.
struct ready {
    std::optional<soft_state> soft;     ///< Leader or role changed.
    std::optional<hard_state> hard;     ///< Term, vote or commit changed: persist.
    std::optional<configuration> conf;  ///< Membership changed: persist.
    std::vector<entry> entries;         ///< Persist before sending `messages_after_persist`.
    std::optional<snapshot_meta> snap;  ///< Installed from the leader: persist, then load it
                                        ///< from the snapshot store.
    std::vector<entry> committed;       ///< Apply, in index order.
    std::vector<message> messages;      ///< Send now.
    std::vector<message> messages_after_persist;  ///< Send once this batch is durable.
    std::vector<read_state> read_states;          ///< Serve once `index` is applied.
    /// This batch stops before a configuration entry (the next batch brings it): write its
    /// `hard` state now, even one that only moves the commit, which a runtime may otherwise
    /// defer to a later write.
    bool hard_first = false;
    /// Set when the core cannot go on: a committed configuration entry it cannot decode
    /// (`committed` stops before it). Write nothing of this batch and stop the node with this
    /// reason; the core hands out nothing more. A restart meets the same entry again.
    std::optional<std::string> fault;

    /// How many of `committed` (a prefix) may be applied before this batch is written: those
    /// stored by earlier batches; none when a configuration entry is among them (its
    /// membership, in force from this batch on, is persisted with it). The rest wait for the
    /// write.
    [[nodiscard]] std::size_t applicable_before_write() const noexcept {
        if (snap) return 0;
        std::size_t n = 0;
        for (const auto& e : committed) {
            if (e.type == entry_type::configuration) return 0;
            if (entries.empty() || e.index < entries.front().index) ++n;
        }
        return n;
    }

    /// True when something must be synced before acknowledging.
    [[nodiscard]] bool must_sync() const noexcept {
        return hard.has_value() || conf.has_value() || snap.has_value() || !entries.empty();
    }
};

/// Snapshot of a node's Raft state for status pages and tests.
struct node_status {
    node_id id = no_node;
    hard_state hard;
    soft_state soft;
    index_t applied = 0;
    index_t first_index = 0;
    index_t last_index = 0;
    configuration conf;
    /// Per member, the leader's view (empty unless leader).
    std::vector<std::pair<node_id, core::progress>> followers;
};

/// Drives a `raft` through ready/advance cycles.
/// @tparam Storage the `log_reader` over this node's durable log.
template <log_reader Storage>
class raw_node {
public:
    /// @param o valid options (see `options::validate`); @param storage must outlive the node.
    raw_node(const options& o, const Storage& storage)
        : r_(o, storage),
          prev_hard_(r_.hard()),
          prev_soft_{r_.leader(), r_.role()},
          prev_conf_version_(r_.conf_version()) {}

    void tick() { r_.tick(); }
    /// Forces an election now (no pre-vote; voters waive leader stickiness), as a
    /// leadership transfer does. Elections normally start on their own from `tick()`.
    void campaign() { r_.campaign_now(); }
    void step(const message& m) { r_.step(m); }
    propose_result propose(std::vector<entry> batch) { return r_.propose(std::move(batch)); }
    propose_result propose_configuration(configuration c) {
        return r_.propose_configuration(std::move(c));
    }
    errc read_index(std::uint64_t context) { return r_.read_index(context); }
    void report_unreachable(node_id peer) { r_.report_unreachable(peer); }
    /// On a leader: sends followers the commit index now rather than on the next tick.
    void notify_commit() { r_.notify_commit(); }
    /// On a leader: tells follower `to` alone; returns the commit index it has been told
    /// (nothing when this node does not lead or `to` is no follower).
    std::optional<index_t> notify_commit(node_id to) { return r_.notify_commit(to); }
    void report_snapshot(node_id peer, bool ok) { r_.report_snapshot(peer, ok); }
    /// The messages that may go out at once (a leader's replication traffic, never votes or
    /// acknowledgements), also while a batch awaits `advance()`: a runtime sends them while
    /// the batch is written, so a leader replicates new entries during its own sync.
    std::vector<message> take_early_messages() {
        if (faulted_) return {};
        return r_.take_messages();
    }

    /// While a batch awaits `advance()`: the committed entries past those handed out that
    /// this node already holds durably, to apply now rather than after the batch is written
    /// (a leader's entries commit while it writes the next ones). Stops before a
    /// configuration entry, which a ready hands out with its membership persisted. Every
    /// committed entry is handed out once, in index order, here or in a ready; `advance()`
    /// records these applied too. The runtime applies the outstanding batch's
    /// `applicable_before_write()` prefix before writing it; when that prefix is not all of
    /// its committed entries, the rest come first, so nothing is handed out here until then.
    std::vector<entry> take_committed() {
        if (!outstanding_ || pending_.holds_committed) return {};
        const auto& log = r_.log();
        auto out =
            log.durable_committed_after(std::max(log.applied(), pending_.applied.value_or(0)));
        const auto conf = std::find_if(out.begin(), out.end(), [](const entry& e) {
            return e.type == entry_type::configuration;
        });
        out.erase(conf, out.end());
        if (!out.empty()) pending_.applied = out.back().index;
        return out;
    }

    /// True when `ready()` has work (and no earlier batch awaits `advance()`).
    [[nodiscard]] bool has_ready() const {
        if (outstanding_ || faulted_) return false;
        const auto& log = r_.log();
        return r_.has_messages() || !log.unstable().entries().empty() ||
               log.unstable().pending_snapshot() || log.has_next_committed() ||
               r_.hard() != prev_hard_ || r_.conf_version() != prev_conf_version_ ||
               soft_state{r_.leader(), r_.role()} != prev_soft_;
    }

    /// Takes the next batch of work. Call `advance()` once it is handled.
    ready get_ready() {
        ready rd;
        auto& log = r_.log();
        rd.entries = log.unstable().entries();
        const bool cut = cut_before_configuration(rd.entries);
        // What is stored once this batch is written: all a cut batch may hand out to apply.
        const index_t stored =
            rd.entries.empty() ? log.unstable().offset() - 1 : rd.entries.back().index;
        rd.committed = log.next_committed(cut ? stored : max_index);
        // Committed configuration changes take effect as they are handed out, so the new
        // membership is persisted in this same batch, before anything is applied.
        for (std::size_t k = 0; k < rd.committed.size(); ++k) {
            const entry& e = rd.committed[k];
            std::string why;
            if (e.type != entry_type::configuration || r_.apply_configuration_entry(e, why))
                continue;
            rd.committed.resize(k);
            rd.fault = "committed configuration entry " + std::to_string(e.index) + " (term " +
                       std::to_string(e.term) + "): " + why;
            faulted_ = true;
            return rd;
        }
        if (const auto& s = log.unstable().pending_snapshot()) rd.snap = *s;
        const soft_state ss{r_.leader(), r_.role()};
        if (ss != prev_soft_) rd.soft = ss;
        if (r_.hard() != prev_hard_) rd.hard = r_.hard();
        // A cut batch stores the commit no further than its own entries (still past the
        // change before the cut: see cut_before_configuration); the next batch stores the rest.
        if (cut && rd.hard) rd.hard->commit = std::min(rd.hard->commit, stored);
        if (r_.conf_version() != prev_conf_version_) rd.conf = r_.conf();
        rd.messages = r_.take_messages();
        // Acknowledgements may vouch for entries this batch does not write: they wait for
        // the batch that does. If the term changed meanwhile, what was held is dropped: a new
        // leader may have replaced the entries it vouches for.
        if (held_term_ != r_.hard().term) held_after_persist_.clear();
        held_term_ = r_.hard().term;
        auto after = r_.take_messages_after_persist();
        if (held_after_persist_.empty()) {
            held_after_persist_ = std::move(after);  // the usual case: nothing held, no copy
        } else {
            held_after_persist_.insert(held_after_persist_.end(),
                                       std::make_move_iterator(after.begin()),
                                       std::make_move_iterator(after.end()));
        }
        if (!cut) rd.messages_after_persist = std::exchange(held_after_persist_, {});
        rd.read_states = r_.take_read_states();
        rd.hard_first = cut;

        pending_ = {};
        if (!rd.entries.empty()) pending_.last = {rd.entries.back().index, rd.entries.back().term};
        if (rd.snap) pending_.snap_index = rd.snap->index;
        if (!rd.committed.empty()) pending_.applied = rd.committed.back().index;
        pending_.holds_committed = rd.applicable_before_write() < rd.committed.size();
        pending_.hard = rd.hard;
        prev_soft_ = ss;
        prev_hard_ = rd.hard && cut ? *rd.hard : r_.hard();
        prev_conf_version_ = r_.conf_version();
        outstanding_ = true;
        return rd;
    }

    /// Acknowledges the last batch: its writes are durable and its committed entries handed
    /// to the state machine.
    void advance() {
        if (!outstanding_) return;
        outstanding_ = false;
        if (pending_.snap_index) r_.on_snapshot_persisted(*pending_.snap_index);
        if (pending_.last) r_.on_persisted(pending_.last->first, pending_.last->second);
        if (pending_.applied) r_.on_applied(*pending_.applied);
        if (pending_.hard) r_.on_hard_state_persisted(*pending_.hard);
    }

    [[nodiscard]] node_status status() const {
        node_status s;
        s.id = r_.id();
        s.hard = r_.hard();
        s.soft = {r_.leader(), r_.role()};
        s.applied = r_.log().applied();
        s.first_index = r_.log().first_index();
        s.last_index = r_.log().last_index();
        s.conf = r_.conf();
        if (r_.role() == role::leader)
            for (const auto& [id, pr] : r_.progresses()) s.followers.emplace_back(id, pr);
        return s;
    }

    /// The underlying state machine, for observation in tests.
    [[nodiscard]] const raft<Storage>& raft_state() const noexcept { return r_; }

private:
    static constexpr index_t max_index = ~index_t{0};

    /// Apply-time membership is safe only if a configuration entry is never stored before a
    /// commit index covering the configuration entry ahead of it is (the "Append" invariant
    /// of etcd-io/etcd#7625): a node restarted with the newer entry but the older commit
    /// would otherwise campaign under a configuration two changes old, whose quorum need not
    /// meet the one that committed the latest entries. A store may keep a prefix of a
    /// crashed write's entries without its hard state, so the batch that first carries a
    /// configuration entry, while the commit index has moved since the last batch, stops
    /// before it: the new commit (which covers the entry before it: a leader proposes a
    /// change only once the previous one is applied, and the append that carries it carries
    /// that commit) is written first, the entry in the next batch. Each entry is cut once.
    /// Returns true when `ents` was cut.
    bool cut_before_configuration(std::vector<entry>& ents) {
        for (std::size_t k = 0; k < ents.size(); ++k) {
            const entry& e = ents[k];
            if (e.type != entry_type::configuration) continue;
            if (cleared_ == std::pair{e.index, e.term}) continue;     // its commit went first
            if (r_.hard().commit <= prev_hard_.commit) return false;  // stored already
            cleared_ = std::pair{e.index, e.term};
            ents.resize(k);
            return true;
        }
        return false;
    }

    struct pending {
        std::optional<std::pair<index_t, term_t>> last;
        std::optional<index_t> snap_index;
        std::optional<index_t> applied;
        std::optional<hard_state> hard;
        bool holds_committed = false;  ///< Some committed entries wait for the write.
    };
    raft<Storage> r_;
    hard_state prev_hard_;
    soft_state prev_soft_;
    std::uint64_t prev_conf_version_;
    pending pending_;
    bool outstanding_ = false;
    bool faulted_ = false;  ///< A ready reported a fault: nothing more is handed out.
    std::optional<std::pair<index_t, term_t>> cleared_;  ///< Cut once already (see above).
    std::vector<message> held_after_persist_;            ///< Wait for the rest of a cut batch.
    term_t held_term_ = 0;                               ///< The term they were held in.
};

}  // namespace craft::core
