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
#include "../detail/snapshot_transfer.hpp"
#include "../detail/state_machine_io.hpp"
#include "../snapshot_options.hpp"
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
    status save_snapshot(snapshot_writer& w) const { return save(values_, w); }
    /// A copy of the state, saved later (possibly elsewhere) while applying goes on.
    auto prepare_snapshot() const {
        return [copy = values_](snapshot_writer& w) { return save(copy, w); };
    }
    status load_snapshot(snapshot_reader& r) {
        auto count = r.read_file("count");
        auto in = r.read_file("values");
        if (!count || !in) return status::error("recording_state_machine: files missing");
        std::vector<std::string> values;
        std::string_view rest(*in);
        while (!rest.empty()) {
            const auto colon = rest.find(':');
            if (colon == std::string_view::npos) break;
            const auto n = std::stoull(std::string(rest.substr(0, colon)));
            if (n > rest.size() - colon - 1) break;
            values.emplace_back(rest.substr(colon + 1, n));
            rest.remove_prefix(colon + 1 + n);
        }
        if (!rest.empty() || std::to_string(values.size()) != *count)
            return status::error("recording_state_machine: damaged snapshot");
        values_ = std::move(values);
        return {};
    }
    /// Commands applied so far, in order.
    [[nodiscard]] const std::vector<std::string>& values() const noexcept { return values_; }

private:
    /// Two files: the number of values, and the values as `<size>:<bytes>`, written in
    /// pieces of about 4 KiB.
    static status save(const std::vector<std::string>& values, snapshot_writer& w) {
        if (auto st = w.add_file("count", std::to_string(values.size())); !st) return st;
        if (auto st = w.open_file("values"); !st) return st;
        std::string piece;
        for (const auto& v : values) {
            piece += std::to_string(v.size());
            piece += ':';
            piece += v;
            if (piece.size() >= 4096) {
                if (auto st = w.write(piece); !st) return st;
                piece.clear();
            }
        }
        return w.write(piece);
    }

    std::vector<std::string> values_;
};

static_assert(state_machine<recording_state_machine>);
static_assert(has_prepare_snapshot<recording_state_machine>);

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
    /// Automatic snapshots and compaction (time in virtual milliseconds); off by default.
    snapshot_options snapshots = {
        .entries = 0, .bytes = 0, .interval = std::chrono::milliseconds(0), .keep_entries = 0};
    /// Shorthand: snapshot every `n` applied entries (0: as `snapshots` says).
    std::size_t snapshot_every = 0;
    /// Use the state machine's `prepare_snapshot` (when it has one) and save the view after a
    /// disk delay while applying goes on; otherwise save synchronously between applies.
    bool prepared_snapshots = true;
    double torn_writes = 0;  ///< Chance that a crash tears the write in progress (0..1).
    std::size_t max_inflight_messages = 64;
    std::size_t max_entries_per_message = 64;
    /// A lost message is reported to its sender's core (`report_unreachable`) at its next
    /// step, as the TCP runtime reports a lost connection or a full send queue.
    bool report_unreachable = false;
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
        std::string failure;  ///< Why the node stopped by itself ("" unless it did).
        std::unique_ptr<log_store_type> store;
        std::unique_ptr<snapshot_store_type> snaps;
        std::unique_ptr<StateMachine> sm;
        std::unique_ptr<raw_node_type> raft;
        std::unique_ptr<detail::snapshot_transfer<snapshot_store_type>> xfer;
        std::optional<core::ready> writing;  ///< The batch on its way to disk.
        sim_time write_done = 0;
        sim_time next_tick = 0;
        index_t applied = 0;
        index_t last_snapshot = 0;
        std::uint64_t bytes_since_snapshot = 0;  ///< Payload applied since the last snapshot.
        sim_time last_snapshot_time = 0;
        /// A prepared snapshot being saved while applying goes on.
        struct snapshot_job {
            snapshot_meta meta;
            detail::snapshot_job save;
            sim_time done = 0;
        };
        std::optional<snapshot_job> snapshotting;
        bool fresh_snapshot_wanted = false;   ///< A transfer found no intact snapshot to send.
        std::size_t snapshots_installed = 0;  ///< Snapshots received from a leader and loaded.
        std::vector<read_state> reads;        ///< Read points confirmed for this node.
        std::vector<node_id> unreachable;     ///< Peers a message to was lost, to report.
    };

    /// How nodes get their storage and state machine. Empty members use defaults: one
    /// in-memory store per node, kept across crashes (the simulated disk), and a
    /// default-constructed state machine. A log or snapshot store factory is called at every
    /// start, so a restarted node reopens its store from disk (LevelDB, files).
    struct factories {
        std::function<std::unique_ptr<log_store_type>(node_id)> log_store;
        std::function<std::unique_ptr<snapshot_store_type>(node_id)> snapshot_store;
        std::function<std::unique_ptr<StateMachine>(node_id)> state_machine;
    };

    explicit cluster(const cluster_options& o, factories f = {})
        : opt_(o), net_(o.seed), make_(std::move(f)) {
        if (opt_.snapshot_every != 0) opt_.snapshots.entries = opt_.snapshot_every;
        for (std::size_t i = 1; i <= o.nodes; ++i) ids_.push_back(i);
        if (opt_.report_unreachable)
            net_.on_drop = [this](const message& m) {
                auto it = nodes_.find(m.from);
                if (it != nodes_.end() && it->second->up) it->second->unreachable.push_back(m.to);
            };
        for (node_id id : ids_) {
            auto n = std::make_unique<node>();
            n->id = id;
            n->next_tick = net_.uniform(1, o.tick);  // nodes tick out of phase
            if constexpr (std::is_default_constructible_v<log_store_type>)
                if (!make_.log_store) n->store = std::make_unique<log_store_type>();
            if constexpr (std::is_default_constructible_v<snapshot_store_type>)
                if (!make_.snapshot_store) n->snaps = std::make_unique<snapshot_store_type>();
            nodes_.emplace(id, std::move(n));
            start(id);
        }
    }

    cluster(const cluster&) = delete;  // the network's drop hook points at this cluster
    cluster& operator=(const cluster&) = delete;

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

    /// Crashes `id`: what its disk had not completed is lost (with `torn_writes`, part of
    /// it may reach the disk, its last entry torn), as is all volatile state.
    void crash(node_id id) {
        node& n = at(id);
        if (!n.up) return;
        if (trace)
            trace("crash " + std::to_string(id) + (n.writing ? " (losing a pending write)" : ""));
        if (n.writing && opt_.torn_writes > 0) tear(n);
        halt(n);
        check_committed_durable("crash of node " + std::to_string(id));
    }
    /// Restarts a crashed (or stopped) node from its durable state.
    void restart(node_id id) {
        node& n = at(id);
        if (n.up) return;
        n.up = true;
        n.next_tick = now_ + net_.uniform(1, opt_.tick);
        start(id);
        if (trace && n.up) {
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
    /// Damages stored entry `i` of node `id` (its checksum will catch it).
    bool corrupt_entry(node_id id, index_t i) {
        if constexpr (requires(log_store_type & l) { l.corrupt_entry(i); })
            return at(id).store->corrupt_entry(i);
        return false;
    }
    /// Damages the newest stored snapshot of node `id`; returns its index (0: none).
    index_t corrupt_snapshot(node_id id) {
        if constexpr (requires(snapshot_store_type & st) { st.corrupt(index_t{}); }) {
            auto all = at(id).snaps->list();
            if (!all.empty() && at(id).snaps->corrupt(all.front().index)) return all.front().index;
        }
        return 0;
    }

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
    /// Nodes that stopped by themselves (corruption they cannot repair), with the reason.
    [[nodiscard]] std::vector<std::pair<node_id, std::string>> failures() const {
        std::vector<std::pair<node_id, std::string>> out;
        for (const auto& [id, n] : nodes_)
            if (!n->failure.empty()) out.emplace_back(id, n->failure);
        return out;
    }

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
        n.failure.clear();
        if (make_.log_store) {
            n.store.reset();  // close, then reopen from disk
            n.store = make_.log_store(id);
            if (!n.store) return stop(n, "its log store cannot be opened");
        } else if constexpr (requires(log_store_type & l) { l.reopen(); }) {
            n.store->reopen();
        }
        if (make_.snapshot_store) {
            n.snaps.reset();
            n.snaps = make_.snapshot_store(id);
            if (!n.snaps) return stop(n, "its snapshot store cannot be opened");
        }
        n.sm = make_.state_machine ? make_.state_machine(id) : std::make_unique<StateMachine>();
        auto rec = detail::recover(*n.sm, *n.store, *n.snaps);
        if (!rec.error.ok()) return stop(n, rec.error.message());
        n.applied = rec.applied;
        n.last_snapshot = rec.applied;
        n.bytes_since_snapshot = 0;
        n.last_snapshot_time = now_;
        n.fresh_snapshot_wanted = false;
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
        n.raft = std::make_unique<raw_node_type>(ro, *n.store);
        detail::snapshot_transfer_options xo;
        xo.chunk_bytes = opt_.snapshots.chunk_bytes;
        n.xfer = std::make_unique<detail::snapshot_transfer<snapshot_store_type>>(id, *n.snaps, xo);
        healthy(n);
    }

    /// Drops everything volatile: the node is down.
    void halt(node& n) {
        n.up = false;
        n.writing.reset();
        n.snapshotting.reset();
        n.xfer.reset();
        n.raft.reset();
        n.sm.reset();
        n.reads.clear();
        n.unreachable.clear();
        std::erase_if(reads_, [&](const auto& kv) { return kv.first.first == n.id; });
    }

    /// The node found a problem it cannot repair and stops rather than serve wrong data.
    void stop(node& n, const std::string& why) {
        n.failure = "node " + std::to_string(n.id) + " stopped: " + why;
        if (trace) trace(n.failure);
        halt(n);
    }

    /// Stops the node if its log store reported corruption; true while it runs.
    bool healthy(node& n) {
        if (!n.up) return false;
        if constexpr (requires(const log_store_type& l) { l.health(); }) {
            if (!n.store->health().ok()) {
                stop(n, n.store->health().message());
                return false;
            }
        }
        if (!n.xfer->error().ok()) {
            stop(n, "receiving a snapshot: " + n.xfer->error().message());
            return false;
        }
        return true;
    }

    /// A crash tears the write in progress: some of its entries reach the disk.
    void tear(node& n) {
        if constexpr (requires(log_store_type & l, const log_write& w) {
                          l.write_torn(w, 1, true);
                      }) {
            if (net_.uniform(0, 999) >= static_cast<sim_time>(opt_.torn_writes * 1000)) return;
            const auto& rd = *n.writing;
            if (rd.snap || rd.entries.empty()) return;
            log_write w;
            w.entries = rd.entries;
            const auto keep = static_cast<std::size_t>(net_.uniform(1, rd.entries.size()));
            const bool torn = net_.uniform(0, 1) == 1;
            if (trace)
                trace("torn write on node " + std::to_string(n.id) + ": " + std::to_string(keep) +
                      " of " + std::to_string(rd.entries.size()) + " entries reach the disk" +
                      (torn ? ", the last one half-written" : ""));
            record_durable_entries(n, nullptr, std::span<const entry>(rd.entries).first(keep));
            n.store->write_torn(w, keep, torn);
            check_overwritten(n);
        }
    }

    // ---- the event loop -----------------------------------------------------------------

    void step_once(sim_time limit) {
        // Jump to the earliest pending event.
        sim_time next = limit;
        for (const auto& [id, n] : nodes_) {
            if (!n->up) continue;
            next = std::min(next, n->next_tick);
            if (n->writing) next = std::min(next, n->write_done);
            if (n->snapshotting) next = std::min(next, n->snapshotting->done);
        }
        if (auto d = net_.next_delivery()) next = std::min(next, *d);
        now_ = std::max(now_, next);

        for (auto& [id, n] : nodes_) {
            if (n->up)
                for (node_id to : std::exchange(n->unreachable, {}))
                    n->raft->report_unreachable(to);
            if (n->up && n->next_tick <= now_) {
                n->raft->tick();
                n->xfer->tick();
                flush_transfer(*n);
                n->next_tick += opt_.tick;
                healthy(*n);
            }
            if (n->up && n->snapshotting && n->snapshotting->done <= now_) {
                auto job = std::move(*n->snapshotting);
                n->snapshotting.reset();
                finish_snapshot(*n, job.meta, job.save);
            }
        }
        net_.deliver_due(now_, [&](message&& m) {
            auto it = nodes_.find(m.to);
            if (it == nodes_.end() || !it->second->up) return;
            if (trace) trace(describe(m));
            deliver(*it->second, std::move(m));
            healthy(*it->second);
        });
        pump();
    }

    void deliver(node& n, message&& m) {
        const index_t snap = m.snap.index;
        if (detail::deliver(*n.raft, *n.xfer, std::move(m)) && trace)
            trace("node " + std::to_string(n.id) + " received snapshot@" + std::to_string(snap) +
                  " in full");
        flush_transfer(n);
    }

    void flush_transfer(node& n) {
        if (!n.up) return;
        for (auto& m : n.xfer->take_messages()) net_.send(std::move(m), now_);
        for (const auto& r : n.xfer->take_reports()) {
            n.raft->report_snapshot(r.peer, r.ok);
            if (!r.ok && n.xfer->missing_snapshot()) n.fresh_snapshot_wanted = true;
        }
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
                // As the runtime does: while a node writes, a leader's replication traffic
                // goes out and committed entries it already stored are applied.
                if (n->up && n->writing) {
                    for (auto& m : n->raft->take_early_messages()) {
                        send(*n, std::move(m));
                        progress = true;
                    }
                    if (auto c = n->raft->take_committed(); !c.empty()) {
                        apply(*n, c);
                        progress = true;
                    }
                }
                if (n->up && !n->writing && n->raft->has_ready()) {
                    begin_write(*n);
                    progress = true;
                }
            }
            check_leaders();
        }
    }

    void begin_write(node& n) {
        core::ready rd = n.raft->get_ready();
        if (rd.fault) return fail("node " + std::to_string(n.id) + " halted: " + *rd.fault);
        if (rd.soft && rd.soft->role != core::role::leader) n.xfer->stop_sending();
        for (auto& m : rd.messages) send(n, std::move(m));
        rd.messages.clear();
        n.write_done = rd.must_sync() ? now_ + net_.uniform(opt_.disk_min, opt_.disk_max) : now_;
        if (const auto k = rd.applicable_before_write(); k > 0 && rd.must_sync()) {
            std::vector<entry> now(rd.committed.begin(),
                                   rd.committed.begin() + static_cast<std::ptrdiff_t>(k));
            rd.committed.erase(rd.committed.begin(),
                               rd.committed.begin() + static_cast<std::ptrdiff_t>(k));
            apply(n, now);
        }
        n.writing = std::move(rd);
        healthy(n);
    }

    void finish_write(node& n) {
        core::ready rd = std::move(*n.writing);
        n.writing.reset();
        if (trace) {
            std::string t = "node " + std::to_string(n.id) + " persists";
            if (rd.snap) t += " snapshot@" + std::to_string(rd.snap->index);
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
        record_durable_entries(n, rd.snap ? &*rd.snap : nullptr, rd.entries);
        log_write w;
        if (rd.snap) w.snap = &*rd.snap;
        w.entries = rd.entries;
        if (rd.hard) w.hard = &*rd.hard;
        if (rd.conf) w.conf = &*rd.conf;
        if (auto st = n.store->write(w); !st) return stop(n, st.message());
        check_overwritten(n);
        if (!ok()) return;
        for (auto& m : rd.messages_after_persist) send(n, std::move(m));
        if (rd.snap) {
            // Installed from the leader: it is already durable in the snapshot store.
            if (auto st = detail::load_snapshot(*n.sm, *n.snaps, rd.snap->index); !st)
                return stop(n, st.message());
            n.applied = rd.snap->index;
            n.last_snapshot = rd.snap->index;
            n.snapshotting.reset();
            ++n.snapshots_installed;
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
        if (healthy(n)) maybe_snapshot(n);
    }

    void send(node& from, message m) {
        if (m.type == message_type::snapshot && !m.snap_partial) {
            from.xfer->offer(m);  // the core names the snapshot; the transfer streams it
            flush_transfer(from);
            return;
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
            n.bytes_since_snapshot += e.data.size();
            record_committed(n, e);
            if (e.type == entry_type::normal && !e.data.empty()) user.push_back(e);
        }
        if (!user.empty()) n.sm->apply(user);
    }

    /// Takes a snapshot when `snapshots` says one is due (or when a transfer found no intact
    /// one to send): a prepared view saved after a disk delay while applying goes on, or a
    /// synchronous save.
    void maybe_snapshot(node& n) {
        if (n.snapshotting || (n.applied <= n.last_snapshot && !n.fresh_snapshot_wanted)) return;
        const bool due =
            opt_.snapshots.due(n.applied - n.last_snapshot, n.bytes_since_snapshot,
                               std::chrono::milliseconds((now_ - n.last_snapshot_time) / 1000));
        if (!due && !n.fresh_snapshot_wanted) return;
        const auto& r = n.raft->raft_state();
        auto t = r.log().term(n.applied);
        if (!t) return;
        n.fresh_snapshot_wanted = false;
        snapshot_meta meta{n.applied, *t, r.conf()};
        if constexpr (has_prepare_snapshot<StateMachine>) {
            if (opt_.prepared_snapshots) {
                n.snapshotting =
                    typename node::snapshot_job{meta, detail::prepare_snapshot(*n.sm),
                                                now_ + net_.uniform(opt_.disk_min, opt_.disk_max)};
                return;
            }
        }
        finish_snapshot(n, meta, [&n](snapshot_writer& w) { return n.sm->save_snapshot(w); });
    }

    /// Stores the snapshot `meta` and compacts the log behind it, keeping
    /// `snapshots.keep_entries`.
    void finish_snapshot(node& n, const snapshot_meta& meta, const detail::snapshot_job& job) {
        n.last_snapshot = std::max(n.last_snapshot, meta.index);
        n.bytes_since_snapshot = 0;
        n.last_snapshot_time = now_;
        // A newer one came (installed from a leader), or this one is stored and intact.
        const auto stored = n.snaps->list();
        if (!stored.empty() && (stored.front().index > meta.index ||
                                (stored.front().index == meta.index && n.snaps->open(meta.index))))
            return;
        if (auto st = detail::write_snapshot(*n.snaps, meta, job); !st)
            return stop(n, st.message());
        if (trace)
            trace("node " + std::to_string(n.id) + " saved snapshot@" + std::to_string(meta.index));
        if (meta.index <= opt_.snapshots.keep_entries) return;
        const index_t upto = meta.index - opt_.snapshots.keep_entries;
        if (upto <= n.store->snapshot_meta().index) return;
        auto t = n.store->term(upto);
        if (!t) return;
        if (auto st = n.store->compact({upto, *t, {}}); !st) return stop(n, st.message());
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
        auto term_at = [&](index_t i) -> std::optional<term_t> {
            if (!snap) return stored_term(*n.store, i);
            if (i == snap->index) return snap->term;
            return std::nullopt;
        };
        for (const auto& e : ents) {
            if (auto old = term_at(e.index); old && *old != e.term) {
                auto c = committed_.find(e.index);
                if (c != committed_.end() && c->second.term == *old) {
                    // A node that was not part of the quorum may lose its copy to a delayed
                    // message of a leader older than the commit (Raft allows it); a leader
                    // of a later term must hold the entry, and a quorum must keep it.
                    auto ct = commit_terms_.find(e.index);
                    if (ct == commit_terms_.end() || e.term >= ct->second.committed_in)
                        return fail(
                            describe(n, "overwrote committed entry " + std::to_string(e.index)));
                    overwritten_.push_back(e.index);
                }
            }
            term_t prev = 0;
            if (&e != ents.data()) {
                prev = (&e - 1)->term;
            } else if (auto t = term_at(e.index - 1)) {
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

    /// A committed entry overwritten on one node must still be durable on a quorum.
    void check_overwritten(const node& n) {
        for (index_t i : std::exchange(overwritten_, {}))
            if (!durable_on_quorum(i, commit_terms_.at(i)))
                return fail(describe(n, "overwrote committed entry " + std::to_string(i) +
                                            ", which is no longer durable on a quorum"));
    }

    /// State machine safety: one entry per index, everywhere; and a newly committed entry
    /// must be durable on a quorum.
    void record_committed(const node& n, const entry& e) {
        auto [it, fresh] = committed_.try_emplace(e.index, e);
        if (!fresh && (it->second.term != e.term || !(it->second.data == e.data)))
            fail(describe(n, "applied a different entry at index " + std::to_string(e.index)));
    }

    /// The term of stored entry `i` as the checker sees it: an entry that fails its checksum
    /// is not there, and looking never trips the store's own corruption report.
    static std::optional<term_t> stored_term(const log_store_type& store, index_t i) {
        if constexpr (requires { store.intact_term(i); })
            return store.intact_term(i);
        else
            return store.term(i);
    }

    /// True when entry `i` is durable on a quorum (both halves when joint) of the
    /// configuration that committed it.
    bool durable_on_quorum(index_t i, const commit_info& ci) const {
        auto holds = [&](node_id id) -> std::optional<bool> {
            auto it = nodes_.find(id);
            if (it == nodes_.end()) return false;
            if (!it->second->store) return false;
            const auto& store = *it->second->store;
            // A durable snapshot covers everything up to its index.
            return i <= store.snapshot_meta().index || stored_term(store, i) == ci.entry_term;
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
    factories make_;
    std::vector<node_id> ids_;
    std::map<node_id, std::unique_ptr<node>> nodes_;
    sim_time now_ = 0;
    std::uint64_t incarnations_ = 0;
    std::map<term_t, node_id> leaders_;
    std::map<std::pair<index_t, term_t>, std::pair<entry, term_t>> by_position_;
    std::map<index_t, entry> committed_;
    std::map<index_t, commit_info> commit_terms_;
    std::shared_ptr<const configuration> last_conf_;
    std::vector<index_t> overwritten_;  // committed entries just overwritten on some node
    std::map<std::pair<node_id, std::uint64_t>, index_t> reads_;  // pending: commit at issue
    std::string violation_;
};

}  // namespace craft::testing
