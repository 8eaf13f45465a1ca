// Whole-cluster scenarios in deterministic simulation. The cluster checks the Raft
// invariants (one leader per term, log matching, leader completeness, one entry per applied
// index, committed entries durable on a quorum) after every event; each scenario adds its own
// outcome checks. Every scenario runs under several seeds.

#include <doctest/doctest.h>

#include <craft/testing/cluster.hpp>

#include <set>
#include <string>
#include <vector>

using namespace craft;
using namespace craft::testing;

namespace {

constexpr sim_time ms = 1'000;

cluster_options with(std::size_t nodes, std::uint64_t seed) {
    cluster_options o;
    o.nodes = nodes;
    o.seed = seed;
    return o;
}

/// One election timeout of the default options, in virtual time.
sim_time election_timeout(const cluster_options& o) {
    return o.tick * static_cast<sim_time>(o.election_tick);
}

std::optional<node_id> wait_leader(cluster<>& c, sim_time limit) {
    if (!c.run_until([&] { return c.leader().has_value(); }, limit)) return std::nullopt;
    return c.leader();
}

/// Nodes not in `cut`.
std::vector<node_id> others(const cluster<>& c, const std::vector<node_id>& cut) {
    std::vector<node_id> rest;
    for (node_id id : c.ids())
        if (std::find(cut.begin(), cut.end(), id) == cut.end()) rest.push_back(id);
    return rest;
}

/// The live leader among `side`, if it leads in the highest term seen there.
std::optional<node_id> leader_among(cluster<>& c, const std::vector<node_id>& side) {
    for (node_id id : side)
        if (c.at(id).up && c.at(id).raft->raft_state().role() == core::role::leader) return id;
    return std::nullopt;
}

/// Waits until every live node applied everything committed.
bool converge(cluster<>& c, sim_time limit) {
    return c.run_until(
        [&] {
            for (node_id id : c.ids())
                if (!c.at(id).up || c.at(id).applied != c.max_committed()) return false;
            return c.max_committed() > 0;
        },
        limit);
}

/// Proposes `value` until it is committed (a client retrying through leader changes).
bool commit_one(cluster<>& c, const std::string& value, sim_time limit) {
    const sim_time end = c.now() + limit;
    while (c.now() < end && c.ok()) {
        c.propose(value);
        if (c.run_until([&] { return c.committed(value); }, 500 * ms)) return true;
    }
    return false;
}

}  // namespace

TEST_SUITE("sim") {

TEST_CASE("Election: 3 nodes elect one leader and keep it while nothing fails") {
    for (std::uint64_t seed = 1; seed <= 20; ++seed) {
        CAPTURE(seed);
        cluster<> c(with(3, seed));
        const sim_time et = election_timeout(c.options());
        auto l = wait_leader(c, 10 * et);
        REQUIRE(l);
        const term_t t = c.at(*l).raft->raft_state().term();
        c.run_for(20 * et);
        REQUIRE(c.ok());
        CHECK(c.leader() == l);
        CHECK(c.leader_count() == 1);
        CHECK(c.at(*l).raft->raft_state().term() == t);
        for (node_id id : c.ids()) CHECK(c.at(id).raft->raft_state().term() == t);
    }
}

TEST_CASE("ReElection: a cut leader is replaced, rejoins as follower; no quorum, no leader") {
    for (std::uint64_t seed = 1; seed <= 20; ++seed) {
        CAPTURE(seed);
        cluster<> c(with(3, seed));
        const sim_time et = election_timeout(c.options());
        auto l1 = wait_leader(c, 10 * et);
        REQUIRE(l1);
        c.isolate(*l1);
        auto rest = others(c, {*l1});
        REQUIRE(c.run_until([&] { return leader_among(c, rest).has_value(); }, 10 * et));
        const node_id l2 = *leader_among(c, rest);
        CHECK(l2 != *l1);

        c.heal();  // the old leader rejoins and must follow
        c.run_for(5 * et);
        REQUIRE(c.ok());
        CHECK(c.leader_count() == 1);
        auto l3 = c.leader();
        REQUIRE(l3);

        // Cut two of three: nobody can win an election.
        const node_id a = *l3;
        const node_id b = others(c, {a}).front();
        c.isolate(a);
        c.isolate(b);
        c.run_for(3 * et);  // the isolated leader steps down (CheckQuorum)
        CHECK(c.leader_count() == 0);
        c.run_for(10 * et);
        CHECK(c.leader_count() == 0);
        REQUIRE(c.ok());

        c.heal();
        CHECK(wait_leader(c, 10 * et));
        CHECK(c.ok());
    }
}

TEST_CASE("ManyElections: 7 nodes, 10 rounds cutting 3 random nodes; a leader every round") {
    for (std::uint64_t seed = 1; seed <= 5; ++seed) {
        CAPTURE(seed);
        cluster<> c(with(7, seed));
        const sim_time et = election_timeout(c.options());
        REQUIRE(wait_leader(c, 10 * et));
        core::splitmix64 rng(seed);
        for (int round = 0; round < 10; ++round) {
            CAPTURE(round);
            std::vector<node_id> ids = c.ids();
            std::vector<node_id> cut;
            while (cut.size() < 3) {
                node_id n = ids[rng.below(ids.size())];
                if (std::find(cut.begin(), cut.end(), n) == cut.end()) cut.push_back(n);
            }
            for (node_id n : cut) c.isolate(n);
            auto live = others(c, cut);
            CHECK(c.run_until([&] { return leader_among(c, live).has_value(); }, 10 * et));
            c.heal();
            c.run_for(et);
            REQUIRE(c.ok());
        }
        CHECK(wait_leader(c, 10 * et));
    }
}

TEST_CASE("NoMinorityCommit: with 3 of 5 cut off, the leader commits nothing") {
    for (std::uint64_t seed = 1; seed <= 10; ++seed) {
        CAPTURE(seed);
        cluster<> c(with(5, seed));
        const sim_time et = election_timeout(c.options());
        auto l = wait_leader(c, 10 * et);
        REQUIRE(l);
        REQUIRE(commit_one(c, "before", 10 * et));
        const index_t committed = c.at(*l).raft->raft_state().log().committed();
        std::vector<node_id> cut = others(c, {*l});
        cut.resize(3);
        for (node_id n : cut) c.isolate(n);
        for (int i = 0; i < 10; ++i) c.propose_on(*l, "minority" + std::to_string(i));
        c.run_for(5 * et);
        CHECK(c.at(*l).raft->raft_state().log().committed() == committed);
        for (int i = 0; i < 10; ++i) CHECK_FALSE(c.committed("minority" + std::to_string(i)));
        c.heal();
        CHECK(commit_one(c, "after", 20 * et));
        CHECK(c.ok());
    }
}

TEST_CASE("Backup: divergent uncommitted entries on both sides of partitions converge") {
    for (std::uint64_t seed = 1; seed <= 10; ++seed) {
        CAPTURE(seed);
        cluster<> c(with(5, seed));
        const sim_time et = election_timeout(c.options());
        auto l1 = wait_leader(c, 10 * et);
        REQUIRE(l1);
        REQUIRE(commit_one(c, "base", 10 * et));
        // The leader and one follower in a minority get 50 entries that cannot commit.
        const node_id f1 = others(c, {*l1}).front();
        c.partition({*l1, f1});
        for (int i = 0; i < 50; ++i) c.propose_on(*l1, "lost-a" + std::to_string(i));
        c.run_for(et);
        // The majority elects its own leader and commits 50 entries.
        auto major = others(c, {*l1, f1});
        REQUIRE(c.run_until([&] { return leader_among(c, major).has_value(); }, 10 * et));
        const node_id l2 = *leader_among(c, major);
        for (int i = 0; i < 50; ++i) c.propose_on(l2, "kept-a" + std::to_string(i));
        REQUIRE(c.run_until([&] { return c.committed("kept-a49"); }, 10 * et));
        // Now the new leader and one follower are cut off with 50 more uncommitted entries...
        const node_id other = others(c, {*l1, f1, l2}).front();
        c.heal();
        c.partition({l2, other});
        for (int i = 0; i < 50; ++i) c.propose_on(l2, "lost-b" + std::to_string(i));
        // ...while the old minority plus the third node of the majority commits 50 entries.
        auto side = others(c, {l2, other});
        REQUIRE(c.run_until([&] { return leader_among(c, side).has_value(); }, 20 * et));
        const node_id l3 = *leader_among(c, side);
        for (int i = 0; i < 50; ++i) c.propose_on(l3, "kept-b" + std::to_string(i));
        REQUIRE(c.run_until([&] { return c.committed("kept-b49"); }, 10 * et));
        c.heal();
        REQUIRE(commit_one(c, "final", 20 * et));
        REQUIRE(converge(c, 20 * et));
        REQUIRE(c.ok());
        const auto& ref = c.at(c.ids().front()).sm->values();
        for (node_id id : c.ids()) {
            CHECK(c.at(id).sm->values() == ref);
            CHECK(c.at(id).store->last_index() == c.at(c.ids().front()).store->last_index());
        }
        for (int i = 0; i < 50; ++i) {
            CHECK_FALSE(c.committed("lost-a" + std::to_string(i)));
            CHECK(c.committed("kept-a" + std::to_string(i)));
            CHECK(c.committed("kept-b" + std::to_string(i)));
        }
    }
}

namespace {

/// Figure 8 of the Raft paper, as a randomized schedule: propose, wait a random time, crash
/// the leader, and restart a node whenever fewer than 3 of 5 are up.
void figure8(std::uint64_t seed, bool unreliable) {
    cluster_options o = with(5, seed);
    // One entry per append lets an old-term entry reach a majority ahead of the new
    // leader's no-op: exactly the situation of the paper's Figure 8.
    o.max_entries_per_message = seed % 2 == 1 ? 1 : 64;
    cluster<> c(o);
    if (unreliable) {
        network_faults f;
        f.drop = 0.10;
        f.long_delay = 0.10;
        f.long_delay_max = 2'000 * ms;
        c.network().set_faults(f);
    }
    core::splitmix64 rng(seed * 31 + 7);
    std::set<node_id> down;
    int value = 0;
    int leader_crashes = 0;
    for (int iter = 0; iter < 1000 && c.ok(); ++iter) {
        c.propose("f8-" + std::to_string(value++));
        // Mostly short waits (less than an election timeout), sometimes long ones.
        const sim_time wait = rng.below(10) == 0 ? rng.below(1'000) * ms : rng.below(13) * ms;
        c.run_for(wait + 1);
        if (auto l = c.leader(); l && (!unreliable || rng.below(2) == 0)) {
            c.crash(*l);
            down.insert(*l);
            ++leader_crashes;
        }
        if (c.ids().size() - down.size() < 3) {
            auto it = down.begin();
            std::advance(it, static_cast<std::ptrdiff_t>(rng.below(down.size())));
            c.restart(*it);
            down.erase(it);
        }
    }
    REQUIRE(c.ok());
    MESSAGE("seed " << seed << ": " << leader_crashes << " leaders crashed, " << c.max_committed()
                    << " entries committed");
    CHECK(leader_crashes >= 10);  // the schedule really exercised leader changes
    for (node_id n : down) c.restart(n);
    if (unreliable) c.network().set_faults({});
    CHECK(commit_one(c, "final", 30'000 * ms));
    CHECK(converge(c, 30'000 * ms));
    REQUIRE(c.ok());
    CHECK(c.verify_durability());
    const auto& ref = c.at(1).sm->values();
    for (node_id id : c.ids()) CHECK(c.at(id).sm->values() == ref);
}

}  // namespace

TEST_CASE("Figure8: 5 nodes, 1000 rounds of propose, wait, crash the leader; no divergence") {
    for (std::uint64_t seed = 1; seed <= 3; ++seed) {
        CAPTURE(seed);
        figure8(seed, false);
    }
}

TEST_CASE("Figure8Unreliable: as Figure8 with 10% drops and long reordering") {
    for (std::uint64_t seed = 1; seed <= 3; ++seed) {
        CAPTURE(seed);
        figure8(seed, true);
    }
}

TEST_CASE("Churn: random cuts, crashes and restarts while proposing; nothing committed is lost") {
    for (std::uint64_t seed = 1; seed <= 5; ++seed) {
        CAPTURE(seed);
        cluster_options o = with(5, seed);
        o.snapshot_every =
            seed % 2 == 0 ? 25 : 0;  // half the runs also compact and install snapshots
        cluster<> c(o);
        core::splitmix64 rng(seed * 101);
        std::set<node_id> down;
        int value = 0;
        for (int step = 0; step < 300 && c.ok(); ++step) {
            for (int k = 0; k < 3; ++k) c.propose("churn-" + std::to_string(value++));
            const node_id n = c.ids()[rng.below(c.ids().size())];
            switch (rng.below(6)) {
            case 0:
                if (down.size() < 2) {
                    c.crash(n);
                    down.insert(n);
                }
                break;
            case 1:
                c.restart(n);
                down.erase(n);
                break;
            case 2: c.isolate(n); break;
            case 3: c.heal(); break;
            default: break;
            }
            c.run_for(rng.below(200) * ms);
        }
        REQUIRE(c.ok());
        c.heal();
        for (node_id n : down) c.restart(n);
        CHECK(commit_one(c, "final", 30'000 * ms));
        REQUIRE(converge(c, 30'000 * ms));
        REQUIRE(c.ok());
        // Every value ever observed committed is in every final state, at its index.
        std::set<std::string> final_values(c.at(1).sm->values().begin(),
                                           c.at(1).sm->values().end());
        for (const auto& [index, e] : c.committed_entries())
            if (e.type == entry_type::normal && !e.data.empty())
                CHECK(final_values.contains(std::string(e.data.str())));
        for (node_id id : c.ids()) CHECK(c.at(id).sm->values() == c.at(1).sm->values());
    }
}

TEST_CASE("Unreachable: appends lost with a connection are resent at the next proposal") {
    for (std::uint64_t seed = 1; seed <= 10; ++seed) {
        CAPTURE(seed);
        auto o = with(3, seed);
        o.max_inflight_messages = 2;
        o.report_unreachable = true;
        cluster<> c(o);
        auto l = wait_leader(c, 10 * election_timeout(o));
        REQUIRE(l);
        REQUIRE(commit_one(c, "first", 1'000 * ms));
        const node_id f = *l % 3 + 1;
        REQUIRE(converge(c, 1'000 * ms));
        // Two appends in flight to f (its whole window), lost together as with a connection.
        c.propose("a");
        c.propose("b");
        std::size_t in_flight = 0;
        for (const auto& [id, pr] : c.at(*l).raft->status().followers)
            if (id == f) in_flight = pr.window.count();
        REQUIRE(in_flight == 2);
        c.isolate(f);
        c.run_for(2 * ms);  // their delivery fails, and the leader hears of it
        c.heal();
        c.propose("c");
        // f is sent what it lacks at once, not after a heartbeat's answer (100 ms).
        CHECK(c.run_until(
            [&] { return c.at(f).raft->status().last_index == c.at(*l).raft->status().last_index; },
            20 * ms));
        CHECK(c.ok());
    }
}

TEST_CASE("SnapshotCatchUp: a follower down for many snapshots catches up by snapshot") {
    for (std::uint64_t seed = 1; seed <= 5; ++seed) {
        CAPTURE(seed);
        cluster_options o = with(3, seed);
        o.snapshot_every = 10;
        cluster<> c(o);
        const sim_time et = election_timeout(o);
        auto l = wait_leader(c, 10 * et);
        REQUIRE(l);
        const node_id f = others(c, {*l}).front();
        c.crash(f);
        for (int i = 0; i < 300; ++i) {
            c.propose("s" + std::to_string(i));
            c.run_for(2 * ms);
        }
        REQUIRE(c.run_until([&] { return c.committed("s299"); }, 10 * et));
        CHECK(c.at(*l).store->first_index() > 100);  // the leader compacted its log
        c.restart(f);
        REQUIRE(converge(c, 20 * et));
        CHECK(c.at(f).sm->values() == c.at(*l).sm->values());
        CHECK(!c.at(f).snaps->list().empty());
        CHECK(c.ok());
    }
}

TEST_CASE("MessageBudget: elections, commands and idle heartbeats stay within budget") {
    cluster<> c(with(3, 4));
    const sim_time et = election_timeout(c.options());
    const auto at_start = c.network().sent();
    auto l = wait_leader(c, 10 * et);
    REQUIRE(l);
    // Let the no-op commit everywhere.
    REQUIRE(converge(c, 2 * et));
    const auto after_election = c.network().sent();
    CHECK(after_election - at_start <= 30);
    for (int i = 0; i < 10; ++i) {
        const std::string v = "cmd" + std::to_string(i);
        REQUIRE(c.propose(v).ok());
        REQUIRE(c.run_until([&] { return c.committed(v); }, et));
    }
    REQUIRE(converge(c, et));
    const auto after_commands = c.network().sent();
    CHECK(after_commands - after_election <= 42);
    c.run_for(10'000 * ms);
    const auto idle = c.network().sent() - after_commands;
    CHECK(idle <= 60 * 10);
    MESSAGE("election " << after_election - at_start << " messages, 10 commands "
                        << after_commands - after_election << ", idle " << idle / 10
                        << " per second");
    CHECK(c.ok());
}

}  // TEST_SUITE
