#pragma once
/// @file
/// When a node snapshots its state machine and compacts its log.

#include <chrono>   // the time trigger
#include <cstdint>  // counts and sizes

namespace craft {

/// Automatic snapshots and log compaction. A snapshot is taken when any enabled trigger
/// fires (0 disables a trigger); the log is then compacted up to the snapshot's index less
/// `keep_entries`, so a follower that is only a little behind still catches up from the log
/// instead of receiving the whole snapshot. The defaults follow etcd (100,000 entries, 5,000
/// kept) and braft (one hour).
struct snapshot_options {
    std::uint64_t entries = 100'000;                ///< Entries applied since the last snapshot.
    std::uint64_t bytes = 256ull << 20;             ///< Payload bytes applied since then.
    std::chrono::milliseconds interval{3'600'000};  ///< Time since then (if anything applied).
    std::uint64_t keep_entries = 5'000;             ///< Entries kept in the log behind a snapshot.
    std::size_t chunk_bytes = 1 << 20;              ///< InstallSnapshot chunk size.

    /// True when a snapshot is due.
    [[nodiscard]] bool due(std::uint64_t applied_entries, std::uint64_t applied_bytes,
                           std::chrono::milliseconds since_last) const noexcept {
        if (applied_entries == 0) return false;
        return (entries != 0 && applied_entries >= entries) ||
               (bytes != 0 && applied_bytes >= bytes) ||
               (interval.count() != 0 && since_last >= interval);
    }
};

}  // namespace craft
