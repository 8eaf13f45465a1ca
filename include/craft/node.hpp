#pragma once
/// @file
/// `basic_node<StateMachine, Policies>`: the runtime shell. It drives the pure core with real
/// time and threads, the way DESIGN.md draws it:
///
/// - the **core strand** is the only place Raft state changes (never locked, never blocks on
///   I/O): it merges the proposals of every caller into one batch per step, steps messages,
///   ticks, sends the leader's replication traffic at once, and hands the rest of each ready
///   batch to the log thread. One thread at a time steps it: the core thread (ticks, and
///   what callers propose or read), or, sparing a thread hand-off each way, the transport's
///   I/O thread right after a read brought messages, or the log thread right after a write;
/// - the **log thread** writes each batch with one sync, reports it durable to the core
///   (which then sends the acknowledgements and counts the leader itself), and compacts;
/// - the **apply thread** feeds committed entries to the state machine in index order, in
///   batches, completes each proposer's future with its result (only on the node that
///   proposed it), serves linearizable reads, runs the state machine's hooks, and takes
///   snapshots;
/// - the **transport** has its own I/O thread.
///
/// `node<SM>` is the alias with `default_policies` (LevelDB, snapshot files, TCP, stderr).

#include <cereal/archives/portable_binary.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "concepts.hpp"
#include "core/conf_codec.hpp"
#include "core/raw_node.hpp"
#include "detail/snapshot_transfer.hpp"
#include "detail/state_machine_io.hpp"
#include "detail/thread_name.hpp"
#include "logger.hpp"
#include "metrics.hpp"
#include "snapshot/file_snapshot_store.hpp"
#include "snapshot_options.hpp"
#include "storage/leveldb_log_store.hpp"
#include "transport/asio_tcp_transport.hpp"

namespace craft {

/// The default policies: LevelDB log, snapshot files, TCP, stderr logging.
struct default_policies {
    using log_store = leveldb_log_store;
    using snapshot_store = file_snapshot_store;
    using transport = asio_tcp_transport;
    using logger = stderr_logger;
};

/// How a node is set up. `validate()` names the first option that is wrong.
struct node_options {
    node_id id = no_node;          ///< This node (never 0).
    std::uint64_t cluster_id = 1;  ///< Data directories and peers must match it.
    /// The address book: the nodes of the first configuration, this one included (it listens
    /// on its own entry), and any other this node should know by address. Membership is the
    /// configuration in the log. A member added by `change_membership` with an address has it
    /// recorded in the configuration, which every member reads (it overrides an entry here
    /// for that id); one added without needs an entry here on every member.
    std::map<node_id, tcp_endpoint> peers;
    /// The voters of a new cluster, its first configuration; empty: every peer. A node not
    /// among them starts outside the configuration and waits to be added with
    /// `change_membership` (it never campaigns). Ignored once the log holds a configuration.
    std::vector<node_id> initial_voters;
    std::filesystem::path data_dir;      ///< Log in `log/`, snapshots in `snapshots/`.
    std::chrono::milliseconds tick{10};  ///< Resolution of the core's timers.
    std::chrono::milliseconds heartbeat_interval{100};  ///< Leader heartbeats.
    std::chrono::milliseconds election_timeout{1000};   ///< Randomized in [t, 2t).
    /// A read, or a proposal forwarded to the leader, not answered by then fails.
    std::chrono::milliseconds read_timeout{5000};
    bool sync = true;  ///< Sync each write before acknowledging (off risks acknowledged data).
    bool pre_vote = true;
    bool check_quorum = true;
    std::size_t max_entries_per_message = 4096;
    std::size_t max_bytes_per_message = 1 << 20;
    /// Appends sent to a follower and not yet acknowledged. Entries proposed meanwhile wait
    /// at the leader and go in one append when an acknowledgement frees a slot, so a busy
    /// leader sends fewer, larger messages. Two keep a follower's disk busy (one batch being
    /// written, the next one waiting), which NuRaft's default of one at a time does not;
    /// etcd's 256 made craft_bench's leader send an append for every proposal step, at 10-25 %
    /// more CPU per operation (benchmarks/README.md). Raise it for links with long round
    /// trips. Both appends lost with a dropped connection are resent at the next proposal:
    /// the transport reports the loss (`on_unreachable`, see concepts.hpp); a transport that
    /// cannot leaves the leader to find out from a heartbeat's answer (up to two intervals).
    std::size_t max_inflight_messages = 2;
    std::size_t max_proposals_per_batch = 4096;  ///< Proposals merged into one step.
    /// The largest command `propose` takes; a larger one is refused at once, naming both
    /// sizes. An append carries up to `max_bytes_per_message` and then one more entry, and
    /// must fit in one transport frame (64 MiB with asio_tcp_transport), so the two together
    /// may not pass `max_message_bytes`. Without the bound, a command too large for a frame
    /// was accepted, and every follower closed the connection that carried it, again and
    /// again, until the leader lost its term. Give every node the same value.
    std::size_t max_entry_bytes = 32u << 20;
    /// What `max_bytes_per_message + max_entry_bytes` may reach: the default transport's
    /// 64 MiB frame less 1 MiB for the message's own fields and entry headers.
    static constexpr std::size_t max_message_bytes = (64u << 20) - (1u << 20);
    /// A follower passes proposals to the leader (TAF libraft's doForward, etcd's MsgProp
    /// forwarding); the caller gets the result once this node applied the entry. Off: a
    /// follower refuses proposals, naming the leader.
    bool forward_proposals = true;
    snapshot_options snapshots;

    /// The first invalid option, or nothing.
    [[nodiscard]] std::optional<std::string> validate() const {
        if (id == no_node) return "node_options.id: must not be 0";
        if (!peers.count(id)) return "node_options.peers: must include this node's own address";
        for (const auto& [pid, ep] : peers)
            if (pid == no_node) return "node_options.peers: node id 0 is reserved";
        for (node_id v : initial_voters)
            if (!peers.count(v))
                return "node_options.initial_voters: node " + std::to_string(v) +
                       " has no address in peers";
        if (tick.count() <= 0) return "node_options.tick: must be positive";
        if (heartbeat_interval < tick)
            return "node_options.heartbeat_interval: must be at least one tick";
        if (election_timeout <= heartbeat_interval)
            return "node_options.election_timeout: must be greater than heartbeat_interval";
        if (read_timeout <= std::chrono::milliseconds(0))
            return "node_options.read_timeout: must be positive";
        if (max_entries_per_message == 0 || max_bytes_per_message == 0 ||
            max_inflight_messages == 0 || max_proposals_per_batch == 0 || max_entry_bytes == 0)
            return "node_options.max_*: must be positive";
        if (max_bytes_per_message > max_message_bytes ||
            max_entry_bytes > max_message_bytes - max_bytes_per_message)
            return "node_options.max_entry_bytes: with max_bytes_per_message (" +
                   std::to_string(max_bytes_per_message) + ") it may reach " +
                   std::to_string(max_message_bytes) + " bytes (one transport frame), not " +
                   std::to_string(max_bytes_per_message + max_entry_bytes);
        if (snapshots.chunk_bytes == 0)
            return "node_options.snapshots.chunk_bytes: must be positive";
        return std::nullopt;
    }
};

/// The outcome of a proposal or a read: the state machine's result, or why there is none.
/// @tparam R the state machine's result type (`std::monostate` when it returns none).
template <class R>
struct outcome {
    status error;                ///< Ok, or why the command was not (known to be) applied.
    R value{};                   ///< The state machine's result (when ok).
    index_t index = 0;           ///< Log index of the command.
    node_id leader = no_node;    ///< When refused as not leader: the leader, if known...
    std::string leader_address;  ///< ...and where it listens.
    /// On failure: true when the command is known never to be applied (refused before it
    /// reached the log, or its entry was replaced), so a retry cannot apply it twice; false
    /// when the outcome is unknown (timed out, node stopped while waiting).
    bool not_applied = false;

    [[nodiscard]] bool ok() const noexcept { return error.ok(); }
};

/// One node's change of role, made by the leader to the configuration in force when its
/// core takes the request (braft's add_peer / remove_peer, NuRaft's add_srv / remove_srv):
/// two operators' changes never undo each other, as two whole configurations computed from
/// the same earlier one could. See `basic_node::add_learner`.
struct membership_edit {
    enum class kind { add_learner, add_voter, remove };
    kind what = kind::add_learner;
    node_id id = no_node;
    std::optional<tcp_endpoint> address;  ///< Recorded in the configuration (add only).
};

/// What a node reports about itself (for status pages and tests).
struct node_state {
    core::node_status raft;
    index_t applied = 0;
    index_t snapshot_index = 0;  ///< The newest snapshot taken or installed (0: none).
    term_t snapshot_term = 0;
    bool running = false;
    status failure;  ///< Why the node stopped by itself, if it did.
};

namespace detail {

/// The per-entry results of a state machine whose `apply` returns `std::vector<R>`.
template <class SM>
struct apply_result {
    using type = std::monostate;
};
template <class SM>
requires requires(SM& m, std::span<const entry> b) {
    { m.apply(b) } -> std::same_as<std::vector<typename decltype(m.apply(b))::value_type>>;
}
struct apply_result<SM> {
    using type = typename decltype(std::declval<SM&>().apply(std::span<const entry>{}))::value_type;
};

/// One writer (the log thread) and concurrent readers (the core and apply threads). A store
/// that declares `concurrent_reads` (leveldb_log_store: its sync holds no lock) is used as
/// is; any other gets a shared lock for reads and an exclusive one for writes.
template <log_store LS>
class locked_log_store {
    struct no_lock {
        explicit no_lock(std::shared_mutex&) {}
    };
    static constexpr bool own_locking = requires { LS::concurrent_reads; };
    using read_lock = std::conditional_t<own_locking, no_lock, std::shared_lock<std::shared_mutex>>;
    using write_lock =
        std::conditional_t<own_locking, no_lock, std::unique_lock<std::shared_mutex>>;

public:
    explicit locked_log_store(std::shared_ptr<LS> s) : s_(std::move(s)) {}
    [[nodiscard]] persistent_state initial_state() const {
        read_lock l(m_);
        return s_->initial_state();
    }
    [[nodiscard]] index_t first_index() const {
        read_lock l(m_);
        return s_->first_index();
    }
    [[nodiscard]] index_t last_index() const {
        read_lock l(m_);
        return s_->last_index();
    }
    [[nodiscard]] std::optional<term_t> term(index_t i) const {
        read_lock l(m_);
        return s_->term(i);
    }
    void entries(index_t lo, index_t hi, std::size_t max_bytes, std::vector<entry>& out) const {
        read_lock l(m_);
        s_->entries(lo, hi, max_bytes, out);
    }
    [[nodiscard]] craft::snapshot_meta snapshot_meta() const {
        read_lock l(m_);
        return s_->snapshot_meta();
    }
    status write(const log_write& w) {
        write_lock l(m_);
        return s_->write(w);
    }
    status compact(const craft::snapshot_meta& m) {
        write_lock l(m_);
        return s_->compact(m);
    }
    /// Ok, or the corruption the store found on a read.
    [[nodiscard]] status health() const {
        read_lock l(m_);
        if constexpr (requires { s_->health(); })
            return s_->health();
        else
            return {};
    }

private:
    std::shared_ptr<LS> s_;
    mutable std::shared_mutex m_;
};

/// The node whose thread this is, while it runs one of its loops or steps its core (so that
/// `stop()` from one of its callbacks is refused instead of waiting for itself), and the node
/// this thread is stopping (so that `stop()` from a callback that stop runs returns at once).
inline thread_local const void* node_on_this_thread = nullptr;
inline thread_local const void* node_stopping_on_this_thread = nullptr;

/// Sets one of those for a scope.
class thread_mark {
public:
    thread_mark(const void*& slot, const void* node)
        : slot_(slot), before_(std::exchange(slot, node)) {}
    ~thread_mark() { slot_ = before_; }
    thread_mark(const thread_mark&) = delete;
    thread_mark& operator=(const thread_mark&) = delete;

private:
    const void*& slot_;
    const void* before_;
};

}  // namespace detail

/// Serializes a command of the state machine's own type with Cereal (portable binary), as
/// `basic_node::propose(const Command&)` does; read it back with `craft::decode<Command>`.
template <class Command>
shared_bytes encode(const Command& command) {
    std::ostringstream os(std::ios::binary);
    {
        cereal::PortableBinaryOutputArchive ar(os);
        ar(command);
    }
    return shared_bytes(std::string_view(os.str()));
}

/// A Raft node running `StateMachine` over `Policies` (see the file comment for its threads).
/// @tparam StateMachine models `craft::state_machine`; owned by the caller, who keeps it alive
///         while the node runs and reads it only through `read()`.
/// @tparam Policies provides `log_store`, `snapshot_store`, `transport` and `logger`.
template <class StateMachine, class Policies = default_policies>
class basic_node {
    static_assert(check_state_machine<StateMachine>());
    static_assert(check_storage_policies<Policies>());
    static_assert(transport<typename Policies::transport>,
                  "craft: Policies::transport does not model craft::transport; see "
                  "craft/concepts.hpp");
    static_assert(craft::logger<typename Policies::logger>,
                  "craft: Policies::logger does not model craft::logger; see craft/logger.hpp");

public:
    using state_machine_type = StateMachine;
    using log_store_type = typename Policies::log_store;
    using snapshot_store_type = typename Policies::snapshot_store;
    using transport_type = typename Policies::transport;
    using logger_type = typename Policies::logger;
    /// What `apply` returns per entry (`std::monostate` when it returns nothing).
    using result_type = typename detail::apply_result<StateMachine>::type;
    using proposal_outcome = outcome<result_type>;
    using callback = std::function<void(proposal_outcome)>;

    /// Checks `o`; throws `std::invalid_argument` naming the first wrong option.
    basic_node(node_options o, StateMachine& sm, logger_type log = {})
        : opt_(std::move(o)), sm_(sm), logger_(std::move(log)) {
        if (auto why = opt_.validate()) throw std::invalid_argument("craft: " + *why);
    }
    ~basic_node() { stop(); }
    basic_node(const basic_node&) = delete;
    basic_node& operator=(const basic_node&) = delete;

    /// Opens storage, rebuilds the state machine, starts the threads and the transport.
    craft::status start() {
        std::lock_guard life(lifecycle_);
        // stop() from a callback start() runs (the logger, a state machine's load) would wait
        // for the lock held here: it throws instead.
        const detail::thread_mark mark(detail::node_on_this_thread, this);
        if (running_) return craft::status::error("craft: node already running");
        {
            std::lock_guard l(state_mutex_);
            state_.failure = {};
        }
        if (auto st = open_storage(); !st) return st;
        detail::recovery rec;
        if (ran_before_ && applied_ >= log_->snapshot_meta().index) {
            // Started again in this process: the state machine still holds what it applied.
            rec.applied = applied_;
        } else {
            rec = detail::recover(sm_, *log_, *snaps_);
            if (!rec.error.ok()) {
                log_.reset();
                return fatal_at_start(rec.error.message());
            }
        }
        applied_ = rec.applied;
        last_snapshot_ = rec.applied;
        was_leader_ = false;
        following_ = no_node;
        apply_backlog_ = 0;
        batch_failed_ = false;
        bytes_since_snapshot_ = 0;
        last_snapshot_time_ = clock::now();
        if (rec.loaded) set_snapshot(*rec.loaded);

        core::options co;
        co.id = opt_.id;
        co.voters = opt_.initial_voters;
        if (co.voters.empty())
            for (const auto& [pid, ep] : opt_.peers) co.voters.push_back(pid);
        // A new node stores its first configuration at once: from then on membership is what
        // the log says, whatever `peers` (the address book) lists at a restart.
        // (A data directory from before craft stored it, with entries, keeps what `peers`
        // says at each start, as then.)
        if (log_->initial_state().conf.empty() && log_->snapshot_meta().conf.empty() &&
            log_->last_index() == 0 && log_->initial_state().hard.term == 0) {
            configuration first;
            first.voters = co.voters;
            first.normalize();
            log_write w;
            w.conf = &first;
            if (auto st = log_->write(w); !st) {
                log_.reset();
                return fatal_at_start("cannot store the first configuration: " + st.message());
            }
        }
        co.heartbeat_tick = static_cast<int>(opt_.heartbeat_interval / opt_.tick);
        co.election_tick = static_cast<int>(opt_.election_timeout / opt_.tick);
        co.pre_vote = opt_.pre_vote;
        co.check_quorum = opt_.check_quorum;
        co.max_entries_per_message = opt_.max_entries_per_message;
        co.max_bytes_per_message = opt_.max_bytes_per_message;
        co.max_inflight_messages = opt_.max_inflight_messages;
        co.applied = applied_;
        co.seed = static_cast<std::uint64_t>(clock::now().time_since_epoch().count()) ^ opt_.id;
        if (auto why = co.validate()) {
            log_.reset();
            return craft::status::error("craft: " + *why);
        }
        raw_ = std::make_unique<core::raw_node<log_type>>(co, *log_);
        {
            std::lock_guard l(book_mutex_);
            book_ = opt_.peers;
        }
        learn_addresses(raw_->raft_state().conf());
        // What a snapshot taken before the first apply job records (then each job's).
        applied_conf_ = raw_->raft_state().conf();
        was_member_ = applied_conf_.is_voter(opt_.id) || applied_conf_.is_learner(opt_.id);
        written_hard_ = raw_->status().hard;
        unwritten_hard_.reset();
        detail::snapshot_transfer_options xo;
        xo.chunk_bytes = opt_.snapshots.chunk_bytes;
        xfer_ =
            std::make_unique<detail::snapshot_transfer<snapshot_store_type>>(opt_.id, *snaps_, xo);
        if (auto st = open_transport(); !st) {
            log_.reset();
            return st;
        }
        {
            std::lock_guard l(inbox_mutex_);
            stopping_ = false;
            running_ = true;
            core_busy_ = core_waiter_ = core_failed_ = false;
        }
        ran_before_ = true;
        port_ = transport_port();
        publish();
        // Read before the core thread owns the core.
        const std::string started = "started: term " + std::to_string(raw_->status().hard.term) +
                                    ", applied " + std::to_string(applied_) + ", log " +
                                    std::to_string(log_->first_index()) + ".." +
                                    std::to_string(log_->last_index());
        // The core strand's state, before any thread can step it.
        held_messages_.clear();  // an earlier run that failed mid-step left them: drop them
        next_tick_ = clock::now() + opt_.tick;
        next_publish_ = clock::now();
        shown_ = {};
        shown_term_ = 0;
        outstanding_ = false;
        commit_wanted_.clear();
        core_thread_ = std::thread([this] { core_loop(); });
        log_thread_ = std::thread([this] { log_loop(); });
        apply_thread_ = std::thread([this] { apply_loop(); });
        detail::name_thread(core_thread_, "craft-core");
        detail::name_thread(log_thread_, "craft-log");
        detail::name_thread(apply_thread_, "craft-apply");
        if constexpr (reports_unreachable<transport_type>)
            transport_->on_unreachable([this](node_id p) { post_unreachable(p); });
        if constexpr (reports_delivered<transport_type>)
            transport_->on_delivered([this] { messages_delivered(); });
        if (auto st = transport_->start([this](message&& m) { post_message(std::move(m)); }); !st) {
            stop_locked("the transport did not start: " + st.message());
            return st;
        }
        log(log_level::info, started);
        return {};
    }

    /// Stops the node: in-flight proposals and reads fail with a clear status, every thread
    /// ends. The node can be started again. Called from one of the node's own callbacks on
    /// a thread it would have to join, or from one that `start()` runs, throws
    /// `std::logic_error` and stops nothing; called from a callback that `stop()` itself runs
    /// (what it fails), returns at once.
    void stop() {
        if (detail::node_stopping_on_this_thread == this) return;
        if (detail::node_on_this_thread == this)
            throw std::logic_error(
                "craft: stop() called from one of the node's own callbacks, on a thread it "
                "would have to wait for; call it from another thread");
        std::lock_guard life(lifecycle_);
        const detail::thread_mark mark(detail::node_stopping_on_this_thread, this);
        stop_locked({});
    }

    // ---- proposals ----------------------------------------------------------------------

    /// Proposes raw bytes; `done` runs (on the apply thread; when refused, at once or on the
    /// thread stepping the core, which may be the transport's) with the state machine's
    /// result. With `expected_term`, refused unless this node still leads in that term.
    void propose(shared_bytes command, callback done, std::optional<term_t> expected_term = {}) {
        if (command.size() > opt_.max_entry_bytes) {
            metrics_counters::add(metrics_.proposals_refused);
            return done(not_applied("craft: a command of " + std::to_string(command.size()) +
                                    " bytes is larger than node_options.max_entry_bytes (" +
                                    std::to_string(opt_.max_entry_bytes) + ")"));
        }
        bool accepted = false, wake = false;
        {
            std::lock_guard l(inbox_mutex_);
            if (running_ && !stopping_) {
                inbox_.proposals.push_back({std::move(command), std::move(done), expected_term});
                accepted = true;
                wake = !core_busy_;  // a thread running the core takes it before letting go
            }
        }
        // Woken after the unlock, the core does not block on the mutex we still hold.
        if (wake) inbox_cv_.notify_one();
        if (accepted) return;
        done(not_applied("craft: node is not running"));
    }
    /// Proposes raw bytes; the future holds the state machine's result.
    std::future<proposal_outcome> propose(shared_bytes command,
                                          std::optional<term_t> expected_term = {}) {
        auto p = std::make_shared<std::promise<proposal_outcome>>();
        auto f = p->get_future();
        propose(
            std::move(command), [p](proposal_outcome r) { p->set_value(std::move(r)); },
            expected_term);
        return f;
    }
    /// Proposes a command of the state machine's own type, serialized with Cereal (read it
    /// back in `apply` with `craft::decode<Command>(entry)`).
    template <class Command>
    requires(!std::is_convertible_v<Command, shared_bytes>) std::future<proposal_outcome> propose(
        const Command& command, std::optional<term_t> expected_term = {}) {
        return propose(craft::encode(command), expected_term);
    }

    /// Runs `f(state_machine)` on the apply thread once every entry committed before the call
    /// is applied (ReadIndex through the leader: linearizable). The future holds its result.
    template <class F>
    auto read(F f) -> std::future<outcome<std::invoke_result_t<F&, const StateMachine&>>> {
        using R = std::invoke_result_t<F&, const StateMachine&>;
        auto p = std::make_shared<std::promise<outcome<R>>>();
        auto fut = p->get_future();
        read(std::move(f), [p](outcome<R> o) { p->set_value(std::move(o)); });
        return fut;
    }
    /// As `read(f)`, but `done` gets the outcome (on the apply thread; at once when the node
    /// is not running; on the thread stepping the core when it fails there, which may be the
    /// transport's): for servers that must not block a thread per request.
    template <class F, class Done>
    requires std::invocable<Done&, outcome<std::invoke_result_t<F&, const StateMachine&>>>
    void read(F f, Done done) {
        using R = std::invoke_result_t<F&, const StateMachine&>;
        auto d = std::make_shared<Done>(std::move(done));
        pending_read r;
        r.run = [this, d, f = std::move(f)]() mutable {
            outcome<R> o;
            o.value = f(static_cast<const StateMachine&>(sm_));
            o.index = applied_;
            (*d)(std::move(o));
        };
        r.fail = [d](craft::status why) {
            outcome<R> o;
            o.error = std::move(why);
            (*d)(std::move(o));
        };
        r.deadline = clock::now() + opt_.read_timeout;
        {
            std::lock_guard l(inbox_mutex_);
            if (running_ && !stopping_) {
                inbox_.reads.push_back(std::move(r));
                if (!core_busy_) inbox_cv_.notify_one();
                return;
            }
        }
        r.fail(craft::status::error("craft: node is not running"));
    }

    // ---- administration -----------------------------------------------------------------

    /// Hands leadership to the voter `to`: this leader stops taking proposals, waits until
    /// `to` holds its whole log, then tells it to campaign at once (etcd's MsgTimeoutNow).
    /// The future holds ok once `to` is seen leading, or why not (this node does not lead,
    /// `to` is no voter, or it did not catch up and win within an election timeout; then
    /// this node goes on leading).
    std::future<craft::status> transfer_leadership(node_id to) {
        auto p = std::make_shared<std::promise<craft::status>>();
        auto fut = p->get_future();
        {
            std::lock_guard l(inbox_mutex_);
            if (running_ && !stopping_) {
                inbox_.transfers.push_back({to, p});
                if (!core_busy_) inbox_cv_.notify_one();
                return fut;
            }
        }
        p->set_value(craft::status::error("craft: node is not running"));
        return fut;
    }

    /// Moves the cluster to the configuration with `voters` and `learners` (this node must
    /// lead). Every member needs an address: one in `addresses`, which the configuration
    /// records for every member to use (a new node's, or a member's new one; NuRaft's
    /// add_srv and braft's peer ids carry it too), one recorded before, or one in
    /// `node_options::peers` on every member. A change of at most one
    /// voter is one step; a larger one goes through a joint configuration (old and new voters
    /// must both agree) that the leader leaves on its own, as etcd/raft's joint consensus
    /// with auto-leave. Learners receive the log and never vote: add a node as a learner,
    /// wait until it caught up, then make it a voter. The future holds ok once the new
    /// configuration is committed, in force and applied by this leader's core (the next
    /// change is then taken at once), or why not: this node does not lead, another
    /// change or a leadership transfer is in progress, the ids are wrong, leadership was lost
    /// meanwhile or ten election timeouts passed (then the change may still take effect:
    /// look at `status().raft.conf`). A leader that removes itself steps down once the
    /// change is in force.
    std::future<craft::status> change_membership(
        std::vector<node_id> voters, std::vector<node_id> learners = {},
        const std::map<node_id, tcp_endpoint>& addresses = {}) {
        configuration target;
        target.voters = std::move(voters);
        target.learners = std::move(learners);
        for (const auto& [n, ep] : addresses) target.addresses.emplace(n, ep.to_string());
        if (auto why = invalid_membership(target))
            return submit_conf_change({}, "craft: membership change refused: " + *why);
        target.normalize();
        return submit_conf_change(std::move(target));
    }

    /// Adds node `id` as a learner (it receives the log and never votes) to the membership in
    /// force when the leader's core takes the request, recording `address` for every member
    /// when given (else it must be known: recorded before, or in `node_options::peers`). Done
    /// at once when `id` is a learner already with that address; refused when it is a voter.
    /// The future says what `change_membership`'s does. Unlike reading `status()` and
    /// sending `change_membership` the whole changed configuration, two such edits at once
    /// never undo each other: the second is refused ("another change is in progress") or
    /// made on top of the first.
    std::future<craft::status> add_learner(node_id id, std::optional<tcp_endpoint> address = {}) {
        return edit_membership({membership_edit::kind::add_learner, id, std::move(address)});
    }
    /// Makes node `id` a voter: a learner is promoted, another node added as a voter at once
    /// (better added as a learner first and promoted once it caught up, or the cluster's
    /// quorum waits for it). Done at once when it votes already. As `add_learner` otherwise.
    std::future<craft::status> add_voter(node_id id, std::optional<tcp_endpoint> address = {}) {
        return edit_membership({membership_edit::kind::add_voter, id, std::move(address)});
    }
    /// Takes node `id`, voter or learner, out of the membership in force (this leader too: it
    /// steps down once the change is in force). Done at once when it is not a member;
    /// refused when it is the last voter.
    std::future<craft::status> remove_member(node_id id) {
        return edit_membership({membership_edit::kind::remove, id, std::nullopt});
    }
    /// One of the three above, as `e` says (for callers that take the kind as data).
    std::future<craft::status> edit_membership(membership_edit e) {
        if (e.id == no_node)
            return submit_conf_change({}, "craft: membership change refused: node id 0");
        return submit_conf_change(std::move(e));
    }

    /// Takes a snapshot now (on the apply thread, between two applies) and compacts the log
    /// behind it, as the automatic snapshots do. The future holds ok (also when the newest
    /// snapshot already covers every applied entry), or why not.
    std::future<craft::status> snapshot_now() {
        auto p = std::make_shared<std::promise<craft::status>>();
        auto fut = p->get_future();
        {
            std::lock_guard l(inbox_mutex_);
            if (running_ && !stopping_) {
                std::lock_guard a(apply_mutex_);
                snapshot_requests_.push_back(p);
                apply_cv_.notify_one();
                return fut;
            }
        }
        p->set_value(craft::status::error("craft: node is not running"));
        return fut;
    }

    // ---- observing ----------------------------------------------------------------------

    /// Where this node reaches each node it knows: `peers`, with the addresses the
    /// configuration records in place of theirs.
    [[nodiscard]] std::map<node_id, tcp_endpoint> address_book() const {
        std::lock_guard l(book_mutex_);
        return book_;
    }
    [[nodiscard]] bool is_leader() const {
        std::lock_guard l(state_mutex_);
        return state_.raft.soft.role == core::role::leader;
    }
    [[nodiscard]] node_id leader() const {
        std::lock_guard l(state_mutex_);
        return state_.raft.soft.leader;
    }
    [[nodiscard]] term_t term() const {
        std::lock_guard l(state_mutex_);
        return state_.raft.hard.term;
    }
    [[nodiscard]] node_state status() const {
        std::lock_guard l(state_mutex_);
        return state_;
    }
    /// The port the transport listens on (useful with port 0).
    [[nodiscard]] std::uint16_t port() const { return port_; }
    /// Counters since construction (for `/metrics` pages), with the transport's traffic when
    /// it counts it.
    [[nodiscard]] node_metrics metrics() const {
        node_metrics m = metrics_.snapshot();
        if constexpr (requires(const transport_type& t) { t.stats(); }) {
            std::lock_guard l(traffic_mutex_);
            if (transport_) {
                const auto t = transport_->stats();
                m.messages_sent = traffic_base_.messages_sent + t.messages_sent;
                m.bytes_sent = traffic_base_.bytes_sent + t.bytes_sent;
                m.messages_received = traffic_base_.messages_received + t.messages_received;
                m.bytes_received = traffic_base_.bytes_received + t.bytes_received;
            } else {
                m.messages_sent = traffic_base_.messages_sent;
                m.bytes_sent = traffic_base_.bytes_sent;
                m.messages_received = traffic_base_.messages_received;
                m.bytes_received = traffic_base_.bytes_received;
            }
        }
        return m;
    }

private:
    [[nodiscard]] std::uint16_t transport_port() const {
        if constexpr (requires(const transport_type& t) { t.local_port(); })
            return transport_ ? transport_->local_port() : 0;
        return 0;
    }

public:
    [[nodiscard]] const node_options& options() const noexcept { return opt_; }

private:
    using clock = std::chrono::steady_clock;
    using log_type = detail::locked_log_store<log_store_type>;

    struct pending_proposal {
        shared_bytes command;
        callback done;
        std::optional<term_t> expected_term;
    };
    struct pending_read {
        std::function<void()> run;
        std::function<void(craft::status)> fail;
        clock::time_point deadline;
        index_t index = 0;
    };
    using status_promise = std::shared_ptr<std::promise<craft::status>>;
    /// A whole configuration (`change_membership`) or one node's edit of the one in force.
    using conf_request = std::variant<configuration, membership_edit>;
    struct inbox {
        std::vector<pending_proposal> proposals;
        std::vector<message> messages;
        std::vector<pending_read> reads;
        std::vector<std::pair<node_id, status_promise>> transfers;
        std::vector<std::pair<conf_request, status_promise>> conf_changes;
        std::optional<core::ready> persisted;
        std::vector<node_id> unreachable;  // peers the transport lost messages to
        bool backlog_freed = false;        // the apply queue has room again
        bool empty() const {
            return proposals.empty() && messages.empty() && reads.empty() && transfers.empty() &&
                   conf_changes.empty() && !persisted && unreachable.empty() && !backlog_freed;
        }
    };
    /// Proposals passed to the leader, waiting for its answer (core thread).
    struct forwarded {
        node_id leader = no_node;
        std::vector<callback> done;
        clock::time_point deadline;
    };
    /// A leadership transfer in progress (core thread).
    struct transfer {
        node_id target = no_node;
        clock::time_point deadline;
        status_promise done;
        bool told = false;  ///< timeout_now sent
    };
    /// A membership change in progress (core thread).
    struct conf_change {
        configuration target;
        index_t index = 0;  ///< Of its configuration entry.
        term_t term = 0;    ///< The leader's term when it was proposed.
        clock::time_point deadline;
        status_promise done;
    };
    /// Work for the apply thread, in order.
    struct apply_job {
        std::optional<snapshot_meta> install;
        std::vector<entry> committed;
        std::vector<read_state> reads;
        std::optional<core::soft_state> soft;
        term_t term = 0;
        configuration conf;
    };
    struct waiting_proposal {
        term_t term = 0;
        callback done;
    };

    void log(log_level l, const std::string& line) {
        logger_.log(l, "node " + std::to_string(opt_.id) + ": " + line);
    }

    /// A failed outcome: the command may or may not be applied (timed out, node stopped).
    proposal_outcome refused(std::string why, node_id leader = no_node) const {
        proposal_outcome o;
        o.error = craft::status::error(std::move(why));
        o.leader = leader;
        if (auto ep = address_of(leader)) o.leader_address = ep->to_string();
        return o;
    }
    /// A failed outcome for a command known never to be applied (safe to retry).
    proposal_outcome not_applied(std::string why, node_id leader = no_node) const {
        auto o = refused(std::move(why), leader);
        o.not_applied = true;
        return o;
    }

    // ---- start and stop -----------------------------------------------------------------

    craft::status open_storage() {
        if constexpr (std::is_same_v<log_store_type, leveldb_log_store>) {
            leveldb_log_store::options lo;
            lo.dir = opt_.data_dir / "log";
            lo.cluster_id = opt_.cluster_id;
            lo.id = opt_.id;
            lo.sync = opt_.sync;
            auto r = leveldb_log_store::open(lo);
            if (!r.store) return r.error;
            log_ = std::make_unique<log_type>(std::move(r.store));
        } else {
            static_assert(std::is_default_constructible_v<log_store_type>,
                          "craft: basic_node opens leveldb_log_store or default-constructs "
                          "its log store");
            // An in-memory store lives as long as the node object (it survives stop/start).
            if (!log_mem_) log_mem_ = std::make_shared<log_store_type>();
            log_ = std::make_unique<log_type>(log_mem_);
        }
        if constexpr (std::is_same_v<snapshot_store_type, file_snapshot_store>) {
            snaps_ = std::make_unique<file_snapshot_store>(opt_.data_dir / "snapshots");
        } else if (!snaps_) {
            snaps_ = std::make_unique<snapshot_store_type>();
        }
        return {};
    }

    craft::status open_transport() {
        if constexpr (std::is_same_v<transport_type, asio_tcp_transport>) {
            asio_tcp_transport::options to;
            to.id = opt_.id;
            to.cluster_id = opt_.cluster_id;
            to.listen = opt_.peers.at(opt_.id);
            {
                std::lock_guard l(book_mutex_);
                to.peers = book_;
            }
            to.peers.erase(opt_.id);
            // The transport logs from its own thread too, which stop() joins: a logger that
            // calls stop() there gets the same refusal as the node's other callbacks.
            auto t =
                std::make_unique<asio_tcp_transport>(to, [this](log_level l, std::string_view s) {
                    const detail::thread_mark mark(detail::node_on_this_thread, this);
                    logger_.log(l, s);
                });
            std::lock_guard l(traffic_mutex_);
            transport_ = std::move(t);
        } else {
            std::lock_guard l(traffic_mutex_);
            transport_ = std::make_unique<transport_type>();
        }
        return {};
    }

    craft::status fatal_at_start(const std::string& why) {
        log(log_level::error, "cannot start: " + why);
        return craft::status::error("craft: node " + std::to_string(opt_.id) +
                                    " cannot start: " + why);
    }

    void stop_locked(const std::string& why) {
        if (!running_) return;
        if (!why.empty()) log(log_level::error, "stopping: " + why);
        // The core first: the transport's I/O thread may be stepping it (and sending through
        // the transport), which the transport's stop would wait for.
        halt_threads();
        for (auto* t : {&core_thread_, &log_thread_, &apply_thread_})
            if (t->joinable()) t->join();
        transport_->stop();  // no message arrives after this
        // Whatever is still waiting fails clearly.
        const auto reason = craft::status::error(why.empty() ? "craft: node stopped"
                                                             : "craft: node stopped: " + why);
        for (auto& p : inbox_.proposals) p.done(not_applied(reason.message()));
        for (auto& r : inbox_.reads) r.fail(reason);
        for (auto& [to, p] : inbox_.transfers) p->set_value(reason);
        for (auto& [c, p] : inbox_.conf_changes) p->set_value(reason);
        inbox_ = {};
        for (auto& [i, w] : waiting_) w.done(refused(reason.message()));
        waiting_.clear();
        for (auto& [ctx, r] : reads_in_core_) r.fail(reason);
        reads_in_core_.clear();
        for (auto& r : reads_waiting_apply_) r.fail(reason);
        for (auto& r : reads_handoff_) r.fail(reason);
        reads_handoff_.clear();
        reads_waiting_apply_.clear();
        for (auto& [ctx, f] : forwards_)
            for (auto& cb : f.done) cb(refused(reason.message()));
        forwards_.clear();
        if (transfer_) transfer_->done->set_value(reason);
        transfer_.reset();
        if (conf_change_) conf_change_->done->set_value(reason);
        conf_change_.reset();
        for (auto& p : snapshot_requests_) p->set_value(reason);
        snapshot_requests_.clear();
        for (auto& p : requests_) p->set_value(reason);
        requests_.clear();
        if constexpr (requires(StateMachine & m) { m.on_shutdown(); }) sm_.on_shutdown();
        log_jobs_.clear();
        apply_jobs_.clear();
        // A clean stop records the newest commit index, so a restart replays all it can.
        if (unwritten_hard_ && failure().ok() && log_) {
            log_write w;
            w.hard = &*unwritten_hard_;
            if (auto st = log_->write(w); !st)
                log(log_level::warn, "could not record the commit index at stop: " + st.message());
        }
        unwritten_hard_.reset();
        log_stop_ = apply_stop_ = false;
        {
            std::lock_guard l(traffic_mutex_);
            if constexpr (requires(const transport_type& t) { t.stats(); }) {
                const auto t = transport_->stats();
                traffic_base_.messages_sent += t.messages_sent;
                traffic_base_.bytes_sent += t.bytes_sent;
                traffic_base_.messages_received += t.messages_received;
                traffic_base_.bytes_received += t.bytes_received;
            }
            transport_.reset();
        }
        xfer_.reset();
        raw_.reset();
        log_.reset();
        {
            std::lock_guard l(inbox_mutex_);
            running_ = false;
        }
        publish_stopped();
    }

    /// A problem the node cannot repair: it stops serving. Every thread ends; `stop()` (or
    /// the destructor) releases the rest.
    void fail(const craft::status& why) {
        {
            std::lock_guard l(state_mutex_);
            if (!state_.failure.ok()) return;
            state_.failure = why;
        }
        log(log_level::error, why.message() + "; the node stops serving");
        if constexpr (requires(StateMachine & m, const craft::status& s) { m.on_error(s); })
            sm_.on_error(why);
        halt_threads();
        // Nobody waits in vain: what was proposed or asked fails now.
        std::vector<callback> proposals;
        std::vector<pending_read> reads;
        {
            std::lock_guard l(waiting_mutex_);
            for (auto& [i, w] : waiting_) proposals.push_back(std::move(w.done));
            waiting_.clear();
        }
        {
            std::lock_guard l(inbox_mutex_);
            for (auto& p : inbox_.proposals) proposals.push_back(std::move(p.done));
            inbox_.proposals.clear();
            for (auto& r : inbox_.reads) reads.push_back(std::move(r));
            inbox_.reads.clear();
            for (auto& [to, p] : inbox_.transfers)
                p->set_value(craft::status::error("craft: node failed: " + why.message()));
            inbox_.transfers.clear();
            for (auto& [c, p] : inbox_.conf_changes)
                p->set_value(craft::status::error("craft: node failed: " + why.message()));
            inbox_.conf_changes.clear();
        }
        for (auto& cb : proposals) cb(refused("craft: node failed: " + why.message()));
        for (auto& r : reads) r.fail(craft::status::error("craft: node failed: " + why.message()));
        publish_stopped();
    }

    void halt_threads() {
        {
            std::lock_guard l(inbox_mutex_);
            stopping_ = true;
            inbox_cv_.notify_all();
        }
        {
            std::lock_guard l(log_mutex_);
            log_stop_ = true;
            log_cv_.notify_all();
        }
        {
            std::lock_guard l(apply_mutex_);
            apply_stop_ = true;
            apply_cv_.notify_all();
        }
    }

    // ---- core thread --------------------------------------------------------------------

    /// A message from the transport: with a transport that says when it handed over what
    /// one read brought (`on_delivered`), the core runs then, on its thread; else the core
    /// thread is woken.
    void post_message(message&& m) {
        bool wake = false;
        {
            std::lock_guard l(inbox_mutex_);
            if (stopping_) return;
            inbox_.messages.push_back(std::move(m));
            wake = !core_busy_ && !reports_delivered<transport_type>;
        }
        if (wake) inbox_cv_.notify_one();
    }

    /// The transport handed over what one read brought (its I/O thread): step the core here.
    void messages_delivered() {
        std::unique_lock l(inbox_mutex_);
        if (!inbox_.empty()) run_core_here(l);
    }

    /// The transport lost messages to `peer` (its I/O thread).
    void post_unreachable(node_id peer) {
        bool wake = false;
        {
            std::lock_guard l(inbox_mutex_);
            if (stopping_) return;
            inbox_.unreachable.push_back(peer);
            wake = !core_busy_;
        }
        if (wake) inbox_cv_.notify_one();
    }

    /// Why the node stopped by itself (ok while it serves).
    craft::status failure() const {
        std::lock_guard l(state_mutex_);
        return state_.failure;
    }

    /// Runs the core; if the node failed, what only the core thread holds fails now (a stop
    /// leaves it to `stop()`).
    void core_loop() {
        const detail::thread_mark mark(detail::node_on_this_thread, this);
        core_run();
        const auto why = failure();
        if (why.ok()) return;
        const auto st = craft::status::error("craft: node failed: " + why.message());
        for (auto& [ctx, f] : forwards_)
            for (auto& cb : f.done) cb(refused(st.message()));
        forwards_.clear();
        for (auto& [ctx, r] : reads_in_core_) r.fail(st);
        reads_in_core_.clear();
        if (transfer_) transfer_->done->set_value(st);
        transfer_.reset();
        if (conf_change_) conf_change_->done->set_value(st);
        conf_change_.reset();
    }

    /// The core thread's part of the strand: runs the core when work waits and no other
    /// thread runs it, and ticks when nobody else did; returns (with no runner left) once the
    /// node stops or a step failed.
    void core_run() {
        std::unique_lock l(inbox_mutex_);
        while (!stopping_ && !core_failed_) {
            if (core_busy_) {  // another thread runs it: wait for it to let go
                core_waiter_ = true;
                inbox_cv_.wait(l);
                continue;
            }
            if (inbox_.empty() && clock::now() < next_tick_) {
                const auto until = next_tick_;  // (a runner may move it while we wait)
                inbox_cv_.wait_until(l, until);
                continue;
            }
            core_busy_ = true;
            run_core(l, std::numeric_limits<int>::max());
        }
        core_waiter_ = true;
        inbox_cv_.wait(l, [&] { return !core_busy_; });
    }

    /// Runs the core on this thread when nobody does (the caller pushed work under `l`):
    /// the transport's I/O thread and the log thread step the core themselves, sparing a
    /// thread hand-off each way (the log thread one step, the one that hands it its next
    /// batch). What another runner holds, it takes in its next step.
    void run_core_here(std::unique_lock<std::mutex>& l, int steps = max_borrowed_steps) {
        if (core_busy_ || stopping_) return;
        core_busy_ = true;
        run_core(l, steps);
    }

    /// Steps the core while work waits, at most `steps` times (`l` held on entry and on
    /// return, released around each step), then lets go of it, waking the core thread when
    /// it waits for that, or when work is left.
    void run_core(std::unique_lock<std::mutex>& l, int steps) {
        // (On the I/O thread or the log thread, for this while.)
        const detail::thread_mark mark(detail::node_on_this_thread, this);
        while (steps-- > 0) {
            inbox in = take_inbox();
            l.unlock();
            const bool ok = core_step(in);
            l.lock();
            if (!ok) core_failed_ = true;
            if (!ok || stopping_ || (inbox_.empty() && clock::now() < next_tick_)) break;
        }
        core_busy_ = false;
        const bool left = !inbox_.empty() || clock::now() >= next_tick_;
        if (std::exchange(core_waiter_, false) || stopping_ || core_failed_ || left)
            inbox_cv_.notify_all();
    }

    /// Takes the core's work from the inbox (`inbox_mutex_` held): everything but proposals
    /// beyond one batch, which wait for the next step.
    inbox take_inbox() {
        inbox in;
        in.messages.swap(inbox_.messages);
        in.reads.swap(inbox_.reads);
        in.transfers.swap(inbox_.transfers);
        in.conf_changes.swap(inbox_.conf_changes);
        in.persisted.swap(inbox_.persisted);
        in.unreachable.swap(inbox_.unreachable);
        inbox_.backlog_freed = false;
        if (inbox_.proposals.size() <= opt_.max_proposals_per_batch) {
            in.proposals.swap(inbox_.proposals);
        } else {
            auto cut = inbox_.proposals.begin() +
                       static_cast<std::ptrdiff_t>(opt_.max_proposals_per_batch);
            std::move(inbox_.proposals.begin(), cut, std::back_inserter(in.proposals));
            inbox_.proposals.erase(inbox_.proposals.begin(), cut);
        }
        return in;
    }

    /// One step of the core over what `in` brought; false when the node failed.
    bool core_step(inbox& in) {
        const auto now = clock::now();
        if (now >= next_tick_) {
            raw_->tick();
            xfer_->tick();
            next_tick_ += opt_.tick;
            if (next_tick_ < now) next_tick_ = now + opt_.tick;  // we fell behind: no burst
            expire_reads(now);
        }
        for (node_id p : in.unreachable) raw_->report_unreachable(p);
        metrics_counters::add(metrics_.unreachable_reports, in.unreachable.size());
        for (auto& m : in.messages) {
            if (!runtime_message(m)) detail::deliver(*raw_, *xfer_, std::move(m));
        }
        if (!in.proposals.empty()) propose_batch(in.proposals);
        for (auto& r : in.reads) start_read(std::move(r));
        for (auto& [to, p] : in.transfers) start_transfer(to, std::move(p), now);
        if (transfer_) step_transfer(now);
        for (auto& [c, p] : in.conf_changes) start_conf_change(std::move(c), std::move(p), now);
        if (in.persisted) {
            finish_ready(std::move(*in.persisted));
            outstanding_ = false;
        }
        flush_transfer();
        notify_forwarders();
        if (auto h = log_->health(); !h.ok()) return fail(h), false;
        if (!xfer_->error().ok()) return fail(xfer_->error()), false;
        // A state machine far behind holds new batches back (bounded apply queue). A batch
        // finished here (nothing to write, or an inline store) can make the next one
        // (advance() commits, or a lone candidate wins): that one goes now, not a tick later.
        for (int k = 0; !outstanding_ && k < max_batches_per_step &&
                        apply_backlog_ < max_apply_backlog && raw_->has_ready();
             ++k) {
            outstanding_ = begin_ready();
            if (batch_failed_) return false;
        }
        send_held_messages();
        if (conf_change_) step_conf_change(now);  // after this step's batches advanced
        if (outstanding_) {                       // while our own batch is written:
            for (auto& m : raw_->take_early_messages()) send(std::move(m));  // replicate
            apply_durable_committed();
        }
        // What status() shows: at once when role, leader or term changed, else at most
        // once a tick (building it copies the configuration and every follower's progress).
        const auto& r = raw_->raft_state();
        if (now >= next_publish_ || r.role() != shown_.role || r.leader() != shown_.leader ||
            r.term() != shown_term_) {
            publish();
            shown_ = {r.leader(), r.role()};
            shown_term_ = r.term();
            next_publish_ = now + opt_.tick;
        }
        return true;
    }

    proposal_outcome not_leader() const {
        const auto& r = raw_->raft_state();
        return not_applied("craft: node " + std::to_string(opt_.id) + " is not the leader" +
                               (r.leader() ? "; the leader is node " + std::to_string(r.leader())
                                           : "; no leader is known"),
                           r.leader());
    }
    void refuse_all(std::vector<pending_proposal>& batch, const proposal_outcome& why) {
        metrics_counters::add(metrics_.proposals_refused, batch.size());
        for (auto& p : batch) p.done(why);
    }

    void propose_batch(std::vector<pending_proposal>& batch) {
        const auto& r = raw_->raft_state();
        if (r.role() != core::role::leader) {
            if (opt_.forward_proposals && r.role() == core::role::follower && r.leader() != no_node)
                return forward(batch, r.leader());
            return refuse_all(batch, not_leader());
        }
        if (transfer_)
            return refuse_all(
                batch, not_applied("craft: leadership transfer to node " +
                                       std::to_string(transfer_->target) + " in progress (retry)",
                                   opt_.id));
        std::vector<entry> ents;
        std::vector<pending_proposal*> accepted;
        ents.reserve(batch.size());
        for (auto& p : batch) {
            if (p.expected_term && *p.expected_term != r.term()) {
                metrics_counters::add(metrics_.proposals_refused);
                p.done(not_applied("craft: leadership changed: term is " +
                                       std::to_string(r.term()) + ", not " +
                                       std::to_string(*p.expected_term),
                                   r.leader()));
                continue;
            }
            entry e;
            e.data = std::move(p.command);
            ents.push_back(std::move(e));
            accepted.push_back(&p);
        }
        if (ents.empty()) return;
        auto res = raw_->propose(std::move(ents));
        if (!res.ok()) {
            metrics_counters::add(metrics_.proposals_refused, accepted.size());
            for (auto* p : accepted)
                p->done(
                    not_applied("craft: " + std::string(core::to_string(res.error)), res.leader));
            return;
        }
        metrics_counters::add(metrics_.proposals, accepted.size());
        std::vector<callback> dones;
        dones.reserve(accepted.size());
        for (auto* p : accepted) dones.push_back(std::move(p->done));
        await_entries(res.first, res.term, std::move(dones));
    }

    /// The apply thread completes `dones[k]` when it applies entry `first + k` of `term`.
    void await_entries(index_t first, term_t term, std::vector<callback> dones) {
        std::vector<callback> late;
        {
            std::lock_guard l(waiting_mutex_);
            index_t i = first;
            for (auto& cb : dones) {
                // Applied before the leader's answer reached us (a forward whose answer came
                // after the entries): the result is gone.
                if (applied_.load() >= i) {
                    late.push_back(std::move(cb));
                    ++i;
                    continue;
                }
                // Another proposal may wait on this index with another term: which one holds
                // is known only when the entry is applied.
                waiting_.emplace(i++, waiting_proposal{term, std::move(cb)});
            }
        }
        for (auto& cb : late)
            cb(
                refused("craft: outcome unknown: the entry was applied before the leader's "
                        "answer arrived"));
    }

    // ---- forwarding and leadership transfer (messages between runtimes) -----------------

    /// Handles the runtime's own messages; false for those the core and transfer take.
    bool runtime_message(message& m) {
        switch (m.type) {
        case message_type::propose_forward: on_forward(m); return true;
        case message_type::propose_forward_response: on_forward_response(m); return true;
        case message_type::timeout_now: {
            const auto& r = raw_->raft_state();
            if (m.term == r.term() && m.from == r.leader() && r.role() == core::role::follower) {
                log(log_level::info,
                    "node " + std::to_string(m.from) + " hands over leadership: campaigning now");
                raw_->campaign();
            }
            return true;
        }
        default: return false;
        }
    }

    /// Passes `batch` to `leader` in messages of at most `max_bytes_per_message`.
    void forward(std::vector<pending_proposal>& batch, node_id leader) {
        const auto& r = raw_->raft_state();
        message m{
            .type = message_type::propose_forward, .from = opt_.id, .to = leader, .term = r.term()};
        forwarded f{leader, {}, clock::now() + opt_.read_timeout};
        std::size_t bytes = 0;
        auto flush = [&] {
            if (m.entries.empty()) return;
            m.context = ++forward_seq_;
            metrics_counters::add(metrics_.proposals_forwarded, m.entries.size());
            forwards_.emplace(m.context, std::move(f));
            transport_->send(std::move(m));
            m = message{.type = message_type::propose_forward,
                        .from = opt_.id,
                        .to = leader,
                        .term = r.term()};
            f = forwarded{leader, {}, clock::now() + opt_.read_timeout};
            bytes = 0;
        };
        for (auto& p : batch) {
            if (p.expected_term) {  // asked for this node's own leadership
                metrics_counters::add(metrics_.proposals_refused);
                p.done(not_leader());
                continue;
            }
            bytes += p.command.size();
            m.entries.push_back(entry{.data = std::move(p.command)});
            f.done.push_back(std::move(p.done));
            if (bytes >= opt_.max_bytes_per_message) flush();
        }
        flush();
    }

    /// The leader side: append a follower's commands and say where they went.
    void on_forward(message& m) {
        const auto& r = raw_->raft_state();
        message resp{.type = message_type::propose_forward_response,
                     .from = opt_.id,
                     .to = m.from,
                     .term = r.term(),
                     .context = m.context};
        if (r.role() != core::role::leader || transfer_) {
            resp.reject = true;
            resp.reject_hint = transfer_ ? no_node : r.leader();
        } else {
            for (auto& e : m.entries) {
                e.type = entry_type::normal;  // a follower never proposes configurations
                e.index = 0;
                e.term = 0;
            }
            const std::size_t n = m.entries.size();
            auto res = raw_->propose(std::move(m.entries));
            if (res.ok()) {
                metrics_counters::add(metrics_.proposals, n);
                resp.index = res.first;
                resp.log_term = res.term;
                auto& wanted = commit_wanted_[m.from];
                wanted = std::max(wanted, res.last);
            } else {
                resp.reject = true;
                resp.reject_hint = res.leader;
            }
        }
        transport_->send(std::move(resp));
    }

    /// A follower whose clients wait on commands it forwarded learns of their commit at once,
    /// not at the next tick, so it applies them and answers. The others learn a new commit
    /// index with the next append or at the tick (a notice per commit to every follower
    /// cost each of them a wake-up of its I/O and apply threads: with one client, a fifth
    /// of the CPU per operation).
    void notify_forwarders() {
        if (commit_wanted_.empty()) return;
        if (raw_->raft_state().role() != core::role::leader) return commit_wanted_.clear();
        for (auto it = commit_wanted_.begin(); it != commit_wanted_.end();) {
            const auto told = raw_->notify_commit(it->first);  // nothing: no longer a follower
            if (!told || *told >= it->second) {
                it = commit_wanted_.erase(it);
            } else {
                ++it;
            }
        }
    }

    /// The follower side: the leader appended our commands (or refused them).
    void on_forward_response(const message& m) {
        auto it = forwards_.find(m.context);
        if (it == forwards_.end() || it->second.leader != m.from) return;  // expired or stray
        forwarded f = std::move(it->second);
        forwards_.erase(it);
        if (m.reject) {
            const auto why = not_applied(
                "craft: node " + std::to_string(m.from) +
                    " no longer leads and refused the forwarded command" +
                    (m.reject_hint ? "; the leader is node " + std::to_string(m.reject_hint)
                                   : "; no leader is known (retry)"),
                m.reject_hint);
            metrics_counters::add(metrics_.proposals_refused, f.done.size());
            for (auto& cb : f.done) cb(why);
            return;
        }
        await_entries(m.index, m.log_term, std::move(f.done));
    }

    void start_transfer(node_id to, status_promise p, clock::time_point now) {
        const auto& r = raw_->raft_state();
        auto refuse = [&](const std::string& why) {
            p->set_value(craft::status::error("craft: leadership transfer to node " +
                                              std::to_string(to) + " refused: " + why));
        };
        if (transfer_) return refuse("another transfer is in progress");
        if (r.role() != core::role::leader)
            return refuse("node " + std::to_string(opt_.id) + " is not the leader" +
                          (r.leader() ? " (node " + std::to_string(r.leader()) + " is)" : ""));
        if (to == opt_.id) return p->set_value({});
        if (!r.conf().is_voter(to)) return refuse("it is not a voter");
        log(log_level::info, "handing leadership over to node " + std::to_string(to));
        transfer_ = transfer{to, now + opt_.election_timeout, std::move(p)};
    }

    /// Tells the target to campaign once it holds our whole log; ends the transfer when it
    /// leads, someone else does, or time is up.
    void step_transfer(clock::time_point now) {
        const auto& r = raw_->raft_state();
        auto finish = [&](craft::status st) {
            if (!st.ok()) log(log_level::warn, st.message());
            transfer_->done->set_value(std::move(st));
            transfer_.reset();
        };
        const std::string target = "node " + std::to_string(transfer_->target);
        if (r.role() != core::role::leader) {
            if (r.leader() == transfer_->target) return finish({});
            if (r.leader() != no_node)
                return finish(craft::status::error("craft: leadership transfer to " + target +
                                                   " ended with node " +
                                                   std::to_string(r.leader()) + " leading"));
        } else if (!transfer_->told) {
            auto it = r.progresses().find(transfer_->target);
            if (it != r.progresses().end() && it->second.match >= r.log().last_index()) {
                transport_->send(message{.type = message_type::timeout_now,
                                         .from = opt_.id,
                                         .to = transfer_->target,
                                         .term = r.term()});
                transfer_->told = true;
                transfer_->deadline = now + opt_.election_timeout;
            }
        }
        if (now >= transfer_->deadline)
            finish(craft::status::error(
                "craft: leadership transfer to " + target + " timed out (" +
                (transfer_->told ? "it did not win the election" : "it did not catch up") +
                " within the election timeout)"));
    }

    /// Where node `n` is reached: its address in the configuration, else in `peers`.
    std::optional<tcp_endpoint> address_of(node_id n) const {
        std::lock_guard l(book_mutex_);
        auto it = book_.find(n);
        if (it == book_.end()) return std::nullopt;
        return it->second;
    }

    /// Takes the addresses `c` records into the address book and the transport (core thread,
    /// before the messages of the batch that brought `c` are sent). The book is `peers`
    /// overlaid with the addresses in force: one a configuration no longer records (its node
    /// removed) is forgotten, so every node's book follows the log, not its restarts.
    void learn_addresses(const configuration& c) {
        {
            std::lock_guard l(book_mutex_);
            for (auto it = book_.begin(); it != book_.end();) {
                if (c.addresses.count(it->first)) {
                    ++it;
                } else if (auto p = opt_.peers.find(it->first); p != opt_.peers.end()) {
                    it->second = p->second;
                    ++it;
                } else {
                    it = book_.erase(it);
                }
            }
        }
        for (const auto& [n, a] : c.addresses) {
            std::string why;
            const auto ep = tcp_endpoint::parse(a, &why);
            if (!ep) {  // checked by the leader that proposed it; another program's entry?
                log(log_level::warn, "ignoring node " + std::to_string(n) + "'s address " + why);
                continue;
            }
            {
                std::lock_guard l(book_mutex_);
                auto it = book_.find(n);
                if (it != book_.end() && it->second == *ep) continue;
                const auto old = it == book_.end() ? std::string() : it->second.to_string();
                book_[n] = *ep;
                log(log_level::info, "node " + std::to_string(n) + " is at " + a +
                                         " (from the configuration" +
                                         (old.empty() ? "" : "; was " + old) + ")");
            }
            if (n == opt_.id) continue;
            if constexpr (requires(transport_type & t) { t.set_peer(n, *ep); })
                if (transport_) transport_->set_peer(n, *ep);
        }
    }

    /// Hands `req` to the core; the future is its outcome. With `refused`, refuses it now.
    std::future<craft::status> submit_conf_change(conf_request req,
                                                  const std::string& refused = {}) {
        auto p = std::make_shared<std::promise<craft::status>>();
        auto fut = p->get_future();
        if (!refused.empty()) {
            p->set_value(craft::status::error(refused));
            return fut;
        }
        {
            std::lock_guard l(inbox_mutex_);
            if (running_ && !stopping_) {
                inbox_.conf_changes.push_back({std::move(req), p});
                if (!core_busy_) inbox_cv_.notify_one();
                return fut;
            }
        }
        p->set_value(craft::status::error("craft: node is not running"));
        return fut;
    }

    /// The configuration `e` makes of `now` (in force, not joint); nothing when it is
    /// `now` already; or why it cannot be made.
    std::variant<std::monostate, configuration, std::string> edited(
        const configuration& now, const membership_edit& e) const {
        using kind = membership_edit::kind;
        const std::string who = "node " + std::to_string(e.id);
        configuration t;
        t.voters = now.voters;
        t.learners = now.learners;
        t.addresses = now.addresses;
        const auto recorded = now.addresses.find(e.id);
        const bool same_address = !e.address || (recorded != now.addresses.end() &&
                                                 recorded->second == e.address->to_string());
        switch (e.what) {
        case kind::add_learner:
            if (now.is_voter(e.id))
                return who + " is a voter (remove it first, or set the membership whole)";
            if (now.is_learner(e.id) && same_address) return std::monostate{};
            t.learners.push_back(e.id);
            break;
        case kind::add_voter:
            if (now.is_voter(e.id) && same_address) return std::monostate{};
            std::erase(t.learners, e.id);
            t.voters.push_back(e.id);
            break;
        case kind::remove:
            if (!now.is_voter(e.id) && !now.is_learner(e.id)) return std::monostate{};
            if (now.voters == std::vector<node_id>{e.id}) return who + " is the last voter";
            std::erase(t.voters, e.id);
            std::erase(t.learners, e.id);
            t.addresses.erase(e.id);
            break;
        }
        if (e.address) t.addresses[e.id] = e.address->to_string();
        if (auto why = invalid_membership(t)) return *why;
        t.normalize();
        return t;
    }

    /// Why `target` cannot be a configuration of this cluster, or nothing.
    std::optional<std::string> invalid_membership(const configuration& target) const {
        if (target.voters.empty()) return "no voters given";
        for (const auto* ids : {&target.voters, &target.learners})
            for (node_id n : *ids)
                if (!target.addresses.count(n) && !address_of(n))
                    return "node " + std::to_string(n) +
                           " has no address (give one, or add it to node_options.peers)";
        const auto in = [](const std::vector<node_id>& ids, node_id n) {  // (maybe unsorted)
            return std::find(ids.begin(), ids.end(), n) != ids.end();
        };
        for (const auto& [n, a] : target.addresses) {
            std::string why;
            if (!in(target.voters, n) && !in(target.learners, n))
                return "an address is given for node " + std::to_string(n) +
                       ", which is not a member";
            if (!tcp_endpoint::parse(a, &why))
                return "node " + std::to_string(n) + "'s address " + why;
        }
        for (node_id v : target.voters)
            if (in(target.learners, v))
                return "node " + std::to_string(v) + " is given as a voter and as a learner";
        return std::nullopt;
    }

    void start_conf_change(conf_request req, status_promise p, clock::time_point now) {
        const auto& r = raw_->raft_state();
        auto refuse = [&](const std::string& why) {
            p->set_value(craft::status::error("craft: membership change refused: " + why));
        };
        if (conf_change_) return refuse("another change is in progress");
        if (r.role() != core::role::leader)
            return refuse("node " + std::to_string(opt_.id) + " is not the leader" +
                          (r.leader() ? " (node " + std::to_string(r.leader()) + " is)" : ""));
        if (transfer_) return refuse("a leadership transfer is in progress");
        if (auto* e = std::get_if<membership_edit>(&req)) {
            // Made to the configuration in force now, on the strand: nothing changes it between.
            if (r.conf().joint())
                return refuse("the cluster is leaving a joint configuration (retry)");
            auto made = edited(r.conf(), *e);
            if (auto* why = std::get_if<std::string>(&made)) return refuse(*why);
            if (std::holds_alternative<std::monostate>(made)) return p->set_value({});
            req = std::move(std::get<configuration>(made));
        }
        auto& target = std::get<configuration>(req);
        const auto res = raw_->propose_configuration(target);
        if (res.error != core::errc::ok) return refuse(std::string(core::to_string(res.error)));
        log(log_level::info, "changing membership to " + describe(target) + " (entry " +
                                 std::to_string(res.first) + ")");
        conf_change_ = conf_change{std::move(target), res.first, res.term,
                                   now + 10 * opt_.election_timeout, std::move(p)};
    }

    /// Ends the membership change once its configuration is in force (after the joint one,
    /// if any), when leadership moved, or when time is up.
    void step_conf_change(clock::time_point now) {
        const auto& r = raw_->raft_state();
        const auto& c = r.conf();
        auto finish = [&](craft::status st) {
            if (!st.ok()) log(log_level::warn, st.message());
            publish();  // status() shows the configuration in force before the caller wakes
            conf_change_->done->set_value(std::move(st));
            conf_change_.reset();
        };
        const auto& t = conf_change_->target;
        const auto maybe = " (the change may still take effect: see status().raft.conf)";
        if (c.index >= conf_change_->index && !c.joint()) {
            if (c.voters != t.voters || c.learners != t.learners)
                return finish(craft::status::error("craft: membership change to " + describe(t) +
                                                   " was followed by " + describe(c)));
            // In force once handed out; done once written and applied, when the core takes
            // the next change (a leader removing itself steps down meanwhile).
            if (r.log().applied() >= c.index) return finish({});
        } else if (r.term() != conf_change_->term || r.role() != core::role::leader) {
            return finish(craft::status::error("craft: membership change to " + describe(t) +
                                               ": leadership was lost" + maybe));
        }
        if (now >= conf_change_->deadline)
            finish(craft::status::error("craft: membership change to " + describe(t) +
                                        " did not complete within ten election timeouts" + maybe));
    }

    static std::string describe(const configuration& c) {
        auto list = [](const std::vector<node_id>& ids) {
            std::string s = "{";
            for (node_id n : ids) s += (s.size() > 1 ? "," : "") + std::to_string(n);
            return s + "}";
        };
        std::string s = "voters " + list(c.voters);
        if (c.joint()) s += " joint with " + list(c.voters_outgoing);
        if (!c.learners.empty()) s += ", learners " + list(c.learners);
        return s;
    }

    void start_read(pending_read r) {
        const std::uint64_t ctx = ++read_seq_;
        if (auto e = raw_->read_index(ctx); e != core::errc::ok) {
            r.fail(craft::status::error("craft: " + std::string(core::to_string(e))));
            return;
        }
        reads_in_core_.emplace(ctx, std::move(r));
    }

    void expire_reads(clock::time_point now) {
        for (auto it = forwards_.begin(); it != forwards_.end();) {
            if (it->second.deadline <= now) {
                const auto why = refused("craft: node " + std::to_string(it->second.leader) +
                                         " did not answer the forwarded command in time "
                                         "(outcome unknown; retry)");
                for (auto& cb : it->second.done) cb(why);
                it = forwards_.erase(it);
            } else {
                ++it;
            }
        }
        for (auto it = reads_in_core_.begin(); it != reads_in_core_.end();) {
            if (it->second.deadline <= now) {
                it->second.fail(
                    craft::status::error("craft: read timed out (no leader confirmed it; retry)"));
                it = reads_in_core_.erase(it);
            } else {
                ++it;
            }
        }
    }

    /// Takes the core's next batch: hands what must be written to the log thread (true), or,
    /// when nothing must be written, finishes it here (false). Its messages go at the end of
    /// the step (send_held_messages), after the write is handed over.
    bool begin_ready() {
        core::ready rd = raw_->get_ready();
        if (rd.fault) {  // nothing of this batch is written; a restart meets the same entry
            batch_failed_ = true;
            fail(craft::status::error("craft: cannot go on: " + *rd.fault));
            return false;
        }
        if (rd.conf) learn_addresses(*rd.conf);  // before this batch's messages go out
        if (rd.soft && rd.soft->role != core::role::leader) xfer_->stop_sending();
        if (rd.soft) {
            if (rd.soft->role == core::role::candidate) metrics_counters::add(metrics_.elections);
            if (rd.soft->leader != no_node && rd.soft->leader != last_leader_)
                metrics_counters::add(metrics_.leader_changes);
            last_leader_ = rd.soft->leader;
        }
        metrics_counters::add(metrics_.entries_committed, rd.committed.size());
        // Sent once this batch's write is handed to the log thread (sends are system calls;
        // the disk need not wait for them), after what an earlier batch held back.
        for (auto& m : rd.messages) held_messages_.push_back(std::move(m));
        rd.messages.clear();
        // The commit index is volatile Raft state: a batch that only moves it is not written
        // (or waited for) now; the newest hard state rides with the next write (etcd's
        // MustSync, likewise, does not sync for a commit alone). A lower stored commit only
        // means a restart replays less and learns the rest from the leader. Not so for a state
        // machine with its own durable data: what it applied must never pass the stored commit.
        // Nor when the core asks for it first: a configuration entry waits for this commit.
        // A deferred commit rides with the next write's entries, which is safe for a
        // configuration entry among them only because a log_store write is atomic.
        if constexpr (early_applies) {
            if (rd.hard && !rd.hard_first && rd.hard->term == written_hard_.term &&
                rd.hard->vote == written_hard_.vote) {
                unwritten_hard_ = *rd.hard;
                rd.hard.reset();
            }
        }
        if (!rd.must_sync()) {
            finish_ready(std::move(rd));
            return false;
        }
        // What was committed before this batch and is stored already is applied during the
        // write; the role change (if any) goes with it, ahead of those entries. Not for a
        // state machine with its own durable data: it must never apply past the stored commit.
        if (const auto k = early_applies && !inline_writes ? rd.applicable_before_write() : 0;
            k > 0) {
            apply_job job;
            const auto cut = rd.committed.begin() + static_cast<std::ptrdiff_t>(k);
            job.committed.assign(std::make_move_iterator(rd.committed.begin()),
                                 std::make_move_iterator(cut));
            rd.committed.erase(rd.committed.begin(), cut);
            job.soft = std::exchange(rd.soft, std::nullopt);
            queue_apply(std::move(job));
        }
        if (!rd.hard && unwritten_hard_) rd.hard = unwritten_hard_;
        if (rd.hard) written_hard_ = *rd.hard;
        unwritten_hard_.reset();
        if constexpr (inline_writes) {  // no I/O to wait for: no log-thread hand-off
            if (auto st = write_ready(rd); !st) {
                batch_failed_ = true;
                fail(st);
                return false;
            }
            finish_ready(std::move(rd));
            return false;
        }
        {
            std::lock_guard l(log_mutex_);
            log_jobs_.push_back(std::move(rd));
        }
        log_cv_.notify_one();
        return true;
    }

    /// The log thread made `rd` durable: answer, apply, advance.
    void finish_ready(core::ready rd) {
        // Held until the next batch is handed to the log thread (send_held_messages).
        for (auto& m : rd.messages_after_persist) held_messages_.push_back(std::move(m));
        apply_job job;
        job.install = rd.snap;
        job.committed = std::move(rd.committed);
        job.soft = rd.soft;
        for (const auto& rs : rd.read_states) {
            auto it = reads_in_core_.find(rs.context);
            if (it == reads_in_core_.end()) continue;
            it->second.index = rs.index;
            job_reads_.push_back(std::move(it->second));
            reads_in_core_.erase(it);
        }
        // A step that only exchanged messages (most of a leader's: acknowledgements that
        // did not move the commit) leaves the apply thread asleep.
        if (job.install || !job.committed.empty() || job.soft || !job_reads_.empty())
            queue_apply(std::move(job));
        raw_->advance();
    }

    /// Sends what `begin_ready` and `finish_ready` held back, in the order they held it.
    void send_held_messages() {
        for (auto& m : held_messages_) send(std::move(m));
        held_messages_.clear();
    }

    /// Hands `job` to the apply thread (jobs are applied in the order queued).
    void queue_apply(apply_job job) {
        job.term = raw_->raft_state().term();
        job.conf = raw_->raft_state().conf();
        ++apply_backlog_;
        {
            std::lock_guard l(apply_mutex_);
            apply_jobs_.push_back(std::move(job));
            for (auto& r : job_reads_) reads_handoff_.push_back(std::move(r));
            job_reads_.clear();
        }
        apply_cv_.notify_one();
    }

    /// While a batch is written: committed entries already stored go to the state machine
    /// now, instead of waiting for the write (a leader's entries commit during its next sync).
    void apply_durable_committed() {
        if (!early_applies || apply_backlog_ >= max_apply_backlog) return;
        auto ents = raw_->take_committed();
        if (ents.empty()) return;
        metrics_counters::add(metrics_.entries_committed, ents.size());
        apply_job job;
        job.committed = std::move(ents);
        queue_apply(std::move(job));
    }

    void send(message m) {
        if (m.type == message_type::snapshot && !m.snap_partial) {
            xfer_->offer(m);
            return;
        }
        transport_->send(std::move(m));
    }

    void flush_transfer() {
        for (auto& m : xfer_->take_messages()) transport_->send(std::move(m));
        for (const auto& r : xfer_->take_reports()) {
            raw_->report_snapshot(r.peer, r.ok);
            if (!r.ok && xfer_->missing_snapshot()) {
                {
                    std::lock_guard a(apply_mutex_);  // (the apply thread checks it under it)
                    snapshot_wanted_ = true;
                }
                apply_cv_.notify_one();
            }
        }
    }

    void publish() {
        std::lock_guard l(state_mutex_);
        state_.raft = raw_->status();
        state_.applied = applied_;
        state_.running = true;
    }
    void publish_stopped() {
        std::lock_guard l(state_mutex_);
        state_.running = false;
        state_.raft.soft = {};
    }

    // ---- log thread ---------------------------------------------------------------------

    void log_loop() {
        const detail::thread_mark mark(detail::node_on_this_thread, this);
        while (true) {
            std::variant<core::ready, snapshot_meta> job;
            {
                std::unique_lock l(log_mutex_);
                log_cv_.wait(l, [&] { return log_stop_ || !log_jobs_.empty(); });
                if (log_stop_) return;
                job = std::move(log_jobs_.front());
                log_jobs_.pop_front();
            }
            if (auto* compaction = std::get_if<snapshot_meta>(&job)) {
                if (compaction->index > log_->snapshot_meta().index)
                    if (auto st = log_->compact(*compaction); !st) return fail(st);
                continue;
            }
            auto& rd = std::get<core::ready>(job);
            if (auto st = write_ready(rd); !st) return fail(st);
            std::unique_lock l(inbox_mutex_);
            inbox_.persisted = std::move(rd);
            run_core_here(l, 1);  // answer, apply and hand over the next batch from here
        }
    }

    /// Stores what `rd` must persist (log thread; core thread for inline stores).
    craft::status write_ready(const core::ready& rd) {
        if (!rd.must_sync()) return {};
        log_write w;
        if (rd.snap) w.snap = &*rd.snap;
        w.entries = rd.entries;
        if (rd.hard) w.hard = &*rd.hard;
        if (rd.conf) w.conf = &*rd.conf;
        const auto t0 = clock::now();
        auto st = log_->write(w);
        if (st) metrics_.observe_log_write(clock::now() - t0);
        return st;
    }

    // ---- apply thread -------------------------------------------------------------------

    /// Snapshots asked for with `snapshot_now()` (a failure to save stops the node).
    void take_requested_snapshot() {
        if (requests_.empty()) return;
        auto why = failure();
        const auto st = why.ok() ? maybe_snapshot(true)
                                 : craft::status::error("craft: node failed: " + why.message());
        for (auto& p : requests_) p->set_value(st);
        requests_.clear();
    }

    /// Runs the apply loop; if the node failed, what waits on this thread fails now.
    void apply_loop() {
        const detail::thread_mark mark(detail::node_on_this_thread, this);
        apply_run();
        const auto why = failure();
        if (why.ok()) return;
        const auto st = craft::status::error("craft: node failed: " + why.message());
        {
            std::lock_guard l(apply_mutex_);
            for (auto& p : snapshot_requests_) requests_.push_back(std::move(p));
            snapshot_requests_.clear();
            for (auto& r : reads_handoff_) reads_waiting_apply_.push_back(std::move(r));
            reads_handoff_.clear();
        }
        for (auto& p : requests_) p->set_value(st);
        requests_.clear();
        for (auto& r : reads_waiting_apply_) r.fail(st);
        reads_waiting_apply_.clear();
    }

    void apply_run() {
        while (true) {
            apply_job job;
            {
                std::unique_lock l(apply_mutex_);
                const auto work = [&] {
                    return apply_stop_ || !apply_jobs_.empty() || !reads_handoff_.empty() ||
                           !snapshot_requests_.empty() || snapshot_wanted_.load();
                };
                // Idle with entries applied since the last snapshot, the thread wakes itself
                // when the snapshot interval is up (steps without commits queue no job); once
                // (a snapshot declined then waits for the next job, as before).
                const auto due_at = last_snapshot_time_ + opt_.snapshots.interval;
                if (opt_.snapshots.interval.count() != 0 && applied_ > last_snapshot_ &&
                    clock::now() < due_at)
                    apply_cv_.wait_until(l, due_at, work);
                else
                    apply_cv_.wait(l, work);
                if (apply_stop_) return;
                for (auto& r : reads_handoff_) reads_waiting_apply_.push_back(std::move(r));
                reads_handoff_.clear();
                for (auto& p : snapshot_requests_) requests_.push_back(std::move(p));
                snapshot_requests_.clear();
                if (apply_jobs_.empty()) {
                    l.unlock();
                    serve_reads();
                    maybe_snapshot(false);  // wanted for a follower, or by time
                    take_requested_snapshot();
                    continue;
                }
                job = std::move(apply_jobs_.front());
                apply_jobs_.pop_front();
            }
            if (apply_backlog_.fetch_sub(1) == max_apply_backlog) {
                {
                    std::lock_guard wake(inbox_mutex_);  // the core may take new batches again
                    inbox_.backlog_freed = true;
                }
                inbox_cv_.notify_one();
            }
            if (job.soft) run_role_hooks(*job.soft, job.term);
            if (job.install) {
                if (auto st = detail::load_snapshot(sm_, *snaps_, job.install->index); !st)
                    return fail(st);
                applied_ = job.install->index;
                last_snapshot_ = applied_;
                set_snapshot(*job.install);
                metrics_counters::add(metrics_.snapshots_installed);
                fail_waiting(0, applied_, "replaced by a snapshot from the leader");
            }
            applied_conf_ = std::move(job.conf);
            apply_entries(job.committed);
            // Removed from the configuration (a member before) and no longer leading: nobody
            // sends this node the entries after its removal, so the fate of proposals waiting
            // for them is unknown here.
            if (applied_conf_.is_voter(opt_.id) || applied_conf_.is_learner(opt_.id)) {
                was_member_ = true;
            } else if (was_member_ && !was_leader_) {
                fail_waiting(applied_conf_.index + 1, std::numeric_limits<index_t>::max(),
                             "node " + std::to_string(opt_.id) +
                                 " was removed from the configuration; it will not learn "
                                 "whether the entry commits");
            }
            serve_reads();
            maybe_snapshot(false);  // a failure stops the node: the next wait returns
            take_requested_snapshot();
        }
    }

    void run_role_hooks(const core::soft_state& s, term_t term) {
        const bool leads = s.role == core::role::leader;
        if (leads != was_leader_) {
            if (leads) {
                if constexpr (has_on_leader_start<StateMachine>) sm_.on_leader_start(term);
            } else {
                if constexpr (has_on_leader_stop<StateMachine>) sm_.on_leader_stop();
            }
        }
        const node_id following = leads ? no_node : s.leader;
        if (following != following_) {
            if (following_ != no_node)
                if constexpr (requires(StateMachine & m) { m.on_stop_following(node_id{}); })
                    sm_.on_stop_following(following_);
            if (following != no_node)
                if constexpr (requires(StateMachine & m) { m.on_start_following(node_id{}); })
                    sm_.on_start_following(following);
        }
        was_leader_ = leads;
        following_ = following;
    }

    void apply_entries(const std::vector<entry>& ents) {
        if (ents.empty()) return;
        std::vector<entry> user;
        std::vector<index_t> user_index;
        for (const auto& e : ents) {
            if (e.type == entry_type::configuration) {
                if constexpr (has_on_configuration_committed<StateMachine>)
                    if (auto c = core::decode_configuration(e.data)) {
                        c->index = e.index;
                        sm_.on_configuration_committed(*c);
                    }
            } else if (!e.data.empty()) {
                user.push_back(e);
            }
            bytes_since_snapshot_ += e.data.size();
        }
        std::vector<result_type> results;
        if (!user.empty()) {
            if constexpr (std::is_same_v<result_type, std::monostate>) {
                sm_.apply(std::span<const entry>(user));
            } else {
                results = sm_.apply(std::span<const entry>(user));
            }
        }
        applied_ = ents.back().index;
        metrics_counters::add(metrics_.entries_applied, ents.size());
        // Complete the proposals this node made, in order; others' entries are skipped.
        std::vector<std::pair<callback, proposal_outcome>> done;
        {
            std::lock_guard l(waiting_mutex_);
            std::size_t k = 0;
            for (const auto& e : ents) {
                const bool is_user = e.type == entry_type::normal && !e.data.empty();
                auto [it, end] = waiting_.equal_range(e.index);
                while (it != end) {
                    proposal_outcome o;
                    o.index = e.index;
                    if (it->second.term != e.term) {
                        // The committed entry at this index is another: ours never will be.
                        o.error = craft::status::error(
                            "craft: leadership changed; entry " + std::to_string(e.index) +
                            " holds another leader's command (it may be retried)");
                        o.not_applied = true;
                    } else if (is_user && k < results.size()) {
                        o.value = results[k];
                    }
                    done.emplace_back(std::move(it->second.done), std::move(o));
                    it = waiting_.erase(it);
                }
                if (is_user) ++k;
            }
        }
        for (auto& [cb, o] : done) cb(std::move(o));
    }

    /// Fails the proposals waiting for entries `first`..`last` with an unknown outcome.
    void fail_waiting(index_t first, index_t last, const std::string& why) {
        std::vector<callback> failed;
        {
            std::lock_guard l(waiting_mutex_);
            const auto end = waiting_.upper_bound(last);
            for (auto it = waiting_.lower_bound(first); it != end; it = waiting_.erase(it))
                failed.push_back(std::move(it->second.done));
        }
        for (auto& cb : failed) cb(refused("craft: outcome unknown: " + why));
    }

    void serve_reads() {
        for (auto it = reads_waiting_apply_.begin(); it != reads_waiting_apply_.end();) {
            if (it->index <= applied_) {
                metrics_counters::add(metrics_.reads);
                it->run();
                it = reads_waiting_apply_.erase(it);
            } else {
                ++it;
            }
        }
    }

    /// Takes a snapshot when one is due (or `now`), then queues compaction behind it. A
    /// failure to save stops the node.
    craft::status maybe_snapshot(bool now) {
        const bool wanted = snapshot_wanted_.exchange(false) || now;
        if (applied_ == 0)
            return now ? craft::status::error("craft: nothing applied to snapshot yet")
                       : craft::status{};
        if (applied_ <= last_snapshot_ && !wanted) return {};
        const auto since = std::chrono::duration_cast<std::chrono::milliseconds>(
            clock::now() - last_snapshot_time_);
        if (!wanted && !opt_.snapshots.due(applied_ - last_snapshot_, bytes_since_snapshot_, since))
            return {};
        auto t = log_->term(applied_);
        if (!t) return {};  // compacted: the newest snapshot covers it
        const snapshot_meta meta{applied_, *t, applied_conf_};
        // A snapshot received from the leader may already be stored ahead of what we applied.
        if (const auto stored = snaps_->list();
            !stored.empty() && stored.front().index >= meta.index)
            return {};
        last_snapshot_ = applied_;
        bytes_since_snapshot_ = 0;
        last_snapshot_time_ = clock::now();
        // Saving runs here, between two applies; the core and the log thread go on.
        if (auto st = detail::write_snapshot(*snaps_, meta, detail::prepare_snapshot(sm_)); !st) {
            fail(st);
            return st;
        }
        set_snapshot(meta);
        metrics_counters::add(metrics_.snapshots_taken);
        log(log_level::info, "snapshot taken at index " + std::to_string(meta.index));
        if (meta.index <= opt_.snapshots.keep_entries) return {};
        const index_t upto = meta.index - opt_.snapshots.keep_entries;
        auto ut = log_->term(upto);
        if (!ut) return {};
        std::lock_guard l(log_mutex_);
        log_jobs_.push_back(snapshot_meta{upto, *ut, {}});
        log_cv_.notify_one();
        return {};
    }

    void set_snapshot(const snapshot_meta& m) {
        std::lock_guard l(state_mutex_);
        state_.snapshot_index = m.index;
        state_.snapshot_term = m.term;
    }

    // ---- state --------------------------------------------------------------------------

    node_options opt_;
    StateMachine& sm_;
    logger_type logger_;

    std::mutex lifecycle_;  // start and stop
    bool running_ = false;

    std::shared_ptr<log_store_type> log_mem_;
    std::unique_ptr<log_type> log_;
    std::unique_ptr<snapshot_store_type> snaps_;
    std::unique_ptr<transport_type> transport_;
    // The address book: `peers`, overridden by the addresses the configuration records.
    // Written on the core thread; read by any (leader addresses in refusals).
    std::map<node_id, tcp_endpoint> book_;
    mutable std::mutex book_mutex_;
    std::unique_ptr<core::raw_node<log_type>> raw_;
    std::unique_ptr<detail::snapshot_transfer<snapshot_store_type>> xfer_;

    std::thread core_thread_, log_thread_, apply_thread_;

    std::mutex inbox_mutex_;
    std::condition_variable inbox_cv_;
    inbox inbox_;
    bool stopping_ = false;
    // The core is a strand: one thread at a time steps it, the core thread or (sparing a
    // hand-off) the transport's or the log thread that brought the work (inbox_mutex_).
    bool core_busy_ = false;                      // a thread is stepping the core
    bool core_waiter_ = false;                    // the core thread waits for it to let go
    bool core_failed_ = false;                    // a step failed: the core thread ends
    static constexpr int max_borrowed_steps = 4;  // steps another thread runs before handing back
    bool ran_before_ = false;
    std::atomic<std::uint16_t> port_{0};
    /// Committed entries are applied while a write is in progress (see begin_ready), unless
    /// the state machine keeps its own durable data: its applied index must never pass the
    /// commit index the log has stored, which early applies and unwritten commits allow.
    static constexpr bool early_applies = !has_last_applied<StateMachine>;
    /// A store declaring `inline_writes` (memory_log_store) is written on the core thread.
    static constexpr bool inline_writes = requires { requires log_store_type::inline_writes; };
    static constexpr int max_batches_per_step = 8;  // ready batches finished per core step
    bool batch_failed_ = false;  // a batch failed: an inline write, or a core fault (core thread)
    static constexpr std::size_t max_apply_backlog = 64;  // ready batches queued for applying
    std::atomic<std::size_t> apply_backlog_{0};

    // core strand only (whichever thread steps the core)
    clock::time_point next_tick_, next_publish_;
    core::soft_state shown_;  // what status() showed last
    term_t shown_term_ = 0;
    bool outstanding_ = false;  // a batch is with the log thread
    std::map<std::uint64_t, pending_read> reads_in_core_;
    std::map<std::uint64_t, forwarded> forwards_;
    std::uint64_t forward_seq_ = 0;
    std::map<node_id, index_t> commit_wanted_;  // leader: followers' forwarded commands' last
    std::optional<transfer> transfer_;
    std::optional<conf_change> conf_change_;
    node_id last_leader_ = no_node;
    std::vector<message> held_messages_;        ///< To send at the end of this step, in order.
    hard_state written_hard_;                   ///< The newest hard state handed to the log.
    std::optional<hard_state> unwritten_hard_;  ///< A newer commit index not written yet.

    std::vector<pending_read> job_reads_;
    std::uint64_t read_seq_ = 0;
    std::atomic<bool> snapshot_wanted_{false};

    std::mutex log_mutex_;
    std::condition_variable log_cv_;
    std::deque<std::variant<core::ready, snapshot_meta>> log_jobs_;
    bool log_stop_ = false;

    std::mutex apply_mutex_;
    std::condition_variable apply_cv_;
    std::deque<apply_job> apply_jobs_;
    std::vector<pending_read> reads_handoff_;
    std::vector<status_promise> snapshot_requests_;
    bool apply_stop_ = false;
    std::vector<status_promise> requests_;  // apply thread: snapshot requests taken

    // apply thread only (set at start, before the threads)
    std::vector<pending_read> reads_waiting_apply_;
    std::atomic<index_t> applied_{0};
    index_t last_snapshot_ = 0;
    std::uint64_t bytes_since_snapshot_ = 0;
    clock::time_point last_snapshot_time_;
    configuration applied_conf_;  // the configuration as of the last apply job
    bool was_member_ = false;     // applied_conf_ held this node once (apply thread)
    bool was_leader_ = false;
    node_id following_ = no_node;

    std::mutex waiting_mutex_;
    // Several proposals may wait on one index (forwarded through leaders of different terms,
    // or proposed again by a later leader); the one whose term the applied entry has wins.
    std::multimap<index_t, waiting_proposal> waiting_;

    mutable std::mutex state_mutex_;
    node_state state_;

    using metrics_counters = detail::metrics_counters;
    metrics_counters metrics_;
    mutable std::mutex traffic_mutex_;  // transport_ replaced (start/stop) vs. metrics()
    node_metrics traffic_base_;         // traffic of earlier runs
};

/// A node over the default policies.
template <class StateMachine>
using node = basic_node<StateMachine, default_policies>;

/// Reads a command of type `Command` that `basic_node::propose(const Command&)` wrote.
template <class Command>
std::optional<Command> decode(const entry& e) {
    try {
        std::istringstream is(std::string(e.data.str()), std::ios::binary);
        cereal::PortableBinaryInputArchive ar(is);
        Command c;
        ar(c);
        return c;
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

}  // namespace craft
