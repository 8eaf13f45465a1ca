#pragma once
/// @file
/// The window of AppendEntries in flight to one follower, bounded by count and bytes.

#include <cstddef>
#include <cstdint>
#include <vector>

#include "types.hpp"

namespace craft::core {

/// A ring of (last index, bytes) for each unacknowledged AppendEntries sent to a follower in
/// replicate state. The leader stops sending when the ring is full by count or by bytes, and
/// frees slots as the follower acknowledges.
class inflights {
public:
    /// @param max_count messages allowed in flight (at least 1).
    /// @param max_bytes bytes allowed in flight (0: unbounded).
    inflights(std::size_t max_count, std::size_t max_bytes)
        : ring_(max_count == 0 ? 1 : max_count), max_bytes_(max_bytes) {}

    /// Records a message whose last entry is `last` and whose entries weigh `bytes`.
    void add(index_t last, std::size_t bytes) {
        ring_[(start_ + count_) % ring_.size()] = {last, bytes};
        ++count_;
        bytes_ += bytes;
    }
    /// Frees every message whose last entry is at or below `to` (acknowledged).
    void free_le(index_t to) {
        while (count_ != 0 && ring_[start_].last <= to) {
            bytes_ -= ring_[start_].bytes;
            start_ = (start_ + 1) % ring_.size();
            --count_;
        }
    }
    /// Frees the oldest message, so a heartbeat answer can unstick a full window.
    void free_first_one() {
        if (count_ != 0) free_le(ring_[start_].last);
    }
    /// True when no more messages may be sent.
    [[nodiscard]] bool full() const noexcept {
        return count_ == ring_.size() || (max_bytes_ != 0 && bytes_ >= max_bytes_);
    }
    /// Messages in flight.
    [[nodiscard]] std::size_t count() const noexcept { return count_; }
    /// Bytes in flight.
    [[nodiscard]] std::size_t bytes() const noexcept { return bytes_; }
    /// Forgets everything (the follower left replicate state).
    void reset() noexcept {
        start_ = count_ = 0;
        bytes_ = 0;
    }

private:
    struct slot {
        index_t last = 0;
        std::size_t bytes = 0;
    };
    std::vector<slot> ring_;
    std::size_t max_bytes_;
    std::size_t start_ = 0;
    std::size_t count_ = 0;
    std::size_t bytes_ = 0;
};

}  // namespace craft::core
