#pragma once
/// @file
/// Counters a running node keeps for status and metrics pages: plain atomics, bumped where
/// the work happens (a relaxed increment per batch, not per byte), read as a consistent-enough
/// snapshot.

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>

namespace craft {

/// A latency histogram with fixed upper bounds (microseconds), cumulative as Prometheus wants.
struct latency_histogram {
    /// Upper bounds of the buckets, in microseconds; a last bucket takes the rest (+Inf).
    static constexpr std::array<std::uint64_t, 14> bounds_us = {
        50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000};

    std::array<std::uint64_t, bounds_us.size() + 1> buckets{};  ///< Not cumulative.
    std::uint64_t count = 0;
    std::uint64_t sum_us = 0;
};

/// What `basic_node::metrics()` reports. Counters only grow while the node object lives.
struct node_metrics {
    std::uint64_t proposals = 0;            ///< Commands this node appended as leader.
    std::uint64_t proposals_forwarded = 0;  ///< Commands this node passed on to a leader.
    std::uint64_t proposals_refused = 0;    ///< Commands refused at once (no leader, ...).
    std::uint64_t entries_committed = 0;    ///< Entries this node learned were committed.
    std::uint64_t entries_applied = 0;      ///< Entries handed to the state machine.
    std::uint64_t reads = 0;                ///< Linearizable reads served.
    std::uint64_t elections = 0;            ///< Elections this node started (as candidate).
    std::uint64_t leader_changes = 0;       ///< Times this node saw a new leader (itself too).
    std::uint64_t snapshots_taken = 0;
    std::uint64_t snapshots_installed = 0;  ///< Received from a leader.
    std::uint64_t log_writes = 0;           ///< Ready batches written (one sync each).
    std::uint64_t unreachable_reports = 0;  ///< Losses the transport reported (see concepts.hpp).
    std::uint64_t messages_sent = 0, bytes_sent = 0;  ///< Transport traffic, when it counts.
    std::uint64_t messages_received = 0, bytes_received = 0;
    latency_histogram log_write_latency;  ///< Write + sync of one batch.
};

namespace detail {

/// The live counters behind `node_metrics` (relaxed atomics; any thread may bump them).
class metrics_counters {
public:
    using counter = std::atomic<std::uint64_t>;
    counter proposals{0}, proposals_forwarded{0}, proposals_refused{0}, entries_committed{0},
        entries_applied{0}, reads{0}, elections{0}, leader_changes{0}, snapshots_taken{0},
        snapshots_installed{0}, log_writes{0}, unreachable_reports{0};

    static void add(counter& c, std::uint64_t n = 1) noexcept {
        c.fetch_add(n, std::memory_order_relaxed);
    }

    void observe_log_write(std::chrono::nanoseconds d) noexcept {
        const auto us = static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(d).count());
        std::size_t b = 0;
        while (b < latency_histogram::bounds_us.size() && us > latency_histogram::bounds_us[b]) ++b;
        add(buckets_[b]);
        add(sum_us_, us);
        add(log_writes);
    }

    [[nodiscard]] node_metrics snapshot() const noexcept {
        auto get = [](const counter& c) { return c.load(std::memory_order_relaxed); };
        node_metrics m;
        m.proposals = get(proposals);
        m.proposals_forwarded = get(proposals_forwarded);
        m.proposals_refused = get(proposals_refused);
        m.entries_committed = get(entries_committed);
        m.entries_applied = get(entries_applied);
        m.reads = get(reads);
        m.elections = get(elections);
        m.leader_changes = get(leader_changes);
        m.snapshots_taken = get(snapshots_taken);
        m.snapshots_installed = get(snapshots_installed);
        m.log_writes = get(log_writes);
        m.unreachable_reports = get(unreachable_reports);
        for (std::size_t i = 0; i < buckets_.size(); ++i) {
            m.log_write_latency.buckets[i] = get(buckets_[i]);
            m.log_write_latency.count += m.log_write_latency.buckets[i];
        }
        m.log_write_latency.sum_us = get(sum_us_);
        return m;
    }

private:
    std::array<counter, latency_histogram::bounds_us.size() + 1> buckets_{};
    counter sum_us_{0};
};

}  // namespace detail
}  // namespace craft
