#pragma once
/// @file
/// `memory_snapshot_store`: a `snapshot_store` in memory, for tests and simulations.

#include <cstddef>
#include <deque>
#include <optional>

#include "../concepts.hpp"
#include "../core/types.hpp"

namespace craft::testing {

/// Keeps the newest `keep` snapshots in memory (models `craft::snapshot_store`).
class memory_snapshot_store {
public:
    explicit memory_snapshot_store(std::size_t keep = 2) : keep_(keep == 0 ? 1 : keep) {}

    status save(const snapshot& s) {
        if (!snaps_.empty() && s.meta.index < snaps_.back().meta.index)
            return status::error("memory_snapshot_store: snapshot older than the newest one");
        snaps_.push_back(s);
        while (snaps_.size() > keep_) snaps_.pop_front();
        return {};
    }
    [[nodiscard]] std::optional<snapshot> latest() const {
        if (snaps_.empty()) return std::nullopt;
        return snaps_.back();
    }
    /// Number of snapshots kept.
    [[nodiscard]] std::size_t size() const noexcept { return snaps_.size(); }

private:
    std::size_t keep_;
    std::deque<snapshot> snaps_;
};

static_assert(snapshot_store<memory_snapshot_store>);

}  // namespace craft::testing
