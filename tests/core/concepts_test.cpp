// Archetypes: the smallest types that model each concept. If a concept gains a requirement
// the archetypes (and the defaults) do not meet, this file stops compiling.

#include <doctest/doctest.h>

#include <craft/concepts.hpp>
#include <craft/testing/cluster.hpp>

#include <functional>
#include <optional>
#include <span>
#include <vector>

namespace archetype {

using namespace craft;

struct log_reader_only {
    persistent_state initial_state() const { return {}; }
    index_t first_index() const { return 1; }
    index_t last_index() const { return 0; }
    std::optional<term_t> term(index_t) const { return std::nullopt; }
    void entries(index_t, index_t, std::size_t, std::vector<entry>&) const {}
    craft::snapshot_meta snapshot_meta() const { return {}; }
};

struct log_store : log_reader_only {
    status write(const log_write&) { return {}; }
    status compact(const craft::snapshot_meta&) { return {}; }
};

struct snapshot_store {
    std::unique_ptr<snapshot_sink> begin(const snapshot_meta&) { return nullptr; }
    std::vector<snapshot_meta> list() const { return {}; }
    std::unique_ptr<snapshot_reader> open(index_t) { return nullptr; }
    status last_error() const { return {}; }
};

struct state_machine {
    void apply(std::span<const entry>) {}
    status save_snapshot(snapshot_writer&) const { return {}; }
    status load_snapshot(snapshot_reader&) { return {}; }
};

struct state_machine_with_options : state_machine {
    index_t last_applied() const { return 0; }
    auto prepare_snapshot() const {
        return [](snapshot_writer&) { return status{}; };
    }
};

struct state_machine_with_hooks : state_machine {
    void on_leader_start(term_t) {}
    void on_leader_stop() {}
    void on_configuration_committed(const configuration&) {}
};

struct transport {
    void send(message&&) {}
    status start(std::function<void(message&&)>) { return {}; }
    void stop() {}
};

// Near misses: each lacks exactly one requirement.
struct log_store_without_compact : log_reader_only {
    status write(const log_write&) { return {}; }
};
struct log_reader_with_wrong_term : log_reader_only {
    term_t term(index_t) const { return 0; }  // must say "unknown" with an optional
};
struct state_machine_without_load : state_machine {
    void load_snapshot() {}
};
struct state_machine_with_whole_blob_snapshots {  // the old API: must not pass any more
    void apply(std::span<const entry>) {}
    shared_bytes save_snapshot() const { return {}; }
    void load_snapshot(const shared_bytes&) {}
};
struct snapshot_store_without_open {
    std::unique_ptr<snapshot_sink> begin(const snapshot_meta&) { return nullptr; }
    std::vector<snapshot_meta> list() const { return {}; }
    status last_error() const { return {}; }
};
struct transport_with_blocking_start {
    void send(message&&) {}
    void start(std::function<void(message&&)>) {}  // no status: errors would be swallowed
    void stop() {}
};

}  // namespace archetype

TEST_SUITE("concepts") {

TEST_CASE("concepts: archetypes model each concept") {
    static_assert(craft::log_reader<archetype::log_reader_only>);
    static_assert(craft::log_store<archetype::log_store>);
    static_assert(craft::snapshot_store<archetype::snapshot_store>);
    static_assert(craft::state_machine<archetype::state_machine>);
    static_assert(craft::transport<archetype::transport>);
    CHECK(craft::check_storage_policies<craft::testing::memory_policies>());
}

TEST_CASE("concepts: a type missing one requirement does not model the concept") {
    static_assert(!craft::log_store<archetype::log_reader_only>);
    static_assert(!craft::log_store<archetype::log_store_without_compact>);
    static_assert(!craft::log_reader<archetype::log_reader_with_wrong_term>);
    static_assert(!craft::state_machine<archetype::state_machine_without_load>);
    static_assert(!craft::state_machine<archetype::state_machine_with_whole_blob_snapshots>);
    static_assert(!craft::snapshot_store<archetype::snapshot_store_without_open>);
    static_assert(!craft::transport<archetype::transport_with_blocking_start>);
}

TEST_CASE("concepts: optional hooks are detected, never demanded") {
    static_assert(!craft::has_on_leader_start<archetype::state_machine>);
    static_assert(craft::has_on_leader_start<archetype::state_machine_with_hooks>);
    static_assert(craft::has_on_leader_stop<archetype::state_machine_with_hooks>);
    static_assert(craft::has_on_configuration_committed<archetype::state_machine_with_hooks>);
    static_assert(craft::state_machine<archetype::state_machine_with_hooks>);
    static_assert(!craft::has_last_applied<archetype::state_machine>);
    static_assert(!craft::has_prepare_snapshot<archetype::state_machine>);
    static_assert(craft::has_last_applied<archetype::state_machine_with_options>);
    static_assert(craft::has_prepare_snapshot<archetype::state_machine_with_options>);
}

TEST_CASE("concepts: the testing policies model their concepts") {
    static_assert(craft::log_store<craft::testing::memory_log_store>);
    static_assert(craft::snapshot_store<craft::testing::memory_snapshot_store>);
    static_assert(craft::transport<craft::testing::sim_transport>);
    static_assert(craft::state_machine<craft::testing::recording_state_machine>);
}

TEST_CASE("status: an error carries its message; ok carries none") {
    craft::status ok;
    CHECK(ok.ok());
    CHECK(ok.message().empty());
    auto bad = craft::status::error("disk full: free space in /data");
    CHECK_FALSE(bad.ok());
    CHECK_FALSE(static_cast<bool>(bad));
    CHECK(bad.message() == "disk full: free space in /data");
}

}  // TEST_SUITE
