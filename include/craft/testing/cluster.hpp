#pragma once
/// @file
/// `cluster`: several nodes (the real Raft core, your state machine, the testing policies)
/// in one process on a simulated network and simulated disks, in virtual time. It checks
/// the Raft invariants after every event and reports the first violation with the virtual
/// time, so a failing seed replays exactly.

#include <algorithm>
#include <cstdint>
#include <functional>  // trace hook
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "../concepts.hpp"
#include "../core/raw_node.hpp"
#include "memory_log_store.hpp"
#include "memory_snapshot_store.hpp"
#include "sim_network.hpp"

namespace craft::testing {

/// The testing policies: in-memory log and snapshot stores.
struct memory_policies {
    using log_store = memory_log_store;
    using snapshot_store = memory_snapshot_store;
};

/// A state machine that records every command it applies, in order (models
/// `craft::state_machine`). Handy as a default and as an example.
class recording_state_machine {
public:
    void apply(std::span<const entry> batch) {
        for (const auto& e : batch) values_.emplace_back(e.data.str());
    }
    [[nodiscard]] shared_bytes save_snapshot() const {
        std::string out;
        for (const auto& v : values_) {
            out += std::to_string(v.size());
            out += ':';
            out += v;
        }
        return shared_bytes(out);
    }
    void load_snapshot(const shared_bytes& b) {
        values_.clear();
        std::string_view in = b.str();
        while (!in.empty()) {
            const auto colon = in.find(':');
            const auto n = std::stoull(std::string(in.substr(0, colon)));
            values_.emplace_back(in.substr(colon + 1, n));
            in.remove_prefix(colon + 1 + n);
        }
    }
    /// Commands applied so far, in order.
    [[nodiscard]] const std::vector<std::string>& values() const noexcept { return values_; }

private:
    std::vector<std::string> values_;
};

static_assert(state_machine<recording_state_machine>);

/// Settings of a simulated cluster.
struct cluster_options {
    std::size_t nodes = 3;
    std::uint64_t seed = 1;
    sim_time tick = 10'000;   ///< One core tick, in virtual microseconds (10 ms).
    int heartbeat_tick = 10;  ///< 100 ms.
    int election_tick = 30;   ///< 300-600 ms.
    bool pre_vote = true;
    bool check_quorum = true;
    sim_time disk_min = 50;  ///< Latency of one durable write (us).
    sim_time disk_max = 500;
    std::size_t snapshot_every = 0;  ///< Snapshot and compact after this many applies (0: never).
    std::size_t max_inflight_messages = 64;
    std::size_t max_entries_per_message = 64;
};

/// Simulated cluster of `StateMachine` nodes over the storage slots of `Policies`.
/// @tparam StateMachine models `craft::state_machine` and is default-constructible.
/// @tparam Policies provides `log_store` and `snapshot_store` types.
template <class StateMachine = recording_state_machine, class Policies = memory_policies>
class cluster {
    static_assert(check_state_machine<StateMachine>());
    static_assert(check_storage_policies<Policies>());

public:
    using log_store_type = typename Policies::log_store;
    using snapshot_store_type = typename Policies::snapshot_store;
    using raw_node_type = core::raw_node<log_store_type>;

    /// One simulated node: durable state survives `crash`, the rest does not.
    struct node {
        node_id id = no_node;
        bool up = true;
        log_store_type store;
        snapshot_store_type snaps;
        std::unique_ptr<StateMachine> sm;
        std::unique_ptr<raw_node_type> raft;
        std::optional<core::ready> writing;  ///< The batch on its way to disk.
        sim_time write_done = 0;
        sim_time next_tick = 0;
        index_t applied = 0;
        index_t last_snapshot = 0;
        std::vector<read_state> reads;  ///< Read points confirmed for this node.
    };

    explicit cluster(const cluster_options& o) : opt_(o), net_(o.seed) {
        for (std::size_t i = 1; i <= o.nodes; ++i) ids_.push_back(i);
        for (node_id id : ids_) {
            auto n = std::make_unique<node>();
            n->id = id;
            n->next_tick = net_.uniform(1, o.tick);  // nodes tick out of phase
            nodes_.emplace(id, std::move(n));
            start(id);
        }
    }

    // ---- driving ------------------------------------------------------------------------

    /// Runs until virtual time `until`, or until an invariant fails.
    void run_until(sim_time until) {
        while (ok() && now_ < until) step_once(until);
    }
    /// Runs for `d` more virtual microseconds.
    void run_for(sim_time d) { run_until(now_ + d); }
    /// Runs until `pred()` holds or `limit` more microseconds pass; returns whether it held.
    template <class Pred>
    bool run_until(Pred&& pred, sim_time limit) {
        const sim_time end = now_ + limit;
        while (ok() && !pred() && now_ < end) step_once(end);
        return ok() && pred();
    }

    /// Proposes `value` on whichever node currently leads (highest term wins ties).
    core::propose_result propose(std::string_view value) {
        auto l = leader();
        if (!l) return {.error = core::errc::no_leader};
        return propose_on(*l, value);
    }
    /// Proposes `value` on node `id`.
    core::propose_result propose_on(node_id id, std::string_view value) {
        node& n = at(id);
        if (!n.up) return {.error = core::errc::not_leader};
        std::vector<entry> batch(1);
        batch[0].data = shared_bytes(value);
        auto r = n.raft->propose(std::move(batch));
        pump();
        return r;
    }
    /// Proposes a configuration change on the leader.
    core::propose_result change_configuration(const configuration& target) {
        auto l = leader();
        if (!l) return {.error = core::errc::no_leader};
        auto r = at(*l).raft->propose_configuration(target);
        pump();
        return r;
    }
    /// Asks node `id` for a linearizable read point tagged `context` (unique per node). When
    /// it arrives (in `node::reads`), it is checked to cover every entry committed before the
    /// request was made.
    core::errc read_index(node_id id, std::uint64_t context) {
        node& n = at(id);
        if (!n.up) return core::errc::no_leader;
        reads_[{id, context}] = global_commit();
        auto e = n.raft->read_index(context);
        if (e != core::errc::ok) reads_.erase({id, context});
        pump();
        return e;
    }

    /// Crashes `id`: what its disk had not completed is lost, as is all volatile state.
    void crash(node_id id) {
        node& n = at(id);
        if (!n.up) return;
        n.up = false;
        if (trace)
            trace("crash " + std::to_string(id) + (n.writing ? " (losing a pending write)" : ""));
        n.writing.reset();
        n.raft.reset();
        n.sm.reset();
        n.reads.clear();
        std::erase_if(reads_, [&](const auto& kv) { return kv.first.first == id; });
        check_committed_durable("crash of node " + std::to_string(id));
    }
    /// Restarts a crashed node from its durable state.
    void restart(node_id id) {
        node& n = at(id);
        if (n.up) return;
        n.up = true;
        n.next_tick = now_ + net_.uniform(1, opt_.tick);
        start(id);
        if (trace) {
            const auto st = n.raft->status();
            trace("restart " + std::to_string(id) + " term " + std::to_string(st.hard.term) +
                  " vote " + std::to_string(st.hard.vote) + " commit " +
                  std::to_string(st.hard.commit) + " last " + std::to_string(st.last_index));
        }
    }

    // ---- faults -------------------------------------------------------------------------

    sim_network& network() noexcept { return net_; }
    /// Cuts `id` off from everyone.
    void isolate(node_id id) { net_.isolate(id, ids_); }
    /// Splits the nodes into `side` and the rest.
    void partition(const std::vector<node_id>& side) {
        std::vector<node_id> rest;
        for (node_id id : ids_)
            if (std::find(side.begin(), side.end(), id) == side.end()) rest.push_back(id);
        net_.cut(side, rest);
    }
    void heal() { net_.heal(); }

    // ---- observing ----------------------------------------------------------------------

    /// The live leader with the highest term, if any.
    [[nodiscard]] std::optional<node_id> leader() const {
        std::optional<node_id> best;
        term_t best_term = 0;
        for (const auto& [id, n] : nodes_) {
            if (!n->up || n->raft->raft_state().role() != core::role::leader) continue;
            if (!best || n->raft->raft_state().term() > best_term) {
                best = id;
                best_term = n->raft->raft_state().term();
            }
        }
        return best;
    }
    /// Number of live leaders that a majority of live nodes follow in the same term.
    [[nodiscard]] std::size_t leader_count() const {
        std::size_t c = 0;
        for (const auto& [id, n] : nodes_)
            if (n->up && n->raft->raft_state().role() == core::role::leader) ++c;
        return c;
    }
    [[nodiscard]] node& at(node_id id) { return *nodes_.at(id); }
    [[nodiscard]] const node& at(node_id id) const { return *nodes_.at(id); }
    [[nodiscard]] const std::vector<node_id>& ids() const noexcept { return ids_; }
    [[nodiscard]] sim_time now() const noexcept { return now_; }
    [[nodiscard]] const cluster_options& options() const noexcept { return opt_; }
    /// Highest index known committed anywhere.
    [[nodiscard]] index_t max_committed() const {
        return committed_.empty() ? 0 : committed_.rbegin()->first;
    }
    /// Every entry ever observed committed, by index.
    [[nodiscard]] const std::map<index_t, entry>& committed_entries() const noexcept {
        return committed_;
    }
    /// True when the committed payload `value` was observed at some index.
    [[nodiscard]] bool committed(std::string_view value) const {
        return std::any_of(committed_.begin(), committed_.end(),
                           [&](const auto& kv) { return kv.second.data.str() == value; });
    }
    /// Receives one line per event (deliveries, writes, crashes) when set: for replaying a
    /// failing seed with `craft_sim --trace`.
    std::function<void(const std::string&)> trace;

    /// True while no invariant has failed.
    [[nodiscard]] bool ok() const noexcept { return violation_.empty(); }
    /// The first invariant violation ("" when none).
    [[nodiscard]] const std::string& violation() const noexcept { return violation_; }
    /// Checks that every committed entry is still durable on a quorum (also done on crashes).
    bool verify_durability() { return check_committed_durable("explicit check"); }

private:
    /// What the checker knows of a committed index.
    struct commit_info {
        term_t entry_term = 0;                      ///< Term of the committed entry.
        term_t committed_in = 0;                    ///< Term of the leader that committed it.
        std::shared_ptr<const configuration> conf;  ///< The configuration it was committed under.
    };

    // ---- node lifecycle -----------------------------------------------------------------

    void start(node_id id) {
        node& n = at(id);
        n.sm = std::make_unique<StateMachine>();
        n.applied = 0;
        if (auto s = n.snaps.latest()) {
            n.sm->load_snapshot(s->data);
            n.applied = s->meta.index;
            n.last_snapshot = s->meta.index;
        }
        core::options ro;
        ro.id = id;
        ro.voters = ids_;
        ro.election_tick = opt_.election_tick;
        ro.heartbeat_tick = opt_.heartbeat_tick;
        ro.pre_vote = opt_.pre_vote;
        ro.check_quorum = opt_.check_quorum;
        ro.max_inflight_messages = opt_.max_inflight_messages;
        ro.max_entries_per_message = opt_.max_entries_per_message;
        ro.applied = n.applied;
        ro.seed = opt_.seed * 1'000'003 + id + 7919 * (++incarnations_);
        n.raft = std::make_unique<raw_node_type>(ro, n.store);
    }

    // ---- the event loop -----------------------------------------------------------------

    void step_once(sim_time limit) {
        // Jump to the earliest pending event.
        sim_time next = limit;
        for (const auto& [id, n] : nodes_) {
            if (!n->up) continue;
            next = std::min(next, n->next_tick);
            if (n->writing) next = std::min(next, n->write_done);
        }
        if (auto d = net_.next_delivery()) next = std::min(next, *d);
        now_ = std::max(now_, next);

        for (auto& [id, n] : nodes_) {
            if (n->up && n->next_tick <= now_) {
                n->raft->tick();
                n->next_tick += opt_.tick;
            }
        }
        net_.deliver_due(now_, [&](message&& m) {
            auto it = nodes_.find(m.to);
            if (it == nodes_.end() || !it->second->up) return;
            if (trace) trace(describe(m));
            it->second->raft->step(m);
        });
        pump();
    }

    /// Moves every node's ready batches along (sends, disk writes, applies) at `now_`.
    void pump() {
        check_leaders();  // before any ready batch switches a configuration
        bool progress = true;
        while (progress && ok()) {
            progress = false;
            for (auto& [id, n] : nodes_) {
                if (!n->up) continue;
                if (n->writing && n->write_done <= now_) {
                    finish_write(*n);
                    progress = true;
                }
                if (!n->writing && n->raft->has_ready()) {
                    begin_write(*n);
                    progress = true;
                }
            }
            check_leaders();
        }
    }

    void begin_write(node& n) {
        core::ready rd = n.raft->get_ready();
        for (auto& m : rd.messages) send(n, std::move(m));
        rd.messages.clear();
        n.write_done = rd.must_sync() ? now_ + net_.uniform(opt_.disk_min, opt_.disk_max) : now_;
        n.writing = std::move(rd);
    }

    void finish_write(node& n) {
        core::ready rd = std::move(*n.writing);
        n.writing.reset();
        if (rd.snap) {
            snapshot s = *rd.snap;
            if (auto st = n.snaps.save(s); !st) return fail(st.message());
        }
        if (trace) {
            std::string t = "node " + std::to_string(n.id) + " persists";
            if (rd.snap) t += " snapshot@" + std::to_string(rd.snap->meta.index);
            if (!rd.entries.empty())
                t += " entries " + std::to_string(rd.entries.front().index) + ".." +
                     std::to_string(rd.entries.back().index) + " (last term " +
                     std::to_string(rd.entries.back().term) + ")";
            if (rd.hard)
                t += " hard{term " + std::to_string(rd.hard->term) + " vote " +
                     std::to_string(rd.hard->vote) + " commit " + std::to_string(rd.hard->commit) +
                     "}";
            if (rd.soft)
                t += " now " + std::string(core::to_string(rd.soft->role)) + " (leader " +
                     std::to_string(rd.soft->leader) + ")";
            trace(t);
        }
        record_durable_entries(n, rd.snap ? &rd.snap->meta : nullptr, rd.entries);
        log_write w;
        if (rd.snap) w.snap = &rd.snap->meta;
        w.entries = rd.entries;
        if (rd.hard) w.hard = &*rd.hard;
        if (rd.conf) w.conf = &*rd.conf;
        if (auto st = n.store.write(w); !st) return fail(st.message());
        if (!ok()) return;
        for (auto& m : rd.messages_after_persist) send(n, std::move(m));
        if (rd.snap) {
            n.sm->load_snapshot(rd.snap->data);
            n.applied = rd.snap->meta.index;
            n.last_snapshot = rd.snap->meta.index;
        }
        apply(n, rd.committed);
        for (const auto& r : rd.read_states) {
            auto it = reads_.find({n.id, r.context});
            if (it != reads_.end()) {
                if (r.index < it->second)
                    return fail(describe(
                        n, "read " + std::to_string(r.context) + " got read point " +
                               std::to_string(r.index) + " but " + std::to_string(it->second) +
                               " was committed before it was issued (stale read)"));
                reads_.erase(it);
            }
            n.reads.push_back(r);
        }
        n.raft->advance();
        check_leaders();  // the leader's own sync may have advanced its commit
        maybe_snapshot(n);
    }

    void send(node& from, message m) {
        if (m.type == message_type::snapshot) {
            // Send the newest snapshot: any snapshot at or past the one the core chose will do.
            auto s = from.snaps.latest();
            if (!s || s->meta.index < m.snap.index) {
                from.raft->report_snapshot(m.to, false);
                return;
            }
            m.snap = s->meta;
            m.snap_data = s->data;
            from.raft->report_snapshot(m.to, true);
        }
        net_.send(std::move(m), now_);
    }

    void apply(node& n, const std::vector<entry>& ents) {
        std::vector<entry> user;
        for (const auto& e : ents) {
            if (e.index != n.applied + 1)
                return fail(describe(n, "applied index " + std::to_string(e.index) + " after " +
                                            std::to_string(n.applied) + " (out of order)"));
            n.applied = e.index;
            record_committed(n, e);
            if (e.type == entry_type::normal && !e.data.empty()) user.push_back(e);
        }
        if (!user.empty()) n.sm->apply(user);
    }

    void maybe_snapshot(node& n) {
        if (opt_.snapshot_every == 0 || n.applied < n.last_snapshot + opt_.snapshot_every) return;
        const auto& r = n.raft->raft_state();
        auto t = r.log().term(n.applied);
        if (!t) return;
        snapshot s{{n.applied, *t, r.conf()}, n.sm->save_snapshot()};
        if (auto st = n.snaps.save(s); !st) return fail(st.message());
        n.last_snapshot = n.applied;
        if (auto st = n.store.compact(s.meta); !st) return fail(st.message());
    }

    // ---- invariants ---------------------------------------------------------------------

    void fail(std::string what) {
        if (violation_.empty()) {
            std::ostringstream os;
            os << "at t=" << now_ << "us: " << what;
            violation_ = os.str();
        }
    }

    static std::string describe(const message& m) {
        std::string t = std::to_string(m.from) + "->" + std::to_string(m.to) + " " +
                        std::string(to_string(m.type)) + " term " + std::to_string(m.term) +
                        " index " + std::to_string(m.index) + " log_term " +
                        std::to_string(m.log_term) + " commit " + std::to_string(m.commit);
        if (!m.entries.empty())
            t += " entries " + std::to_string(m.entries.front().index) + ".." +
                 std::to_string(m.entries.back().index);
        if (m.reject) t += " REJECT hint " + std::to_string(m.reject_hint);
        if (m.type == message_type::snapshot) t += " snapshot@" + std::to_string(m.snap.index);
        return t;
    }

    std::string describe(const node& n, const std::string& what) const {
        return "node " + std::to_string(n.id) + ": " + what;
    }

    /// Election safety (at most one leader per term) and Leader Completeness (an entry
    /// committed in term T is in the log of every leader of a term after T).
    void check_leaders() {
        for (const auto& [id, n] : nodes_) {
            if (!n->up) continue;
            const auto& r = n->raft->raft_state();
            if (r.role() != core::role::leader) continue;
            auto [it, fresh] = leaders_.try_emplace(r.term(), id);
            if (it->second != id) {
                return fail("two leaders in term " + std::to_string(r.term()) + ": nodes " +
                            std::to_string(it->second) + " and " + std::to_string(id));
            }
            const auto& log = r.log();
            if (fresh) {
                for (auto c = commit_terms_.lower_bound(log.first_index());
                     c != commit_terms_.end(); ++c) {
                    if (c->second.committed_in < r.term() &&
                        log.term(c->first) != c->second.entry_term)
                        return fail(describe(*n, "leader of term " + std::to_string(r.term()) +
                                                     " lacks entry " + std::to_string(c->first) +
                                                     " committed in term " +
                                                     std::to_string(c->second.committed_in)));
                }
            }
            // Record what this leader commits, in which term and under which configuration;
            // each newly committed entry must be durable on a quorum of that configuration.
            const index_t from = commit_terms_.empty() ? 0 : commit_terms_.rbegin()->first;
            if (log.committed() <= from) continue;
            if (!last_conf_ || !(*last_conf_ == r.conf()))
                last_conf_ = std::make_shared<const configuration>(r.conf());
            for (index_t i = std::max(from + 1, log.first_index()); i <= log.committed(); ++i) {
                commit_info ci{log.term(i).value_or(0), r.term(), last_conf_};
                if (!durable_on_quorum(i, ci))
                    return fail(describe(*n, "entry " + std::to_string(i) +
                                                 " committed but not durable on a quorum"));
                commit_terms_.emplace(i, std::move(ci));
            }
        }
    }

    /// Log Matching: an (index, term) pair names one entry, with one predecessor term,
    /// everywhere; and no committed entry is ever overwritten.
    /// (`snap`, when not null, is written first in the same write: it replaces the log.)
    void record_durable_entries(const node& n, const snapshot_meta* snap,
                                std::span<const entry> ents) {
        // What the store holds at `i` once the snapshot (if any) is written.
        auto stored_term = [&](index_t i) -> std::optional<term_t> {
            if (!snap) return n.store.term(i);
            if (i == snap->index) return snap->term;
            return std::nullopt;
        };
        for (const auto& e : ents) {
            if (auto old = stored_term(e.index); old && *old != e.term) {
                auto c = committed_.find(e.index);
                if (c != committed_.end() && c->second.term == *old)
                    return fail(
                        describe(n, "overwrote committed entry " + std::to_string(e.index)));
            }
            term_t prev = 0;
            if (&e != ents.data()) {
                prev = (&e - 1)->term;
            } else if (auto t = stored_term(e.index - 1)) {
                prev = *t;
            } else {
                prev = ~term_t{0};  // unknown (compacted): not compared
            }
            auto [it, fresh] = by_position_.try_emplace({e.index, e.term}, e, prev);
            if (fresh) continue;
            if (!(it->second.first.data == e.data) || it->second.first.type != e.type)
                return fail(describe(n, "entry " + std::to_string(e.index) + " of term " +
                                            std::to_string(e.term) + " differs between nodes"));
            if (prev != ~term_t{0} && it->second.second != ~term_t{0} && it->second.second != prev)
                return fail(describe(n, "entries before " + std::to_string(e.index) +
                                            " differ although entry terms match (log matching)"));
            if (it->second.second == ~term_t{0}) it->second.second = prev;
        }
    }

    /// State machine safety: one entry per index, everywhere; and a newly committed entry
    /// must be durable on a quorum.
    void record_committed(const node& n, const entry& e) {
        auto [it, fresh] = committed_.try_emplace(e.index, e);
        if (!fresh && (it->second.term != e.term || !(it->second.data == e.data)))
            fail(describe(n, "applied a different entry at index " + std::to_string(e.index)));
    }

    /// True when entry `i` is durable on a quorum (both halves when joint) of the
    /// configuration that committed it.
    bool durable_on_quorum(index_t i, const commit_info& ci) const {
        auto holds = [&](node_id id) -> std::optional<bool> {
            auto it = nodes_.find(id);
            if (it == nodes_.end()) return false;
            const auto& store = it->second->store;
            // A durable snapshot covers everything up to its index.
            return i <= store.snapshot_meta().index || store.term(i) == ci.entry_term;
        };
        return core::joint_vote(*ci.conf, holds) == core::vote_result::won;
    }

    /// Highest index known committed anywhere (by a leader, or applied by any node).
    [[nodiscard]] index_t global_commit() const {
        index_t c = max_committed();
        if (!commit_terms_.empty()) c = std::max(c, commit_terms_.rbegin()->first);
        return c;
    }

    bool check_committed_durable(const std::string& when) {
        for (const auto& [i, ci] : commit_terms_) {
            if (!durable_on_quorum(i, ci)) {
                fail("committed entry " + std::to_string(i) +
                     " no longer durable on a quorum after " + when);
                return false;
            }
        }
        return true;
    }

    cluster_options opt_;
    sim_network net_;
    std::vector<node_id> ids_;
    std::map<node_id, std::unique_ptr<node>> nodes_;
    sim_time now_ = 0;
    std::uint64_t incarnations_ = 0;
    std::map<term_t, node_id> leaders_;
    std::map<std::pair<index_t, term_t>, std::pair<entry, term_t>> by_position_;
    std::map<index_t, entry> committed_;
    std::map<index_t, commit_info> commit_terms_;
    std::shared_ptr<const configuration> last_conf_;
    std::map<std::pair<node_id, std::uint64_t>, index_t> reads_;  // pending: commit at issue
    std::string violation_;
};

}  // namespace craft::testing
