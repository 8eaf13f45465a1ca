#pragma once
/// @file
/// What a policy must provide. `basic_node` (and the testing cluster) check each slot with a
/// `static_assert` that names the slot and this header; read the numbered requirements of
/// the concept it names.

#include <concepts>    // requirement checks
#include <functional>  // transport handlers
#include <memory>      // snapshot sinks and readers
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/log_reader.hpp"
#include "core/types.hpp"
#include "snapshot_io.hpp"
#include "status.hpp"

namespace craft {

/// One durable write to a log store: everything a ready batch asks to persist, written
/// atomically with one sync.
struct log_write {
    const snapshot_meta* snap = nullptr;  ///< Discard the log and restart after this snapshot.
    std::span<const entry> entries;       ///< Append, replacing any suffix from the first index.
    const hard_state* hard = nullptr;     ///< New term, vote and commit.
    const configuration* conf = nullptr;  ///< New membership.
};

/// Durable log storage. A type `S` models `log_store` when it models `log_reader` (the
/// read-only part the core uses; see core/log_reader.hpp) and, for an `S& s`:
///
/// 1. `s.write(w)` applies a `log_write` atomically and durably (unless the user turned sync
///    off), in the order snapshot, entries, hard state, configuration, and returns a
///    `status`; after it returns ok, `initial_state()` and the reads reflect it, also after
///    a crash and restart.
/// 2. `s.compact(meta)` drops the entries up to `meta.index` (which must be stored or
///    covered by the current snapshot), after which `snapshot_meta()` returns `meta`;
///    returns a `status`.
///
/// The node reads on its core thread while its log thread writes. A store that allows that
/// itself declares `static constexpr bool concurrent_reads = true` (leveldb_log_store does);
/// any other is used under a shared lock (reads) and an exclusive one (writes). A store
/// whose writes never wait on I/O (memory_log_store) may declare
/// `static constexpr bool inline_writes = true`: the node then writes it on its core thread
/// instead of handing each batch to the log thread and back (two thread wake-ups saved).
template <class S>
concept log_store = log_reader<S> && requires(S& s, const log_write& w, const snapshot_meta& m) {
    { s.write(w) } -> std::same_as<status>;
    { s.compact(m) } -> std::same_as<status>;
};

/// Snapshot storage. A type `S` models `snapshot_store` when, for an `S& s` and a
/// `snapshot_meta m`:
///
/// 1. `s.begin(m)` returns a `std::unique_ptr<snapshot_sink>` (see snapshot_io.hpp) for a new
///    snapshot described by `m`, or null when the store cannot write (see `last_error()`);
///    its `commit()` makes the snapshot durable and visible atomically, also across a crash;
///    dropping it uncommitted leaves no trace.
/// 2. `s.list()` returns the metadata of the stored snapshots, newest first, as a
///    `std::vector<snapshot_meta>`; the store keeps a bounded number of them.
/// 3. `s.open(index)` returns a `std::unique_ptr<snapshot_reader>` for the stored snapshot at
///    `index` once every file passed its checksum, or null (missing or damaged: a damaged
///    snapshot is never handed out).
/// 4. `s.last_error()` returns a `status` describing the last failure (ok when none).
template <class S>
concept snapshot_store = requires(S& s, const snapshot_meta& m, index_t i) {
    { s.begin(m) } -> std::same_as<std::unique_ptr<snapshot_sink>>;
    { s.list() } -> std::same_as<std::vector<snapshot_meta>>;
    { s.open(i) } -> std::same_as<std::unique_ptr<snapshot_reader>>;
    { s.last_error() } -> std::convertible_to<status>;
};

/// A replicated state machine. A type `M` models `state_machine` when, for an `M& m`, a
/// `snapshot_writer& w` and a `snapshot_reader& r` (see snapshot_io.hpp):
///
/// 1. `m.apply(batch)` applies a `std::span<const entry>` of committed commands, in index
///    order, exactly once per entry per incarnation; it is called from one thread only. An
///    entry's `data` may share a larger buffer (a network read of many messages, up to
///    64 KiB): a state machine that keeps a command's bytes beyond `apply` should copy them.
/// 2. `m.save_snapshot(w)` writes its whole state as one or more files and returns a
///    `status`. It runs between two `apply` calls; replication goes on meanwhile (the core
///    and the log do not wait for the state machine).
/// 3. `m.load_snapshot(r)` replaces its whole state with one saved by `save_snapshot` and
///    returns a `status`.
///
/// Optional (detected, never demanded):
/// - `m.prepare_snapshot()` returns a callable `f(snapshot_writer&) -> status` holding a
///   consistent view of the state (a copy-on-write view, or a copy); the node calls it later,
///   possibly on another thread, while `apply` goes on. When present it is used instead of
///   `save_snapshot`.
/// - `m.last_applied()` returns the `index_t` of the last entry already reflected in the
///   state machine's own durable data (TAF libraft's onLoadData): at start-up the node then
///   replays only the entries after it instead of loading a snapshot first.
/// - hooks: `on_leader_start(term_t)`, `on_leader_stop()`,
///   `on_configuration_committed(const configuration&)`.
template <class M>
concept state_machine = requires(M& m, std::span<const entry> batch, snapshot_writer& w,
                                 snapshot_reader& r) {
    m.apply(batch);
    { m.save_snapshot(w) } -> std::same_as<status>;
    { m.load_snapshot(r) } -> std::same_as<status>;
};

/// True when the state machine can hand out a consistent view to save later.
template <class M>
concept has_prepare_snapshot = requires(M& m, snapshot_writer& w) {
    { m.prepare_snapshot()(w) } -> std::same_as<status>;
};
/// True when the state machine keeps its own durable data and knows how far it got.
template <class M>
concept has_last_applied = requires(const M& m) {
    { m.last_applied() } -> std::convertible_to<index_t>;
};

/// True when the state machine wants to hear that this node became leader.
template <class M>
concept has_on_leader_start = requires(M& m, term_t t) {
    m.on_leader_start(t);
};
/// True when the state machine wants to hear that this node stopped leading.
template <class M>
concept has_on_leader_stop = requires(M& m) {
    m.on_leader_stop();
};
/// True when the state machine wants to hear about committed membership changes.
template <class M>
concept has_on_configuration_committed = requires(M& m, const configuration& c) {
    m.on_configuration_committed(c);
};

/// Message transport between nodes. A type `T` models `transport` when, for a `T& t`:
///
/// 1. `t.send(msg)` queues a `message` (taken by rvalue) for `msg.to` without blocking; a
///    message may be lost (Raft tolerates it) but is never corrupted or delivered twice to
///    the state of a different cluster.
/// 2. `t.start(handler)` begins delivering received messages to `handler`, a
///    `std::function<void(message&&)>`, and returns a `status`.
/// 3. `t.stop()` stops delivery and sending; no handler call starts after it returns.
///
/// Optional: `t.on_unreachable(f)`, before `start`, with `f` a `std::function<void(node_id)>`
/// the transport calls when messages to a peer were lost (a connection went down, a full
/// queue dropped one); the node then stops pipelining to that peer and resends from its
/// last acknowledged entry (see `asio_tcp_transport`).
template <class T>
concept transport = requires(T& t, message&& m, std::function<void(message&&)> handler) {
    t.send(std::move(m));
    { t.start(std::move(handler)) } -> std::same_as<status>;
    t.stop();
};

/// A transport that reports lost messages (the optional part of `transport`).
template <class T>
concept reports_unreachable = requires(T& t, std::function<void(node_id)> f) {
    t.on_unreachable(std::move(f));
};

/// A transport that says when it handed over what one read brought (optional): `f`, given
/// to `t.on_delivered(f)` before `start`, runs on the delivering thread after the handler
/// calls for one read; the node then steps its core on that thread, sparing a thread
/// hand-off, and the messages of one read in one step.
template <class T>
concept reports_delivered = requires(T& t, std::function<void()> f) {
    t.on_delivered(std::move(f));
};

/// Checks a policy bundle at the point of use, with one plain-words message per slot.
/// @tparam Policies a struct with the member types `log_store` and `snapshot_store` (and,
///         for a networked node, `transport`).
template <class Policies>
consteval bool check_storage_policies() {
    static_assert(
        requires { typename Policies::log_store; },
        "craft: Policies::log_store is missing; see craft/concepts.hpp (log_store)");
    static_assert(
        requires { typename Policies::snapshot_store; },
        "craft: Policies::snapshot_store is missing; see craft/concepts.hpp (snapshot_store)");
    static_assert(
        log_store<typename Policies::log_store>,
        "craft: Policies::log_store does not model craft::log_store; see craft/concepts.hpp");
    static_assert(snapshot_store<typename Policies::snapshot_store>,
                  "craft: Policies::snapshot_store does not model craft::snapshot_store; see "
                  "craft/concepts.hpp");
    return true;
}

/// Checks a state machine type at the point of use.
template <class M>
consteval bool check_state_machine() {
    static_assert(
        state_machine<M>,
        "craft: the StateMachine does not model craft::state_machine; see craft/concepts.hpp");
    return true;
}

}  // namespace craft
