// Start-up recovery (detail::recover): which snapshot a restarting node loads, and what it
// refuses to load; and the in-memory store's checksums, which the simulation's disk relies on.

#include <doctest/doctest.h>

#include <craft/detail/state_machine_io.hpp>
#include <craft/testing/cluster.hpp>

#include <cstdint>
#include <string>
#include <vector>

using namespace craft;
using craft::testing::memory_log_store;
using craft::testing::memory_snapshot_store;
using craft::testing::recording_state_machine;

namespace {

/// A log of `n` entries of term 1 ("e1".."en"), committed to `commit`.
void fill_log(memory_log_store& log, index_t n, index_t commit) {
    std::vector<entry> ents;
    for (index_t i = 1; i <= n; ++i)
        ents.push_back({1, i, entry_type::normal, shared_bytes("e" + std::to_string(i))});
    hard_state hs{1, 1, commit};
    log_write w;
    w.entries = ents;
    w.hard = &hs;
    REQUIRE(log.write(w).ok());
}

/// Stores a snapshot at (`index`, `term`) whose state is the values "e1".."e<index>".
void store_snapshot(memory_snapshot_store& s, index_t index, term_t term) {
    recording_state_machine sm;
    std::vector<entry> ents;
    for (index_t i = 1; i <= index; ++i)
        ents.push_back({term, i, entry_type::normal, shared_bytes("e" + std::to_string(i))});
    sm.apply(ents);
    REQUIRE(detail::write_snapshot(s, {index, term, {}}, detail::prepare_snapshot(sm)).ok());
}

}  // namespace

TEST_SUITE("storage") {

TEST_CASE(
    "memory_log_store: a checked store finds a corrupt entry; an unchecked one does not look") {
    memory_log_store checked, unchecked(false);
    fill_log(checked, 5, 5);
    fill_log(unchecked, 5, 5);
    REQUIRE(checked.corrupt_entry(3));
    REQUIRE(unchecked.corrupt_entry(3));
    std::vector<entry> a, b;
    checked.entries(1, 6, SIZE_MAX, a);
    unchecked.entries(1, 6, SIZE_MAX, b);
    CHECK(a.size() == 2);  // stops before the corrupt entry and records why
    CHECK_FALSE(checked.health().ok());
    CHECK(checked.health().message().find("entry 3") != std::string::npos);
    CHECK(b.size() == 5);  // benchmarks only: the damage goes unseen
    CHECK(unchecked.health().ok());
    CHECK(unchecked.intact_term(3).has_value());
    CHECK_FALSE(checked.intact_term(3).has_value());
}

TEST_CASE("recovery: an empty log and no snapshot start from scratch") {
    memory_log_store log;
    memory_snapshot_store snaps;
    recording_state_machine sm;
    auto r = detail::recover(sm, log, snaps);
    CHECK(r.error.ok());
    CHECK(r.applied == 0);
    CHECK_FALSE(r.loaded);
}

TEST_CASE("recovery: the snapshot at the compaction point is loaded, then the log replays") {
    memory_log_store log;
    memory_snapshot_store snaps;
    fill_log(log, 10, 10);
    store_snapshot(snaps, 6, 1);
    REQUIRE(log.compact({6, 1, {}}).ok());
    recording_state_machine sm;
    auto r = detail::recover(sm, log, snaps);
    REQUIRE(r.error.ok());
    CHECK(r.applied == 6);
    CHECK(sm.values().size() == 6);
}

TEST_CASE("recovery: a local snapshot past the stored commit keeps the log after it") {
    // The node applied and snapshotted entries whose commit index it had not written yet (the
    // commit index is volatile), compacted the log there, and crashed.
    memory_log_store log;
    memory_snapshot_store snaps;
    fill_log(log, 10, 4);
    store_snapshot(snaps, 8, 1);
    REQUIRE(log.compact({8, 1, {}}).ok());
    recording_state_machine sm;
    auto r = detail::recover(sm, log, snaps);
    REQUIRE(r.error.ok());
    CHECK(r.applied == 8);
    CHECK(log.first_index() == 9);
    CHECK(log.last_index() == 10);  // entries 9 and 10, maybe acknowledged, are still there
    CHECK(log.initial_state().hard.commit == 8);
}

TEST_CASE("recovery: a snapshot cut short by a crash before its install is finished") {
    SUBCASE("beyond the log: the log restarts after it") {
        memory_log_store log;
        memory_snapshot_store snaps;
        fill_log(log, 5, 3);
        store_snapshot(snaps, 8, 2);  // received from a leader; the crash came before the log write
        recording_state_machine sm;
        auto r = detail::recover(sm, log, snaps);
        REQUIRE(r.error.ok());
        CHECK(r.applied == 8);
        CHECK(sm.values().size() == 8);
        CHECK(log.snapshot_meta().index == 8);
        CHECK(log.last_index() == 8);
        CHECK(log.initial_state().hard.commit == 8);
    }
    SUBCASE("its last entry is in the log with the same term: the suffix stays") {
        memory_log_store log;
        memory_snapshot_store snaps;
        fill_log(log, 9, 3);
        store_snapshot(snaps, 6, 1);
        recording_state_machine sm;
        auto r = detail::recover(sm, log, snaps);
        REQUIRE(r.error.ok());
        CHECK(r.applied == 6);
        CHECK(log.last_index() == 9);
        CHECK(log.first_index() == 1);
        CHECK(log.initial_state().hard.commit == 6);
    }
}

TEST_CASE("recovery: a damaged snapshot is skipped; with none left the node refuses to start") {
    memory_log_store log;
    memory_snapshot_store snaps;
    fill_log(log, 10, 10);
    store_snapshot(snaps, 4, 1);
    store_snapshot(snaps, 8, 1);
    SUBCASE("an older one that agrees with the log is used") {
        REQUIRE(log.compact({3, 1, {}}).ok());
        REQUIRE(snaps.corrupt(8));
        recording_state_machine sm;
        auto r = detail::recover(sm, log, snaps);
        REQUIRE(r.error.ok());
        CHECK(r.applied == 4);
    }
    SUBCASE("the log was compacted past every intact one") {
        REQUIRE(log.compact({8, 1, {}}).ok());
        REQUIRE(snaps.corrupt(8));
        recording_state_machine sm;
        auto r = detail::recover(sm, log, snaps);
        REQUIRE_FALSE(r.error.ok());
        CHECK(r.error.message().find("after entry 8") != std::string::npos);
        CHECK(r.error.message().find("fails its checksum") != std::string::npos);
        CHECK(sm.values().empty());  // nothing was loaded
    }
}

}  // TEST_SUITE
