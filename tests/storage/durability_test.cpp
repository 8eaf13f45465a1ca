// Durability under crashes, torn writes and corruption: whole clusters in simulation, on the
// faulty in-memory disk and on real LevelDB and snapshot files in temporary directories.
// Every test runs the cluster's invariant checks after every event (no committed entry lost
// or changed, log matching, one leader per term, ...), so each asserts c.ok() last.

#include <doctest/doctest.h>

#include <craft/snapshot/file_snapshot_store.hpp>
#include <craft/storage/leveldb_log_store.hpp>
#include <craft/testing/cluster.hpp>

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "temp_dir.hpp"

using namespace craft;
using craft::testing::cluster;
using craft::testing::cluster_options;
using craft::testing::sim_time;

namespace {

/// The default policies, on real files.
struct disk_policies {
    using log_store = leveldb_log_store;
    using snapshot_store = file_snapshot_store;
};
using disk_cluster = cluster<testing::recording_state_machine, disk_policies>;

/// Stores under `dir/<id>/`, reopened at every start (the simulation's crash closes nothing
/// that a real process would keep: unfinished writes are lost before they reach LevelDB).
disk_cluster::factories disk_factories(const std::filesystem::path& dir) {
    disk_cluster::factories f;
    f.log_store = [dir](node_id id) -> std::unique_ptr<leveldb_log_store> {
        leveldb_log_store::options o;
        o.dir = dir / std::to_string(id) / "log";
        o.cluster_id = 42;
        o.id = id;
        o.sync = false;  // in-process simulation: the OS keeps what LevelDB wrote
        auto r = leveldb_log_store::open(o);
        REQUIRE_MESSAGE(r.store, r.error.message());
        return std::move(r.store);
    };
    f.snapshot_store = [dir](node_id id) {
        return std::make_unique<file_snapshot_store>(dir / std::to_string(id) / "snapshots");
    };
    return f;
}

/// Proposes `n` values "<prefix><k>" on the leader, running the cluster between them.
template <class C>
void load(C& c, const std::string& prefix, int n, sim_time gap = 5'000) {
    for (int k = 0; k < n && c.ok(); ++k) {
        c.propose(prefix + std::to_string(k));
        c.run_for(gap);
    }
}

/// Runs until every live node applied everything committed (and a leader exists).
template <class C>
bool settle(C& c, sim_time limit = 20'000'000) {
    return c.run_until(
        [&] {
            if (!c.leader()) return false;
            for (node_id id : c.ids())
                if (c.at(id).up && c.at(id).applied != c.max_committed()) return false;
            return true;
        },
        limit);
}

/// Every committed user command, in index order.
template <class C>
std::vector<std::string> committed_values(const C& c) {
    std::vector<std::string> out;
    for (const auto& [i, e] : c.committed_entries())
        if (e.type == entry_type::normal && !e.data.empty()) out.emplace_back(e.data.str());
    return out;
}

/// Every live node's state machine holds exactly the committed commands, in order.
template <class C>
void check_states_match_commits(const C& c) {
    const auto expect = committed_values(c);
    for (node_id id : c.ids()) {
        if (!c.at(id).up) continue;
        INFO("node " << id);
        CHECK(c.at(id).sm->values() == expect);
    }
}

}  // namespace

TEST_SUITE("storage") {

TEST_CASE("CrashAll: five crash-all cycles under load lose no committed entry") {
    auto cycles = [](auto& c) {
        for (int cycle = 0; cycle < 5 && c.ok(); ++cycle) {
            load(c, "c" + std::to_string(cycle) + "-", 40, 2'000);
            const auto before = committed_values(c);
            // Crash every node at once, in the middle of whatever is being written.
            for (node_id id : c.ids()) c.crash(id);
            for (node_id id : c.ids()) c.restart(id);
            REQUIRE(settle(c));
            const auto after = committed_values(c);
            // Nothing committed before the crash is lost or changed.
            REQUIRE(after.size() >= before.size());
            CHECK(std::equal(before.begin(), before.end(), after.begin()));
            check_states_match_commits(c);
        }
        CHECK(c.max_committed() > 150);
        CHECK(c.failures().empty());
        CHECK_MESSAGE(c.ok(), c.violation());
    };
    SUBCASE("simulated disk, torn writes, snapshots") {
        cluster_options o;
        o.seed = 11;
        o.torn_writes = 1;
        o.snapshot_every = 25;
        o.snapshots.keep_entries = 5;
        o.disk_max = 5'000;
        cluster<> c(o);
        cycles(c);
    }
    SUBCASE("LevelDB and snapshot files") {
        test::temp_dir dir;
        cluster_options o;
        o.seed = 12;
        o.snapshot_every = 25;
        o.snapshots.keep_entries = 5;
        disk_cluster c(o, disk_factories(dir.path));
        cycles(c);
    }
}

TEST_CASE("SingleNodeDurability: one node never reports a commit before the write is durable") {
    cluster_options o;
    o.nodes = 1;
    o.seed = 5;
    o.disk_min = 1'000;
    o.disk_max = 9'000;
    cluster<> c(o);
    REQUIRE(c.run_until([&] { return c.leader().has_value(); }, 5'000'000));
    std::size_t checks = 0;
    for (int round = 0; round < 20 && c.ok(); ++round) {
        for (int k = 0; k < 10; ++k) {
            c.propose("s" + std::to_string(round) + "-" + std::to_string(k));
            // Look often, also while writes are in flight.
            for (int step = 0; step < 5; ++step) {
                c.run_for(700);
                const auto& n = c.at(1);
                if (!n.up) continue;
                const index_t commit = n.raft->raft_state().log().committed();
                ++checks;
                REQUIRE(commit <= n.store->last_index());
                for (index_t i =
                         std::max<index_t>(n.store->first_index(), commit > 5 ? commit - 5 : 1);
                     i <= commit; ++i)
                    REQUIRE(n.store->intact_term(i) == n.raft->raft_state().log().term(i));
            }
        }
        const auto before = committed_values(c);
        c.crash(1);  // loses whatever was not yet durable
        c.restart(1);
        REQUIRE(settle(c));
        const auto after = committed_values(c);
        CHECK(std::equal(before.begin(), before.end(), after.begin()));
        check_states_match_commits(c);
    }
    CHECK(checks > 500);
    CHECK_MESSAGE(c.ok(), c.violation());
}

TEST_CASE("TornTail: a crash in the middle of an append drops only the unacknowledged tail") {
    SUBCASE("the faulty disk keeps a prefix and drops a half-written last entry") {
        testing::memory_log_store s;
        std::vector<entry> first{{1, 1, entry_type::normal, shared_bytes("a")},
                                 {1, 2, entry_type::normal, shared_bytes("b")}};
        hard_state hs{1, 1, 2};
        log_write w1;
        w1.entries = first;
        w1.hard = &hs;
        REQUIRE(s.write(w1).ok());
        std::vector<entry> next;
        for (index_t i = 3; i <= 7; ++i)
            next.push_back({2, i, entry_type::normal, shared_bytes("n" + std::to_string(i))});
        hard_state hs2{2, 1, 7};
        log_write w2;
        w2.entries = next;
        w2.hard = &hs2;
        s.write_torn(w2, 3, true);  // entries 3, 4 and a torn 5 reach the disk
        s.reopen();
        CHECK(s.last_index() == 4);
        CHECK(s.health().ok());
        CHECK(s.initial_state().hard == hs);  // the torn write's hard state never landed
        CHECK(s.term(4) == 2);
        s.write_torn(w2, 5, false);  // a crash after whole entries: nothing torn
        s.reopen();
        CHECK(s.last_index() == 7);
    }
    SUBCASE("LevelDB drops a torn last record of its own log") {
        test::temp_dir dir;
        leveldb_log_store::options o;
        o.dir = dir.path;
        o.cluster_id = 1;
        o.id = 1;
        {
            auto r = leveldb_log_store::open(o);
            REQUIRE(r.store);
            std::vector<entry> a{{1, 1, entry_type::normal, shared_bytes(std::string(300, 'a'))}};
            log_write w;
            w.entries = a;
            REQUIRE(r.store->write(w).ok());
            std::vector<entry> b{{1, 2, entry_type::normal, shared_bytes(std::string(3000, 'b'))}};
            w.entries = b;
            REQUIRE(r.store->write(w).ok());
        }
        // Cut the tail of LevelDB's write-ahead log: the second write was torn by a crash.
        std::filesystem::path wal;
        for (const auto& f : std::filesystem::directory_iterator(dir.path))
            if (f.path().extension() == ".log") wal = f.path();
        REQUIRE(!wal.empty());
        const auto size = std::filesystem::file_size(wal);
        REQUIRE(size > 2000);
        std::filesystem::resize_file(wal, size - 1000);
        auto r = leveldb_log_store::open(o);
        REQUIRE_MESSAGE(r.store, r.error.message());
        CHECK(r.store->last_index() == 1);
        CHECK(r.store->term(1) == 1);
        CHECK(r.store->health().ok());
    }
    SUBCASE("clusters with every crash tearing the write in flight stay safe and converge") {
        std::size_t torn_restarts = 0;
        for (std::uint64_t seed = 1; seed <= 20; ++seed) {
            cluster_options o;
            o.seed = seed;
            o.torn_writes = 1;
            o.disk_min = 2'000;
            o.disk_max = 8'000;
            o.max_entries_per_message = 16;
            cluster<> c(o);
            c.trace = [&](const std::string& t) {
                if (t.find("half-written") != std::string::npos) ++torn_restarts;
            };
            for (int round = 0; round < 10 && c.ok(); ++round) {
                for (int k = 0; k < 8; ++k) c.propose("t" + std::to_string(round * 8 + k));
                c.run_for(3'000);
                const node_id victim = c.ids()[(seed + round) % c.ids().size()];
                c.crash(victim);
                c.run_for(50'000);
                c.restart(victim);
                c.run_for(100'000);
            }
            INFO("seed " << seed);
            REQUIRE(settle(c));
            check_states_match_commits(c);
            CHECK(c.failures().empty());
            CHECK_MESSAGE(c.ok(), c.violation());
        }
        CHECK(torn_restarts > 10);
    }
}

TEST_CASE("CorruptFollowerEntry: a corrupted entry is caught by its checksum, never applied") {
    cluster_options o;
    o.seed = 21;
    cluster<> c(o);
    REQUIRE(c.run_until([&] { return c.leader().has_value(); }, 5'000'000));
    load(c, "x", 30);
    REQUIRE(settle(c));
    const node_id leader = *c.leader();
    const node_id f = leader == 1 ? 2 : 1;

    SUBCASE("an applied entry: found when the node restarts and replays its log") {
        REQUIRE(c.corrupt_entry(f, 12));
        c.crash(f);
        c.restart(f);
        c.run_for(100'000);
        REQUIRE(c.failures().size() == 1);
        CHECK(c.failures()[0].first == f);
        CHECK(c.failures()[0].second.find("entry 12 fails its checksum") != std::string::npos);
        CHECK_FALSE(c.at(f).up);
        // The others go on; nothing committed is lost.
        load(c, "y", 10);
        REQUIRE(settle(c));
        check_states_match_commits(c);
    }
    SUBCASE("an entry at the tail: never vouched for when the leader probes it") {
        // The follower misses the next entries; then its last entry rots.
        c.isolate(f);
        load(c, "z", 5);
        const index_t last = c.at(f).store->last_index();
        REQUIRE(c.corrupt_entry(f, last));
        // Record every acknowledgement the follower sends from now on.
        std::vector<std::string> acks;
        const std::string from_f = std::to_string(f) + "->";
        c.trace = [&](const std::string& t) {
            if (t.rfind(from_f, 0) == 0 && t.find("append_response") != std::string::npos &&
                t.find("REJECT") == std::string::npos)
                acks.push_back(t);
        };
        c.heal();
        // The leader probes at or after the follower's last entry; the follower must not
        // accept entries on the strength of the corrupt one, and stops instead.
        c.run_for(2'000'000);
        c.trace = nullptr;
        REQUIRE(c.failures().size() == 1);
        CHECK(c.failures()[0].second.find("entry " + std::to_string(last)) != std::string::npos);
        for (const auto& a : acks) {
            INFO(a);
            const auto at = a.find(" index ");
            REQUIRE(at != std::string::npos);
            CHECK(std::stoull(a.substr(at + 7)) < last);
        }
        load(c, "w", 5);
        REQUIRE(settle(c));
        check_states_match_commits(c);
    }
    CHECK(c.verify_durability());
    CHECK_MESSAGE(c.ok(), c.violation());
}

TEST_CASE("SnapshotInstall: a follower down for 30 snapshots catches up by chunked snapshot") {
    cluster_options o;
    o.seed = 31;
    o.snapshot_every = 10;
    o.snapshots.chunk_bytes = 200;  // many chunks per snapshot
    cluster<> c(o);
    REQUIRE(c.run_until([&] { return c.leader().has_value(); }, 5'000'000));
    load(c, "a", 10);
    REQUIRE(settle(c));
    const node_id f = *c.leader() == 3 ? 2 : 3;
    c.crash(f);
    // 30 snapshots' worth (the others compact their logs), about 30 KB of state: a transfer
    // takes over a hundred chunks.
    for (int k = 0; k < 300 && c.ok(); ++k) {
        c.propose(std::string(100, static_cast<char>('a' + k % 26)) + std::to_string(k));
        c.run_for(5'000);
    }
    REQUIRE(c.at(*c.leader()).store->first_index() > 200);

    // An unreliable network: drops, duplicates and reordering.
    testing::network_faults nf;
    nf.drop = 0.1;
    nf.duplicate = 0.05;
    nf.long_delay = 0.05;
    c.network().set_faults(nf);

    // Restarts the follower and waits until the leader streams a snapshot to it.
    auto restart_into_transfer = [&] {
        c.restart(f);
        REQUIRE(c.run_until(
            [&] {
                auto l = c.leader();
                return l && c.at(*l).xfer && c.at(*l).xfer->sending_to(f);
            },
            10'000'000));
    };

    SUBCASE("catches up") {
        c.restart(f);
        REQUIRE(settle(c, 60'000'000));
        CHECK(c.at(f).snapshots_installed >= 1);
    }
    SUBCASE("and again after crashing in the middle of a transfer") {
        restart_into_transfer();  // then crash the follower within the transfer
        c.run_for(30'000);
        REQUIRE(c.at(*c.leader()).xfer->sending_to(f));  // still under way
        REQUIRE(c.at(f).xfer->receiving());
        c.crash(f);
        c.run_for(100'000);  // back before the leader gives up: it resends from the start
        c.restart(f);
        REQUIRE(settle(c, 60'000'000));
        CHECK(c.at(f).snapshots_installed >= 1);
    }
    SUBCASE("a leader change during the transfer ends without an endless reinstall loop") {
        restart_into_transfer();
        const node_id old = *c.leader();
        c.crash(old);
        c.run_for(1'000'000);
        c.restart(old);
        REQUIRE(settle(c, 60'000'000));
        CHECK(c.at(f).snapshots_installed >= 1);
        CHECK(c.at(f).snapshots_installed <= 3);
        // Quiet afterwards: no more installs while the cluster idles.
        const auto installs = c.at(f).snapshots_installed;
        c.run_for(5'000'000);
        CHECK(c.at(f).snapshots_installed == installs);
    }
    c.network().set_faults({});
    load(c, "c", 5);
    REQUIRE(settle(c));
    check_states_match_commits(c);
    CHECK(c.failures().empty());
    CHECK_MESSAGE(c.ok(), c.violation());
}

TEST_CASE("SnapshotCorruption: a corrupt snapshot on disk is never loaded") {
    cluster_options o;
    o.seed = 41;
    o.snapshot_every = 10;
    SUBCASE("compacted past every intact snapshot: the node stops with a clear error") {
        cluster<> c(o);
        REQUIRE(c.run_until([&] { return c.leader().has_value(); }, 5'000'000));
        load(c, "a", 45);
        REQUIRE(settle(c));
        const node_id f = *c.leader() == 1 ? 2 : 1;
        const index_t bad = c.corrupt_snapshot(f);
        REQUIRE(bad != 0);
        c.crash(f);
        c.restart(f);
        REQUIRE(c.failures().size() == 1);
        CHECK(c.failures()[0].second.find("no intact snapshot") != std::string::npos);
        CHECK(c.failures()[0].second.find("fails its checksum") != std::string::npos);
        load(c, "b", 5);
        REQUIRE(settle(c));
        check_states_match_commits(c);
        CHECK_MESSAGE(c.ok(), c.violation());
    }
    SUBCASE("an older intact snapshot still agrees with the log: it is loaded instead") {
        o.snapshots.keep_entries = 15;  // the log reaches back past the older snapshot
        cluster<> c(o);
        REQUIRE(c.run_until([&] { return c.leader().has_value(); }, 5'000'000));
        load(c, "a", 45);
        REQUIRE(settle(c));
        const node_id f = *c.leader() == 1 ? 2 : 1;
        const auto stored = c.at(f).snaps->list();
        REQUIRE(stored.size() == 2);
        REQUIRE(c.at(f).store->snapshot_meta().index > 0);  // compacted, behind the older one
        REQUIRE(c.at(f).store->snapshot_meta().index < stored[1].index);
        REQUIRE(c.corrupt_snapshot(f) == stored[0].index);
        c.crash(f);
        c.restart(f);
        CHECK(c.failures().empty());
        CHECK(c.at(f).applied == stored[1].index);  // the older one, then the log after it
        REQUIRE(settle(c));
        check_states_match_commits(c);
        CHECK_MESSAGE(c.ok(), c.violation());
    }
    SUBCASE("the leader's newest snapshot is corrupt: it sends a fresh one instead") {
        cluster<> c(o);
        REQUIRE(c.run_until([&] { return c.leader().has_value(); }, 5'000'000));
        const node_id l = *c.leader();
        const node_id f = l == 1 ? 2 : 1;
        c.crash(f);
        load(c, "a", 45);
        REQUIRE(c.corrupt_snapshot(l) != 0);
        c.restart(f);
        REQUIRE(settle(c, 30'000'000));
        CHECK(c.at(f).snapshots_installed >= 1);
        check_states_match_commits(c);
        CHECK(c.failures().empty());
        CHECK_MESSAGE(c.ok(), c.violation());
    }
}

TEST_CASE("Restart: nodes restarted from LevelDB and snapshot files match their peers") {
    test::temp_dir dir;
    cluster_options o;
    o.seed = 51;
    o.snapshot_every = 20;
    o.snapshots.keep_entries = 5;
    disk_cluster c(o, disk_factories(dir.path));
    REQUIRE(c.run_until([&] { return c.leader().has_value(); }, 5'000'000));
    for (int round = 0; round < 6 && c.ok(); ++round) {
        load(c, "r" + std::to_string(round) + "-", 25);
        const node_id victim = c.ids()[static_cast<std::size_t>(round) % c.ids().size()];
        c.crash(victim);
        load(c, "d" + std::to_string(round) + "-", 10);
        c.restart(victim);
        REQUIRE(settle(c));
    }
    check_states_match_commits(c);
    // Each node's files hold a snapshot and a compacted log that rebuild the same state.
    for (node_id id : c.ids()) {
        INFO("node " << id);
        CHECK(!c.at(id).snaps->list().empty());
        CHECK(c.at(id).store->first_index() > 1);
        c.crash(id);
        c.restart(id);
        REQUIRE(c.at(id).up);
    }
    REQUIRE(settle(c));
    check_states_match_commits(c);
    CHECK(c.failures().empty());
    CHECK_MESSAGE(c.ok(), c.violation());
}

TEST_CASE("Compaction: snapshots by entries, by bytes and by time, keeping a margin") {
    SUBCASE("the triggers") {
        snapshot_options so;
        using std::chrono::milliseconds;
        CHECK_FALSE(so.due(0, 1ull << 40, milliseconds(1ll << 40)));  // nothing new: never
        CHECK_FALSE(so.due(99'999, 1, milliseconds(1)));
        CHECK(so.due(100'000, 1, milliseconds(1)));
        CHECK(so.due(1, 256ull << 20, milliseconds(1)));
        CHECK(so.due(1, 1, milliseconds(3'600'000)));
        so.entries = 0;
        so.bytes = 0;
        so.interval = milliseconds(0);
        CHECK_FALSE(so.due(1'000'000, 1ull << 40, milliseconds(1ll << 40)));
    }
    auto run = [](cluster_options o) {
        o.seed = 71;
        cluster<> c(o);
        REQUIRE(c.run_until([&] { return c.leader().has_value(); }, 5'000'000));
        for (int k = 0; k < 30; ++k) c.propose(std::string(100, static_cast<char>('a' + k % 26)));
        REQUIRE(settle(c));
        c.run_for(3'000'000);  // idle: only the time trigger can fire now
        for (node_id id : c.ids()) {
            INFO("node " << id);
            REQUIRE_FALSE(c.at(id).snaps->list().empty());
            const index_t snap = c.at(id).snaps->list().front().index;
            CHECK(snap >= 20);
            // The log keeps `keep_entries` behind the snapshot.
            CHECK(c.at(id).store->first_index() == snap - o.snapshots.keep_entries + 1);
        }
        CHECK_MESSAGE(c.ok(), c.violation());
    };
    cluster_options o;
    o.snapshots.keep_entries = 7;
    SUBCASE("by entries") {
        o.snapshots.entries = 20;
        run(o);
    }
    SUBCASE("by bytes") {
        o.snapshots.bytes = 2'000;  // 20 commands of 100 bytes
        run(o);
    }
    SUBCASE("by time") {
        o.snapshots.interval = std::chrono::milliseconds(1'000);
        run(o);
    }
}

namespace {

/// A state machine that keeps its own durable data (in `disk`, which survives crashes) and
/// reports how far it got, as TAF libraft's onLoadData does.
struct durable_state_machine {
    struct disk {
        std::vector<std::string> values;
        index_t last = 0;
        std::vector<index_t> replayed;  ///< Indexes applied at or below `last` (must stay empty).
    };
    std::shared_ptr<disk> d;

    void apply(std::span<const entry> batch) {
        for (const auto& e : batch) {
            if (e.index <= d->last) d->replayed.push_back(e.index);
            d->values.emplace_back(e.data.str());
            d->last = e.index;
        }
    }
    [[nodiscard]] index_t last_applied() const { return d->last; }
    status save_snapshot(snapshot_writer& w) const {
        std::string all;
        for (const auto& v : d->values) all += v + "\n";
        return w.add_file("values", all);
    }
    status load_snapshot(snapshot_reader& r) {
        auto all = r.read_file("values");
        if (!all) return status::error("durable_state_machine: no values");
        d->values.clear();
        std::string_view rest(*all);
        while (!rest.empty()) {
            d->values.emplace_back(rest.substr(0, rest.find('\n')));
            rest.remove_prefix(rest.find('\n') + 1);
        }
        d->last = r.meta().index;
        return {};
    }
    [[nodiscard]] const std::vector<std::string>& values() const { return d->values; }
};

}  // namespace

TEST_CASE("Restart: a state machine with its own data replays only the entries after it") {
    std::map<node_id, std::shared_ptr<durable_state_machine::disk>> disks;
    cluster<durable_state_machine>::factories f;
    f.state_machine = [&](node_id id) {
        auto& d = disks[id];
        if (!d) d = std::make_shared<durable_state_machine::disk>();
        return std::make_unique<durable_state_machine>(durable_state_machine{d});
    };
    cluster_options o;
    o.seed = 61;
    o.snapshot_every = 15;
    o.snapshots.keep_entries = 5;
    cluster<durable_state_machine> c(o, f);
    REQUIRE(c.run_until([&] { return c.leader().has_value(); }, 5'000'000));
    for (int round = 0; round < 4; ++round) {
        load(c, "p" + std::to_string(round) + "-", 20);
        const node_id victim = c.ids()[static_cast<std::size_t>(round) % c.ids().size()];
        const index_t had = disks[victim]->last;
        c.crash(victim);
        c.restart(victim);
        // It starts from its own data: nothing to replay below what it had.
        CHECK(c.at(victim).applied == had);
        REQUIRE(settle(c));
    }
    for (const auto& [id, d] : disks) {
        INFO("node " << id);
        CHECK(d->replayed.empty());
        CHECK(d->values == disks.begin()->second->values);
    }
    CHECK(disks.begin()->second->values == committed_values(c));
    CHECK_MESSAGE(c.ok(), c.violation());
}

}  // TEST_SUITE
