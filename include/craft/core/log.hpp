#pragma once
/// @file
/// The core's view of the log: durable entries read through a `log_reader`, followed by an
/// unstable tail of entries (and possibly a snapshot) not yet persisted.

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "log_reader.hpp"
#include "types.hpp"

namespace craft::core {

/// Entries and a snapshot that the node accepted but has not yet persisted. They are handed
/// out in a ready batch and dropped from here once the runtime reports them durable.
class unstable_log {
public:
    explicit unstable_log(index_t offset) : offset_(offset) {}

    /// Index of the first entry, if a pending snapshot fixes it.
    [[nodiscard]] std::optional<index_t> maybe_first_index() const {
        if (snap_) return snap_->index + 1;
        return std::nullopt;
    }
    /// Index of the last entry held here or covered by the pending snapshot.
    [[nodiscard]] std::optional<index_t> maybe_last_index() const {
        if (!entries_.empty()) return offset_ + entries_.size() - 1;
        if (snap_) return snap_->index;
        return std::nullopt;
    }
    /// Term of entry `i` if this tail knows it.
    [[nodiscard]] std::optional<term_t> maybe_term(index_t i) const {
        if (i < offset_) {
            if (snap_ && snap_->index == i) return snap_->term;
            return std::nullopt;
        }
        auto last = maybe_last_index();
        if (!last || i > *last) return std::nullopt;
        return entries_[i - offset_].term;
    }
    /// Entries up to (`i`, `t`) were persisted: drop them, unless they were since replaced.
    void stable_to(index_t i, term_t t) {
        auto gt = maybe_term(i);
        if (!gt || *gt != t || i < offset_) return;
        entries_.erase(entries_.begin(),
                       entries_.begin() + static_cast<std::ptrdiff_t>(i + 1 - offset_));
        offset_ = i + 1;
    }
    /// The snapshot at `i` was persisted.
    void stable_snapshot_to(index_t i) {
        if (snap_ && snap_->index == i) snap_.reset();
    }
    /// Replaces everything with a snapshot received from the leader.
    void restore(snapshot_meta s) {
        offset_ = s.index + 1;
        entries_.clear();
        snap_ = std::move(s);
    }
    /// Appends `ents` (contiguous, non-empty), replacing any conflicting suffix.
    void truncate_and_append(std::span<const entry> ents) {
        const index_t after = ents.front().index;
        if (after == offset_ + entries_.size()) {
            // The common case: a direct continuation.
        } else if (after <= offset_) {
            // Replaces the whole tail (and anything stored from `after` on).
            offset_ = after;
            entries_.clear();
        } else {
            entries_.resize(after - offset_);
        }
        entries_.insert(entries_.end(), ents.begin(), ents.end());
    }

    [[nodiscard]] const std::vector<entry>& entries() const noexcept { return entries_; }
    [[nodiscard]] const std::optional<snapshot_meta>& pending_snapshot() const noexcept {
        return snap_;
    }
    [[nodiscard]] index_t offset() const noexcept { return offset_; }

private:
    std::optional<snapshot_meta> snap_;
    std::vector<entry> entries_;
    index_t offset_;
};

/// The replicated log as one node sees it: committed and applied marks over durable storage
/// plus the unstable tail.
/// @tparam Storage a `log_reader` over what this node has persisted.
template <log_reader Storage>
class raft_log {
public:
    /// @param storage the durable log, which must outlive this object.
    /// @param max_apply_bytes bound on the committed entries handed out in one ready batch.
    raft_log(const Storage& storage, std::size_t max_apply_bytes)
        : storage_(&storage),
          unstable_(storage.last_index() + 1),
          committed_(storage.first_index() - 1),
          applied_(storage.first_index() - 1),
          max_apply_bytes_(max_apply_bytes) {}

    [[nodiscard]] index_t first_index() const {
        if (auto i = unstable_.maybe_first_index()) return *i;
        return storage_->first_index();
    }
    [[nodiscard]] index_t last_index() const {
        if (auto i = unstable_.maybe_last_index()) return *i;
        return storage_->last_index();
    }
    /// Term of entry `i`, or nothing when it was compacted away or does not exist yet.
    [[nodiscard]] std::optional<term_t> term(index_t i) const {
        const index_t dummy = first_index() - 1;
        if (i < dummy || i > last_index()) return std::nullopt;
        if (auto t = unstable_.maybe_term(i)) return t;
        return storage_->term(i);
    }
    [[nodiscard]] term_t last_term() const { return term(last_index()).value_or(0); }
    [[nodiscard]] bool match_term(index_t i, term_t t) const { return term(i) == t; }

    /// Raft paper 5.4.1: is a log ending at (`last`, `t`) at least as up to date as ours?
    [[nodiscard]] bool is_up_to_date(index_t last, term_t t) const {
        const term_t lt = last_term();
        return t > lt || (t == lt && last >= last_index());
    }

    /// Index of the first entry of `ents` that conflicts with or extends the log (0 if all
    /// of them are already present).
    [[nodiscard]] index_t find_conflict(std::span<const entry> ents) const {
        for (const auto& e : ents) {
            if (!match_term(e.index, e.term)) return e.index;
        }
        return 0;
    }

    /// The largest index at or below `index` whose term is at or below `t`, and that term.
    /// A follower answers a rejected append with it, and the leader probes from it, so a log
    /// diverging over several terms is repaired in one round trip per term, not per entry.
    [[nodiscard]] std::pair<index_t, term_t> find_conflict_by_term(index_t index, term_t t) const {
        for (; index > 0; --index) {
            auto it = term(index);
            if (!it) return {index, 0};  // compacted or unknown: probe from here
            if (*it <= t) return {index, *it};
        }
        return {0, 0};
    }

    /// Follower side of AppendEntries: if our log holds (`index`, `log_term`), appends the
    /// entries not yet present, advances commit to min(`leader_commit`, last new index) and
    /// returns that last new index; otherwise returns nothing.
    std::optional<index_t> maybe_append(index_t index, term_t log_term, index_t leader_commit,
                                        std::span<const entry> ents) {
        if (!match_term(index, log_term)) return std::nullopt;
        const index_t last_new = index + ents.size();
        const index_t ci = find_conflict(ents);
        if (ci != 0) {
            // A committed entry never conflicts: that would contradict Leader Completeness.
            assert(ci > committed_);
            append(ents.subspan(ci - index - 1));
        }
        commit_to(std::min(leader_commit, last_new));
        return last_new;
    }

    /// Appends entries (contiguous, continuing or overwriting an uncommitted suffix).
    index_t append(std::span<const entry> ents) {
        if (ents.empty()) return last_index();
        assert(ents.front().index > committed_);
        unstable_.truncate_and_append(ents);
        return last_index();
    }

    /// Entries starting at `lo`, bounded by bytes and count (at least one when any exist);
    /// nothing when `lo` was compacted away (the follower needs a snapshot).
    [[nodiscard]] std::optional<std::vector<entry>> entries_from(index_t lo, std::size_t max_bytes,
                                                                 std::size_t max_count) const {
        std::vector<entry> out;
        if (lo > last_index()) return out;
        if (lo < first_index()) return std::nullopt;
        slice(lo, std::min(last_index() + 1, lo + std::max<std::size_t>(max_count, 1)), max_bytes,
              out);
        return out;
    }

    /// Appends `[lo, hi)` to `out`, stopping after `max_bytes` (at least one entry).
    void slice(index_t lo, index_t hi, std::size_t max_bytes, std::vector<entry>& out) const {
        const std::size_t start = out.size();
        const index_t split = unstable_.offset();
        if (lo < split) {
            storage_->entries(lo, std::min(hi, split), max_bytes, out);
            // Storage stopped early on the byte bound: do not continue from the tail.
            if (out.size() - start < std::min(hi, split) - lo) return;
        }
        if (hi > split) {
            const index_t ulo = std::max(lo, split);
            std::size_t bytes = 0;
            for (std::size_t i = start; i < out.size(); ++i) bytes += entry_cost(out[i]);
            const auto& tail = unstable_.entries();
            for (index_t i = ulo; i < hi; ++i) {
                const entry& e = tail[i - split];
                bytes += entry_cost(e);
                if (out.size() > start && bytes > max_bytes) break;
                out.push_back(e);
            }
        }
    }

    /// True when committed entries wait to be applied (and no snapshot is pending).
    [[nodiscard]] bool has_next_committed() const {
        return !unstable_.pending_snapshot() && committed_ > applied_ &&
               applied_ + 1 >= first_index();
    }
    /// The next committed entries to apply, up to index `hi` at most, bounded by
    /// `max_apply_bytes`.
    [[nodiscard]] std::vector<entry> next_committed(index_t hi = ~index_t{0}) const {
        std::vector<entry> out;
        const index_t last = std::min(committed_, hi);
        if (has_next_committed() && last > applied_)
            slice(applied_ + 1, last + 1, max_apply_bytes_, out);
        return out;
    }

    /// The committed entries after `after` that are stored already (not in the unstable
    /// tail), bounded by `max_apply_bytes`; none while a snapshot is pending.
    [[nodiscard]] std::vector<entry> durable_committed_after(index_t after) const {
        std::vector<entry> out;
        if (unstable_.pending_snapshot()) return out;
        const index_t hi = std::min(committed_, unstable_.offset() - 1);
        if (hi > after && after >= applied_ && after + 1 >= first_index())
            slice(after + 1, hi + 1, max_apply_bytes_, out);
        return out;
    }

    void commit_to(index_t i) {
        if (i > committed_) {
            assert(i <= last_index());
            committed_ = i;
        }
    }
    /// Commits up to `max_index` if that entry is from term `t` (Raft paper 5.4.2: a leader
    /// commits only entries of its own term by counting replicas).
    bool maybe_commit(index_t max_index, term_t t) {
        if (max_index > committed_ && term(max_index) == t) {
            commit_to(max_index);
            return true;
        }
        return false;
    }
    void applied_to(index_t i) {
        assert(i <= committed_ && i >= applied_);
        applied_ = i;
    }
    /// Sets the applied mark at start-up (a state machine that keeps its own data).
    void set_applied(index_t i) { applied_ = std::max(applied_, std::min(i, committed_)); }

    void stable_to(index_t i, term_t t) { unstable_.stable_to(i, t); }
    void stable_snapshot_to(index_t i) { unstable_.stable_snapshot_to(i); }

    /// Replaces the log with a snapshot received from the leader.
    void restore(snapshot_meta s) {
        committed_ = s.index;
        unstable_.restore(std::move(s));
    }

    /// Metadata of the snapshot a lagging follower should receive.
    [[nodiscard]] snapshot_meta snapshot_for_follower() const {
        if (const auto& s = unstable_.pending_snapshot()) return *s;
        return storage_->snapshot_meta();
    }

    [[nodiscard]] const unstable_log& unstable() const noexcept { return unstable_; }
    [[nodiscard]] index_t committed() const noexcept { return committed_; }
    [[nodiscard]] index_t applied() const noexcept { return applied_; }
    [[nodiscard]] const Storage& storage() const noexcept { return *storage_; }

private:
    const Storage* storage_;
    unstable_log unstable_;
    index_t committed_;
    index_t applied_;
    std::size_t max_apply_bytes_;
};

}  // namespace craft::core
