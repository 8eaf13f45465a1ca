#pragma once
/// @file
/// `memory_log_store`: a `log_store` in memory, for tests and simulations. Every write is
/// "durable" the moment it returns; the simulation models what a crash loses by holding
/// writes back until its virtual disk completes them.

#include <algorithm>
#include <cassert>
#include <optional>
#include <span>
#include <vector>

#include "../concepts.hpp"
#include "../core/types.hpp"

namespace craft::testing {

/// In-memory log store (models `craft::log_store`).
class memory_log_store {
public:
    /// An empty log: first index 1, last index 0.
    memory_log_store() : ents_(1) {}

    // ---- log_reader ----
    [[nodiscard]] persistent_state initial_state() const { return {hard_, conf_}; }
    [[nodiscard]] index_t first_index() const { return offset() + 1; }
    [[nodiscard]] index_t last_index() const { return offset() + ents_.size() - 1; }
    [[nodiscard]] std::optional<term_t> term(index_t i) const {
        if (i < offset() || i > last_index()) return std::nullopt;
        return ents_[i - offset()].term;
    }
    void entries(index_t lo, index_t hi, std::size_t max_bytes, std::vector<entry>& out) const {
        assert(lo > offset() && hi <= last_index() + 1 && lo < hi);
        std::size_t bytes = 0;
        for (index_t i = lo; i < hi; ++i) {
            const entry& e = ents_[i - offset()];
            bytes += entry_cost(e);
            if (i != lo && bytes > max_bytes) break;
            out.push_back(e);
        }
    }
    [[nodiscard]] craft::snapshot_meta snapshot_meta() const { return snap_; }

    // ---- log_store ----
    status write(const log_write& w) {
        if (w.snap) {
            ents_.assign(1, entry{w.snap->term, w.snap->index, entry_type::normal, {}});
            snap_ = *w.snap;
        }
        if (!w.entries.empty()) {
            const index_t first = w.entries.front().index;
            if (first <= offset())
                return status::error("memory_log_store: append below the compacted prefix");
            if (first > last_index() + 1)
                return status::error("memory_log_store: append leaves a gap in the log");
            ents_.resize(first - offset());
            ents_.insert(ents_.end(), w.entries.begin(), w.entries.end());
        }
        if (w.hard) hard_ = *w.hard;
        if (w.conf) conf_ = *w.conf;
        return {};
    }
    status compact(const craft::snapshot_meta& m) {
        if (m.index <= offset()) return {};
        if (m.index > last_index())
            return status::error("memory_log_store: compact beyond the last entry");
        ents_.erase(ents_.begin(), ents_.begin() + static_cast<std::ptrdiff_t>(m.index - offset()));
        ents_.front() = entry{m.term, m.index, entry_type::normal, {}};
        snap_ = m;
        return {};
    }

    /// All stored entries (for invariant checks).
    [[nodiscard]] std::span<const entry> stored() const {
        return std::span<const entry>(ents_).subspan(1);
    }

private:
    [[nodiscard]] index_t offset() const { return ents_.front().index; }

    std::vector<entry> ents_;  // ents_[0] is a dummy holding the snapshot's index and term
    hard_state hard_;
    configuration conf_;
    craft::snapshot_meta snap_;
};

static_assert(log_store<memory_log_store>);

}  // namespace craft::testing
