#pragma once
/// @file
/// `log_reader`: the read-only view of durable log storage that the core needs.

#include <concepts>  // requirement checks
#include <cstddef>
#include <optional>
#include <vector>

#include "types.hpp"

namespace craft {

/// What the core reads from a log store. A type `S` models `log_reader` when, for a
/// `const S& s`:
///
/// 1. `s.initial_state()` returns the `persistent_state` (hard state and configuration) that
///    was last saved, or a default one for a new node.
/// 2. `s.first_index()` returns the index of the first entry still stored; entries before it
///    were compacted into the snapshot described by `s.snapshot_meta()`.
/// 3. `s.last_index()` returns the index of the last stored entry (`first_index() - 1` when
///    no entry is stored).
/// 4. `s.term(i)` returns the term of entry `i` for `first_index() - 1 <= i <= last_index()`
///    (at `first_index() - 1`, the snapshot's term) and `std::nullopt` otherwise.
/// 5. `s.entries(lo, hi, max_bytes, out)` appends the entries `[lo, hi)` to `out`, in order,
///    stopping once their `entry_cost` total would exceed `max_bytes` but always appending at
///    least one; it requires `first_index() <= lo < hi <= last_index() + 1`.
/// 6. `s.snapshot_meta()` returns the metadata of the snapshot the log was last compacted to
///    (all zero when there is none).
///
/// Every call is cheap and non-blocking for recent entries: the core calls them on its only
/// thread, on the hot path.
template <class S>
concept log_reader = requires(const S& s, index_t i, std::size_t n, std::vector<entry>& out) {
    { s.initial_state() } -> std::convertible_to<persistent_state>;
    { s.first_index() } -> std::same_as<index_t>;
    { s.last_index() } -> std::same_as<index_t>;
    { s.term(i) } -> std::same_as<std::optional<term_t>>;
    s.entries(i, i, n, out);
    { s.snapshot_meta() } -> std::convertible_to<craft::snapshot_meta>;
};

}  // namespace craft
