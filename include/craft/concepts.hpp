#pragma once
/// @file
/// What a policy must provide. `basic_node` (and the testing cluster) check each slot with a
/// `static_assert` that names the slot and this header; read the numbered requirements of
/// the concept it names.

#include <concepts>  // requirement checks
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>

#include "core/log_reader.hpp"
#include "core/types.hpp"

namespace craft {

/// Outcome of an operation that can fail: empty when it succeeded, otherwise a message that
/// says what happened and what to do.
class status {
public:
    status() = default;
    /// A failed status carrying `message`.
    static status error(std::string message) {
        status s;
        s.message_ = std::move(message);
        return s;
    }
    [[nodiscard]] bool ok() const noexcept { return !message_.has_value(); }
    explicit operator bool() const noexcept { return ok(); }
    /// The error message ("" when ok).
    [[nodiscard]] const std::string& message() const noexcept {
        static const std::string none;
        return message_ ? *message_ : none;
    }

private:
    std::optional<std::string> message_;
};

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
template <class S>
concept log_store = log_reader<S> && requires(S& s, const log_write& w, const snapshot_meta& m) {
    { s.write(w) } -> std::same_as<status>;
    { s.compact(m) } -> std::same_as<status>;
};

/// Snapshot storage. A type `S` models `snapshot_store` when, for an `S& s`:
///
/// 1. `s.save(snap)` stores a `snapshot` durably and returns a `status`; the newest saved
///    snapshot is the one `latest()` returns.
/// 2. `s.latest()` returns the newest stored snapshot, or `std::nullopt` when there is none.
template <class S>
concept snapshot_store = requires(S& s, const snapshot& snap) {
    { s.save(snap) } -> std::same_as<status>;
    { s.latest() } -> std::same_as<std::optional<snapshot>>;
};

/// A replicated state machine. A type `M` models `state_machine` when, for an `M& m`:
///
/// 1. `m.apply(batch)` applies a `std::span<const entry>` of committed commands, in index
///    order, exactly once per entry per incarnation; it is called from one thread only.
/// 2. `m.save_snapshot()` returns its whole state as `shared_bytes` (a copy-on-write view
///    is fine: replication goes on while the bytes are written).
/// 3. `m.load_snapshot(bytes)` replaces its whole state with one saved by `save_snapshot`.
///
/// Optional hooks, called when present (detected, never demanded): `on_leader_start(term_t)`,
/// `on_leader_stop()`, `on_configuration_committed(const configuration&)`.
template <class M>
concept state_machine = requires(M& m, const M& cm, std::span<const entry> batch,
                                 const shared_bytes& bytes) {
    m.apply(batch);
    { cm.save_snapshot() } -> std::convertible_to<shared_bytes>;
    m.load_snapshot(bytes);
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
template <class T>
concept transport = requires(T& t, message&& m, std::function<void(message&&)> handler) {
    t.send(std::move(m));
    { t.start(std::move(handler)) } -> std::same_as<status>;
    t.stop();
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
