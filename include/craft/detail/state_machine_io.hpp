#pragma once
/// @file
/// Saving, loading and recovering a state machine through a snapshot store: the steps every
/// runtime shares (the simulation's cluster and `basic_node`).

#include <functional>  // prepared snapshot jobs
#include <optional>
#include <string>
#include <utility>

#include "../concepts.hpp"
#include "../core/types.hpp"

namespace craft::detail {

/// A snapshot job: writes a consistent view of the state into a writer.
using snapshot_job = std::function<status(snapshot_writer&)>;

/// Takes the state machine's view for a snapshot: its `prepare_snapshot()` when it has one
/// (the job may then run later and elsewhere while `apply` goes on), else a job that calls
/// `save_snapshot` (to run before the next `apply`).
template <state_machine SM>
snapshot_job prepare_snapshot(SM& sm) {
    if constexpr (has_prepare_snapshot<SM>) {
        return snapshot_job(sm.prepare_snapshot());
    } else {
        return [&sm](snapshot_writer& w) { return sm.save_snapshot(w); };
    }
}

/// Runs `job` into a new snapshot `meta` of `store` and commits it.
template <snapshot_store Store>
status write_snapshot(Store& store, const snapshot_meta& meta, const snapshot_job& job) {
    auto sink = store.begin(meta);
    if (!sink) {
        status e = store.last_error();
        return e.ok() ? status::error("the snapshot store refused a new snapshot") : e;
    }
    if (auto st = job(*sink); !st)
        return status::error("saving the state machine's snapshot failed: " + st.message());
    return sink->commit();
}

/// Loads the stored snapshot at `index` into `sm`.
template <state_machine SM, snapshot_store Store>
status load_snapshot(SM& sm, Store& store, index_t index) {
    auto reader = store.open(index);
    if (!reader) {
        status e = store.last_error();
        return status::error("snapshot " + std::to_string(index) + " cannot be read" +
                             (e.ok() ? std::string() : ": " + e.message()));
    }
    if (auto st = sm.load_snapshot(*reader); !st)
        return status::error("the state machine could not load snapshot " + std::to_string(index) +
                             ": " + st.message());
    return {};
}

/// What start-up recovered: the applied index to give the core, or why the node must not
/// start.
struct recovery {
    index_t applied = 0;
    std::optional<snapshot_meta> loaded;  ///< The snapshot loaded, if any.
    status error;
};

/// Brings a fresh state machine to a state consistent with the stored log.
///
/// A state machine that reports `last_applied()` at or past the log's compaction point keeps
/// its own data and replays only later entries. Otherwise the newest intact snapshot that
/// agrees with the log is loaded: the compaction point itself, or one whose last entry the
/// log holds with the same term. A snapshot newer than anything the log knows committed was
/// received from a leader and the node crashed before recording the install: since a
/// snapshot holds only committed state, the install is finished now (the log restarts after
/// it, or keeps its suffix when it holds the snapshot's last entry). A damaged snapshot is
/// skipped, never loaded; if the log was compacted past every intact snapshot, the node
/// cannot rebuild its state and start-up fails with an error naming what is missing.
template <state_machine SM, log_store Log, snapshot_store Store>
recovery recover(SM& sm, Log& log, Store& store) {
    recovery r;
    const snapshot_meta boundary = log.snapshot_meta();
    const hard_state hard = log.initial_state().hard;
    if constexpr (has_last_applied<SM>) {
        const index_t own = sm.last_applied();
        if (own > std::max(hard.commit, boundary.index)) {
            r.error = status::error("the state machine reports entry " + std::to_string(own) +
                                    " applied, but the log is committed only to " +
                                    std::to_string(std::max(hard.commit, boundary.index)) +
                                    " (data directory from another node or cluster?)");
            return r;
        }
        if (own >= boundary.index) {
            r.applied = own;
            return r;
        }
    }
    std::string skipped;
    for (const auto& meta : store.list()) {
        const bool at_boundary = meta.index == boundary.index && meta.term == boundary.term;
        const bool holds_last = meta.index > boundary.index && meta.index <= log.last_index() &&
                                log.term(meta.index) == meta.term;
        const bool cut_short = meta.index > std::max(hard.commit, boundary.index);
        if (!at_boundary && !holds_last && !cut_short) {
            if (meta.index < boundary.index) break;  // older ones are older still
            continue;
        }
        if (auto st = load_snapshot(sm, store, meta.index); !st) {
            skipped += "; " + st.message();
            continue;
        }
        if (meta.index > hard.commit) {
            // Record what the snapshot proves committed, and finish an install.
            hard_state h = hard;
            h.commit = meta.index;
            log_write w;
            w.hard = &h;
            // The log restarts after an install's snapshot; one at the compaction point (a
            // local snapshot taken before the commit index was stored) keeps the log's suffix.
            if (!holds_last && !at_boundary) w.snap = &meta;
            if (auto st = log.write(w); !st) {
                r.error = status::error("finishing the install of snapshot " +
                                        std::to_string(meta.index) + ": " + st.message());
                return r;
            }
        }
        r.applied = meta.index;
        r.loaded = meta;
        return r;
    }
    if (boundary.index != 0)
        r.error = status::error("the log starts after entry " + std::to_string(boundary.index) +
                                " but no intact snapshot covering it is stored" + skipped +
                                "; the node cannot rebuild its state");
    return r;
}

}  // namespace craft::detail
