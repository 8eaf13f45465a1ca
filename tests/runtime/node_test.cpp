// basic_node over real loopback TCP, LevelDB and snapshot files: three nodes in one process.

#include <doctest/doctest.h>

#include <asio.hpp>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "../storage/temp_dir.hpp"
#include "support.hpp"

using namespace craft;
using namespace std::chrono_literals;
using test::counter;
using test::eventually;
using tnode = basic_node<counter, test::test_policies>;

namespace {

/// Three nodes on free loopback ports, each with its own data directory.
struct trio {
    test::temp_dir dir;
    std::map<node_id, tcp_endpoint> peers;
    counter sms[4];
    test::capture_logger logs[4];
    std::unique_ptr<tnode> nodes[4];

    explicit trio(const std::function<void(node_options&)>& tweak = {}) {
        for (node_id id = 1; id <= 3; ++id) peers[id] = {"127.0.0.1", test::free_port()};
        for (node_id id = 1; id <= 3; ++id) {
            auto o = test::loopback_options(id, peers, dir.path);
            if (tweak) tweak(o);
            nodes[id] = std::make_unique<tnode>(o, sms[id], logs[id]);
        }
    }
    void start_all() {
        for (node_id id = 1; id <= 3; ++id) REQUIRE_MESSAGE(nodes[id]->start().ok(), id);
    }
    /// The single leader all running nodes agree on, once there is one.
    std::optional<node_id> leader(std::chrono::milliseconds limit = 10s) {
        std::optional<node_id> found;
        eventually(
            [&] {
                found.reset();
                for (node_id id = 1; id <= 3; ++id)
                    if (nodes[id]->status().running && nodes[id]->is_leader()) found = id;
                return found.has_value();
            },
            limit);
        return found;
    }
    /// The leader and a follower that has heard from it (until then a follower knows no
    /// leader, and says so).
    std::pair<node_id, node_id> leader_and_follower() {
        auto l = leader();
        REQUIRE(l);
        const node_id f = *l == 1 ? 2 : 1;
        REQUIRE(eventually([&] { return nodes[f]->leader() == *l; }));
        return {*l, f};
    }
    /// A linearizable read, retried as a client would when leadership changes under it.
    long read_total(node_id id) {
        for (int attempt = 0; attempt < 50; ++attempt) {
            if (attempt) std::this_thread::sleep_for(100ms);
            auto f = nodes[id]->read([](const counter& c) { return c.total; });
            REQUIRE(f.wait_for(10s) == std::future_status::ready);
            auto r = f.get();
            if (r.ok()) return r.value;
        }
        FAIL("no read succeeded on node " << id);
        return -1;
    }
};

}  // namespace

TEST_SUITE("runtime") {

TEST_CASE("node: invalid options are refused at construction, naming the option") {
    counter sm;
    node_options o;
    o.id = 1;
    CHECK_THROWS_WITH_AS(tnode(o, sm), doctest::Contains("node_options.peers"),
                         std::invalid_argument);
    o.peers[1] = {"127.0.0.1", 1};
    o.election_timeout = 50ms;
    o.heartbeat_interval = 100ms;
    CHECK_THROWS_WITH_AS(tnode(o, sm), doctest::Contains("node_options.election_timeout"),
                         std::invalid_argument);
    o.election_timeout = 1000ms;
    o.max_entry_bytes = 63u << 20;  // with 1 MiB per message, over one 64 MiB frame
    CHECK_THROWS_WITH_AS(tnode(o, sm), doctest::Contains("node_options.max_entry_bytes"),
                         std::invalid_argument);
    o.max_entry_bytes = 62u << 20;
    CHECK_NOTHROW(tnode(o, sm));
    o.id = 0;
    CHECK_THROWS_WITH_AS(tnode(o, sm), doctest::Contains("node_options.id"), std::invalid_argument);
}

TEST_CASE("node: a command over max_entry_bytes is refused at once, on the leader and followers") {
    trio t([](node_options& o) { o.max_entry_bytes = 1u << 20; });
    t.start_all();
    auto [l, f] = t.leader_and_follower();
    for (node_id at : {l, f}) {
        auto r = t.nodes[at]->propose(shared_bytes(std::string((1u << 20) + 1, '1'))).get();
        REQUIRE_FALSE(r.ok());
        CHECK(r.not_applied);
        CHECK(r.error.message() ==
              "craft: a command of 1048577 bytes is larger than node_options.max_entry_bytes "
              "(1048576)");
    }
    // One at the limit goes through (the counter reads it as a number: a million 0s and a 1).
    std::string big((1u << 20) - 1, '0');
    big += '1';
    REQUIRE(t.nodes[f]->propose(shared_bytes(big)).get().ok());
    CHECK(t.read_total(l) == 1);
    CHECK(t.nodes[l]->metrics().proposals_refused >= 1);
}

TEST_CASE("node: three nodes over loopback elect a leader and replicate from many threads") {
    trio t;
    t.start_all();
    auto l = t.leader();
    REQUIRE(l);

    // 4 threads x 250 proposals, each waiting for its own result.
    std::atomic<int> ok{0};
    std::vector<std::thread> clients;
    for (int c = 0; c < 4; ++c)
        clients.emplace_back([&] {
            for (int k = 0; k < 250; ++k) {
                auto r = t.nodes[*l]->propose(shared_bytes("1")).get();
                if (r.ok() && r.value >= 1 && r.value <= 1000) ++ok;
            }
        });
    for (auto& c : clients) c.join();
    CHECK(ok == 1000);
    // Linearizable reads on every node see all of them.
    for (node_id id = 1; id <= 3; ++id) CHECK(t.read_total(id) == 1000);
    // An expected term that is not the current one is refused.
    const term_t term = t.nodes[*l]->term();
    auto stale = t.nodes[*l]->propose(shared_bytes("5"), term + 1).get();
    CHECK_FALSE(stale.ok());
    auto fresh = t.nodes[*l]->propose(shared_bytes("5"), term).get();
    CHECK(fresh.ok());
    CHECK(fresh.value == 1005);
}

#if defined(__linux__)
TEST_CASE("node: its threads are named for top -H and perf (craft-core, -log, -apply, -net)") {
    const auto count_named = [] {
        std::map<std::string, int> n;
        for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
            std::ifstream comm(task.path() / "comm");
            std::string name;
            if (std::getline(comm, name)) ++n[name];
        }
        return n;
    };
    const auto before = count_named();
    trio t;
    t.start_all();
    auto after = count_named();
    for (const char* name : {"craft-core", "craft-log", "craft-apply", "craft-net"}) {
        const auto had = before.count(name) ? before.at(name) : 0;
        CHECK_MESSAGE(after[name] - had == 3, name);  // one per node
    }
}
#endif

TEST_CASE("node: with forwarding off, a follower refuses proposals and names the leader") {
    trio t([](node_options& o) { o.forward_proposals = false; });
    t.start_all();
    const auto [l, f] = t.leader_and_follower();
    auto refused = t.nodes[f]->propose(shared_bytes("1")).get();
    CHECK_FALSE(refused.ok());
    CHECK(refused.leader == l);
    CHECK(refused.not_applied);
    CHECK(refused.leader_address == "127.0.0.1:" + std::to_string(t.peers[l].port));
    CHECK(t.nodes[f]->metrics().proposals_refused == 1);
    CHECK(t.nodes[f]->metrics().proposals_forwarded == 0);
}

TEST_CASE("node: stop() from the node's own callback throws and stops nothing") {
    trio t([](node_options& o) { o.forward_proposals = false; });
    t.start_all();
    const auto [l, f] = t.leader_and_follower();
    // Each callback tries to stop its own node and says what stop() did.
    auto stop_from = [&](node_id id, std::promise<std::string>& said) {
        return [&t, id, &said](const auto&) {
            try {
                t.nodes[id]->stop();
                said.set_value("stopped");
            } catch (const std::logic_error& e) {
                said.set_value(e.what());
            }
        };
    };
    std::promise<std::string> on_apply, on_refusal;
    t.nodes[l]->propose(shared_bytes("1"), stop_from(l, on_apply));    // the apply thread
    t.nodes[f]->propose(shared_bytes("1"), stop_from(f, on_refusal));  // the core's strand
    for (auto* said : {&on_apply, &on_refusal}) {
        auto fut = said->get_future();
        REQUIRE(fut.wait_for(10s) == std::future_status::ready);
        CHECK(fut.get().find("stop() called from one of the node's own callbacks") !=
              std::string::npos);
    }
    CHECK(t.nodes[l]->status().running);
    CHECK(t.nodes[f]->status().running);
    auto r = t.nodes[l]->propose(shared_bytes("2")).get();
    CHECK(r.ok());
}

TEST_CASE(
    "node: stop() from the node's logger inside start() or on the transport's thread throws") {
    // Declared before the nodes: the logger may run until they are gone.
    std::promise<std::string> in_start, on_io;
    std::atomic<bool> tried_start{false}, tried_io{false};
    trio t;
    // Only node 1 runs. Its logger tries to stop the node when start() logs "started" (the
    // thread inside start()) and when the transport's thread logs that it cannot reach the
    // others (a thread stop() joins).
    auto try_stop = [&](std::promise<std::string>& said) {
        try {
            t.nodes[1]->stop();
            said.set_value("stopped");
        } catch (const std::exception& e) {
            said.set_value(e.what());
        }
    };
    t.logs[1].out->hook = [&](std::string_view line) {
        if (line.find("started: term") != std::string_view::npos && !tried_start.exchange(true))
            try_stop(in_start);
        else if (line.find("cannot connect") != std::string_view::npos && !tried_io.exchange(true))
            try_stop(on_io);
    };
    REQUIRE(t.nodes[1]->start().ok());
    for (auto* said : {&in_start, &on_io}) {
        auto fut = said->get_future();
        REQUIRE(fut.wait_for(10s) == std::future_status::ready);
        const auto what = fut.get();
        CHECK_MESSAGE(
            what.find("stop() called from one of the node's own callbacks") != std::string::npos,
            what);
    }
    CHECK(t.nodes[1]->status().running);
    t.nodes[1]->stop();  // from this thread it stops
    CHECK_FALSE(t.nodes[1]->status().running);
}

TEST_CASE("node: stop() from a callback that stop() runs returns at once") {
    std::promise<std::string> said;  // (outlives the nodes, whose callback sets it)
    trio t;
    t.start_all();
    const auto [l, f] = t.leader_and_follower();
    for (node_id id = 1; id <= 3; ++id)
        if (id != l) t.nodes[id]->stop();  // no quorum: the next proposal waits
    t.nodes[l]->propose(shared_bytes("1"), [&t, l = l, &said](const auto& o) {
        try {
            t.nodes[l]->stop();
            said.set_value(o.ok() ? "applied" : "returned");
        } catch (const std::logic_error& e) {
            said.set_value(e.what());
        }
    });
    t.nodes[l]->stop();  // fails the proposal, whose callback calls stop() again
    auto fut = said.get_future();
    REQUIRE(fut.wait_for(10s) == std::future_status::ready);
    const auto what = fut.get();
    CHECK_MESSAGE((what == "returned" || what.find("own callbacks") != std::string::npos), what);
    CHECK_FALSE(t.nodes[l]->status().running);
}

TEST_CASE("node: an idle node takes its snapshot when the interval is up") {
    trio t([](node_options& o) {
        o.snapshots.entries = 0;  // time alone
        o.snapshots.bytes = 0;
        o.snapshots.interval = 300ms;
    });
    t.start_all();
    const auto [l, f] = t.leader_and_follower();
    index_t upto = 0;
    for (int k = 0; k < 5; ++k) {
        auto r = t.nodes[l]->propose(shared_bytes("1")).get();
        REQUIRE(r.ok());
        upto = r.index;
    }
    REQUIRE(upto >= 6);  // the leader's first entry, then ours
    // Nothing more is proposed: no apply job follows these, yet a snapshot covers them on
    // every node once the interval since the previous one (at start, or at the leader's
    // first entry) is up.
    for (node_id id = 1; id <= 3; ++id)
        CHECK_MESSAGE(eventually([&] { return t.nodes[id]->status().snapshot_index >= upto; }, 5s),
                      id);
    CHECK(t.nodes[f]->metrics().snapshots_taken >= 1);
}

TEST_CASE("node: a follower forwards proposals to the leader and returns each result") {
    trio t;
    t.start_all();
    auto l = t.leader();
    REQUIRE(l);
    const node_id f = *l == 1 ? 2 : 1;
    REQUIRE(eventually([&] { return t.nodes[f]->leader() == *l; }));

    // 4 threads x 100 proposals through the follower: every one answered with its own total.
    std::mutex m;
    std::set<long> totals;
    std::atomic<int> failed{0};
    std::vector<std::thread> clients;
    for (int c = 0; c < 4; ++c)
        clients.emplace_back([&] {
            for (int k = 0; k < 100; ++k) {
                auto r = t.nodes[f]->propose(shared_bytes("1")).get();
                if (!r.ok()) {
                    ++failed;
                    continue;
                }
                std::lock_guard g(m);
                totals.insert(r.value);
            }
        });
    for (auto& c : clients) c.join();
    CHECK(failed == 0);
    CHECK(totals.size() == 400);
    CHECK(*totals.begin() == 1);
    CHECK(*totals.rbegin() == 400);
    CHECK(t.nodes[f]->metrics().proposals_forwarded == 400);
    CHECK(t.nodes[*l]->metrics().proposals == 400);
    for (node_id id = 1; id <= 3; ++id) CHECK(t.read_total(id) == 400);

    // A command with an expected term asks for this node's own leadership: refused.
    auto own = t.nodes[f]->propose(shared_bytes("1"), t.nodes[f]->term()).get();
    CHECK_FALSE(own.ok());
    CHECK(own.leader == *l);
    CHECK(own.not_applied);

    // The leader goes away: a forwarded command fails within the read timeout (1 s here),
    // never hangs; once a new leader is elected, forwarding works again.
    t.nodes[*l]->stop();
    auto lost = t.nodes[f]->propose(shared_bytes("1"));
    REQUIRE(lost.wait_for(5s) == std::future_status::ready);
    const auto nl = t.leader();
    REQUIRE(nl);
    const node_id other = 6 - *l - *nl;  // the third node, a follower now
    REQUIRE(other != *l);
    REQUIRE(eventually([&] { return t.nodes[other]->leader() == *nl; }));
    auto again = t.nodes[other]->propose(shared_bytes("1")).get();
    REQUIRE_MESSAGE(again.ok(), again.error.message());
    CHECK(again.value >= 401);
}

TEST_CASE("node: leadership transfer to a caught-up voter") {
    trio t;
    t.start_all();
    auto l = t.leader();
    REQUIRE(l);
    const node_id target = *l == 3 ? 1 : *l + 1;
    const node_id third = 6 - *l - target;
    for (int k = 0; k < 20; ++k) REQUIRE(t.nodes[*l]->propose(shared_bytes("1")).get().ok());

    // Refused: on a follower, to a node outside the configuration.
    REQUIRE(eventually([&] { return t.nodes[third]->leader() == *l; }));
    auto on_follower = t.nodes[third]->transfer_leadership(target).get();
    CHECK_FALSE(on_follower.ok());
    CHECK(on_follower.message().find("not the leader") != std::string::npos);
    auto unknown = t.nodes[*l]->transfer_leadership(9).get();
    CHECK_FALSE(unknown.ok());
    CHECK(unknown.message().find("not a voter") != std::string::npos);

    const auto changes = t.nodes[target]->metrics().leader_changes;
    auto done = t.nodes[*l]->transfer_leadership(target);
    REQUIRE(done.wait_for(10s) == std::future_status::ready);
    const auto st = done.get();
    REQUIRE_MESSAGE(st.ok(), st.message());
    // The old leader heard from the new one; the new one publishes its role a moment later.
    CHECK(eventually([&] { return t.nodes[target]->is_leader(); }));
    CHECK(t.nodes[target]->metrics().leader_changes == changes + 1);
    // The new leader takes proposals; the old one forwards them to it.
    REQUIRE(eventually([&] { return t.nodes[*l]->leader() == target; }));
    auto r = t.nodes[*l]->propose(shared_bytes("1")).get();
    REQUIRE_MESSAGE(r.ok(), r.error.message());
    CHECK(r.value == 21);
    // Transferring to itself is a no-op that succeeds.
    CHECK(t.nodes[target]->transfer_leadership(target).get().ok());
}

TEST_CASE("node: snapshot_now saves the applied state and compacts; metrics count the work") {
    trio t([](node_options& o) { o.snapshots.keep_entries = 10; });
    // Before start, and before anything is applied, there is nothing to save.
    CHECK_FALSE(t.nodes[1]->snapshot_now().get().ok());
    t.start_all();
    auto l = t.leader();
    REQUIRE(l);
    const node_id f = *l == 1 ? 2 : 1;
    for (int k = 0; k < 50; ++k) REQUIRE(t.nodes[*l]->propose(shared_bytes("2")).get().ok());
    REQUIRE(eventually([&] { return t.nodes[f]->status().applied >= 51; }));
    auto st = t.nodes[f]->snapshot_now().get();
    REQUIRE_MESSAGE(st.ok(), st.message());
    const auto s = t.nodes[f]->status();
    CHECK(s.snapshot_index >= 51);
    CHECK(s.snapshot_term == s.raft.hard.term);
    // The log behind the snapshot (less keep_entries) is compacted.
    REQUIRE(eventually([&] { return t.nodes[f]->status().raft.first_index > 1; }));
    CHECK(t.nodes[f]->status().raft.first_index == s.snapshot_index - 10 + 1);
    // Asked again with nothing new: ok, nothing taken.
    CHECK(t.nodes[f]->snapshot_now().get().ok());
    const auto m = t.nodes[f]->metrics();
    CHECK(m.snapshots_taken == 1);
    CHECK(m.entries_applied >= 51);
    CHECK(m.entries_committed >= 51);
    CHECK(m.log_writes > 0);
    CHECK(m.log_write_latency.count == m.log_writes);
    CHECK(m.bytes_received > 0);
    CHECK(m.messages_sent > 0);
    CHECK(m.leader_changes >= 1);
    CHECK(t.nodes[*l]->metrics().proposals == 50);
    // Restarted, the node finds the snapshot and counts its earlier traffic on.
    t.nodes[f]->stop();
    REQUIRE(t.nodes[f]->start().ok());
    CHECK(t.nodes[f]->status().snapshot_index == s.snapshot_index);
    CHECK(t.nodes[f]->metrics().bytes_received >= m.bytes_received);
}

namespace {

/// Commands of its own type (Cereal), a result per entry, and every hook counted.
struct hooked {
    struct add {
        long n = 0;
        template <class Ar>
        void serialize(Ar& ar) {
            ar(n);
        }
    };
    long total = 0;
    std::atomic<int> leader_starts{0}, leader_stops{0}, follow_starts{0}, shutdowns{0};
    std::atomic<node_id> following{no_node};

    std::vector<long> apply(std::span<const entry> batch) {
        std::vector<long> out;
        for (const auto& e : batch) {
            auto c = decode<add>(e);
            total += c ? c->n : 0;
            out.push_back(total);
        }
        return out;
    }
    status save_snapshot(snapshot_writer& w) const {
        return w.add_file("t", std::to_string(total));
    }
    status load_snapshot(snapshot_reader& r) {
        total = std::stol(r.read_file("t").value_or("0"));
        return {};
    }
    void on_leader_start(term_t) { ++leader_starts; }
    void on_leader_stop() { ++leader_stops; }
    void on_start_following(node_id l) {
        ++follow_starts;
        following = l;
    }
    void on_stop_following(node_id) { following = no_node; }
    void on_shutdown() { ++shutdowns; }
};

/// Starts three nodes of state machine `SM` (`sms[1..3]`) on free loopback ports in `dir`;
/// returns the leader once there is one.
template <class SM>
node_id start_three(const test::temp_dir& dir, SM (&sms)[4],
                    std::unique_ptr<basic_node<SM, test::test_policies>> (&nodes)[4]) {
    std::map<node_id, tcp_endpoint> peers;
    for (node_id id = 1; id <= 3; ++id) peers[id] = {"127.0.0.1", test::free_port()};
    for (node_id id = 1; id <= 3; ++id) {
        nodes[id] = std::make_unique<basic_node<SM, test::test_policies>>(
            test::loopback_options(id, peers, dir.path), sms[id]);
        REQUIRE(nodes[id]->start().ok());
    }
    node_id l = no_node;
    REQUIRE(eventually([&] {
        for (node_id id = 1; id <= 3; ++id)
            if (nodes[id]->is_leader()) l = id;
        return l != no_node;
    }));
    return l;
}

}  // namespace

TEST_CASE("node: commands of the state machine's own type, results, callbacks and hooks") {
    test::temp_dir dir;
    hooked sms[4];
    std::unique_ptr<basic_node<hooked, test::test_policies>> nodes[4];
    const node_id l = start_three(dir, sms, nodes);
    auto r = nodes[l]->propose(hooked::add{5}).get();
    REQUIRE(r.ok());
    CHECK(r.value == 5);
    std::promise<long> via_callback;
    nodes[l]->propose(shared_bytes(std::string_view("\1\7\0\0\0\0\0\0\0", 9)),  // Cereal's add{7}
                      [&](auto o) { via_callback.set_value(o.ok() ? o.value : -1); });
    CHECK(via_callback.get_future().get() == 12);
    CHECK(eventually([&] { return sms[l].leader_starts == 1; }));
    for (node_id id = 1; id <= 3; ++id) {
        if (id == l) continue;
        CHECK(eventually([&] { return sms[id].following == l; }));
        CHECK(sms[id].follow_starts >= 1);
        CHECK(sms[id].leader_starts == 0);
    }
    for (node_id id = 1; id <= 3; ++id) nodes[id]->stop();
    for (node_id id = 1; id <= 3; ++id) CHECK(sms[id].shutdowns == 1);
}

TEST_CASE("node: snapshot_now right after a restart records the membership") {
    // A state machine that keeps its own data: restarted, it replays nothing, so no apply
    // job runs before the snapshot.
    struct kept : counter {
        [[nodiscard]] index_t last_applied() const { return last; }
    };
    test::temp_dir dir;
    kept sms[4];
    std::unique_ptr<basic_node<kept, test::test_policies>> nodes[4];
    const node_id l = start_three(dir, sms, nodes);
    for (int k = 0; k < 5; ++k) REQUIRE(nodes[l]->propose(shared_bytes("1")).get().ok());
    for (node_id id = 1; id <= 3; ++id) nodes[id]->stop();
    REQUIRE(nodes[l]->start().ok());  // alone: nothing commits, nothing is applied
    auto st = nodes[l]->snapshot_now().get();
    REQUIRE_MESSAGE(st.ok(), st.message());
    nodes[l]->stop();
    const auto metas = file_snapshot_store(dir.path / std::to_string(l) / "snapshots").list();
    REQUIRE_FALSE(metas.empty());
    CHECK(metas.front().index >= 6);
    CHECK(metas.front().conf.voters.size() == 3);
}

TEST_CASE("node: the first configuration is stored; a longer address book later adds no voter") {
    test::temp_dir dir;
    std::map<node_id, tcp_endpoint> peers{{1, {"127.0.0.1", test::free_port()}}};
    counter sm;
    {
        tnode n(test::loopback_options(1, peers, dir.path), sm);
        REQUIRE(n.start().ok());
        REQUIRE(eventually([&] { return n.is_leader(); }));
        REQUIRE(n.propose(shared_bytes("1")).get().ok());
        n.stop();
    }
    // Restarted with node 2 in its address book (as before adding it with change_membership):
    // still the only voter, so it leads alone again.
    peers[2] = {"127.0.0.1", test::free_port()};
    counter sm2;
    tnode n(test::loopback_options(1, peers, dir.path), sm2);
    REQUIRE(n.start().ok());
    CHECK(n.status().raft.conf.voters == std::vector<node_id>{1});
    CHECK(eventually([&] { return n.is_leader(); }));
    auto r = n.propose(shared_bytes("1")).get();
    CHECK_MESSAGE(r.ok(), r.error.message());
    CHECK(sm2.total == 2);
    // initial_voters naming a node without an address is refused, naming it.
    auto o = test::loopback_options(1, peers, dir.path);
    o.initial_voters = {1, 5};
    REQUIRE(o.validate());
    CHECK(o.validate()->find("node 5 has no address in peers") != std::string::npos);
}

TEST_CASE("node: a member added with its address is reached by members that never listed it") {
    trio t([](node_options& o) {
        o.snapshots.entries = 40;  // snapshots and compaction meanwhile: the address survives
        o.snapshots.keep_entries = 5;
    });
    t.start_all();
    const auto l = t.leader();
    REQUIRE(l);
    for (int k = 0; k < 10; ++k) REQUIRE(t.nodes[*l]->propose(shared_bytes("1")).get().ok());
    // One follower is down while node 4 joins: it learns of node 4 only from node 4.
    const node_id lag = *l == 1 ? 2 : 1;
    t.nodes[lag]->stop();
    // Node 4 knows everyone; nodes 1-3 have never heard of it.
    const tcp_endpoint at4{"127.0.0.1", test::free_port()};
    auto peers4 = t.peers;
    peers4[4] = at4;
    auto o4 = test::loopback_options(4, peers4, t.dir.path);
    o4.initial_voters = {1, 2, 3};
    counter sm4;
    test::capture_logger log4;
    tnode n4(o4, sm4, log4);
    REQUIRE(n4.start().ok());
    auto& leader = *t.nodes[*l];
    auto refused = leader.change_membership({1, 2, 3}, {4}).get();
    CHECK(refused.message().find("node 4 has no address") != std::string::npos);
    auto bad = leader.change_membership({1, 2, 3}, {4}, {{4, at4}, {5, at4}}).get();
    CHECK(bad.message().find("node 5, which is not a member") != std::string::npos);
    auto st = leader.change_membership({1, 2, 3}, {4}, {{4, at4}}).get();
    REQUIRE_MESSAGE(st.ok(), st.message());
    CHECK(eventually([&] { return n4.status().applied >= leader.status().applied; }));
    CHECK(sm4.total == 10);
    for (node_id id = 1; id <= 3; ++id) {  // (a follower applies it a little later)
        if (id == lag) continue;
        CHECK(eventually([&] {
            return t.nodes[id]->status().raft.conf.addresses ==
                   std::map<node_id, std::string>{{4, at4.to_string()}};
        }));
        CHECK(eventually(
            [&] { return !t.logs[id].matching("node 4 is at " + at4.to_string()).empty(); }));
    }
    // A voter, then the leader: nodes 1-3 take its appends and answer it by that address.
    st = leader.change_membership({1, 2, 3, 4}).get();
    REQUIRE_MESSAGE(st.ok(), st.message());
    REQUIRE(eventually([&] { return n4.status().raft.conf.is_voter(4); }));  // it may campaign
    // Node 4 was never refused: its handshake gives its address.
    CHECK(log4.matching("closed by the peer").empty());
    // (A transfer may time out on a loaded machine, as an election may: retried, as an
    // operator would.)
    for (int attempt = 0; attempt < 3; ++attempt)
        if ((st = leader.transfer_leadership(4).get()).ok()) break;
    REQUIRE_MESSAGE(st.ok(), st.message());
    for (int k = 0; k < 50; ++k) REQUIRE(n4.propose(shared_bytes("1")).get().ok());
    // The follower that missed it all comes back with its old peers: node 4, leading, is
    // answered at the address its handshake gives, and brings it up to date.
    REQUIRE(t.nodes[lag]->start().ok());
    CHECK(eventually([&] { return t.nodes[lag]->status().applied >= n4.status().applied; }));
    CHECK(t.sms[lag].total == 60);
    CHECK(t.nodes[lag]->status().raft.conf.addresses.count(4) == 1);
    CHECK(t.logs[lag].matching("not in the address book) connected").size() >= 1);
    // A member restarted with its old peers (no node 4) finds the address in what it stored.
    const node_id f = *l;
    t.nodes[f]->stop();
    for (int k = 0; k < 50; ++k) REQUIRE(n4.propose(shared_bytes("1")).get().ok());
    REQUIRE(t.nodes[f]->start().ok());
    CHECK(t.nodes[f]->status().raft.conf.addresses.count(4) == 1);
    CHECK(eventually([&] { return t.nodes[f]->status().applied >= n4.status().applied; }));
    CHECK(t.sms[f].total == 110);
    n4.stop();
}

TEST_CASE(
    "node: membership edits are made to the configuration in force: two at once never undo "
    "each other; a repeat is done at once") {
    trio t;
    t.start_all();
    auto [l, f] = t.leader_and_follower();
    auto& leader = *t.nodes[l];
    // Nodes 4 and 5 know the others; nodes 1-3 only learn their addresses from the edits.
    counter sm[2];
    std::unique_ptr<tnode> extra[2];
    tcp_endpoint at[2];
    auto peers = t.peers;
    for (int k = 0; k < 2; ++k) peers[4 + k] = at[k] = {"127.0.0.1", test::free_port()};
    for (int k = 0; k < 2; ++k) {
        auto o = test::loopback_options(4 + k, peers, t.dir.path);
        o.initial_voters = {1, 2, 3};
        extra[k] = std::make_unique<tnode>(o, sm[k]);
        REQUIRE(extra[k]->start().ok());
    }
    auto why = [](std::future<craft::status> fut) {
        auto st = fut.get();
        REQUIRE_FALSE(st.ok());
        return st.message();
    };
    CHECK(why(t.nodes[f]->add_learner(4, at[0])).find("is not the leader") != std::string::npos);
    CHECK(why(leader.add_learner(4)).find("node 4 has no address") != std::string::npos);
    CHECK(why(leader.add_learner(f)).find("node " + std::to_string(f) + " is a voter") !=
          std::string::npos);
    CHECK(why(leader.add_learner(0)).find("node id 0") != std::string::npos);
    // Member lists in any order; the voters' own addresses recorded too.
    std::map<node_id, std::string> recorded;
    for (node_id id = 1; id <= 3; ++id) recorded[id] = t.peers[id].to_string();
    auto st = leader.change_membership({3, 2, 1}, {}, t.peers).get();
    REQUIRE_MESSAGE(st.ok(), st.message());
    CHECK(leader.status().raft.conf.addresses == recorded);

    // Two operators at once, each adding its node: one may be told to retry, and neither
    // change is lost (a whole configuration computed from the same status() would be).
    auto add = [&](node_id id, const tcp_endpoint& a) {
        for (int attempt = 0; attempt < 200; ++attempt) {
            auto st = leader.add_learner(id, a).get();
            if (st.ok()) return true;
            if (st.message().find("another change is in progress") == std::string::npos) {
                FAIL_CHECK(st.message());
                return false;
            }
            std::this_thread::sleep_for(5ms);
        }
        return false;
    };
    auto second = std::async(std::launch::async, [&] { return add(5, at[1]); });
    CHECK(add(4, at[0]));
    CHECK(second.get());
    // status() shows the change as soon as the future says done.
    auto conf = leader.status().raft.conf;
    CHECK(conf.learners == std::vector<node_id>{4, 5});
    recorded[4] = at[0].to_string();
    recorded[5] = at[1].to_string();
    CHECK(conf.addresses == recorded);
    // Repeats change nothing: no new configuration entry.
    REQUIRE(leader.add_learner(4, at[0]).get().ok());
    REQUIRE(leader.add_learner(5).get().ok());
    CHECK(leader.status().raft.conf.index == conf.index);

    REQUIRE(leader.add_voter(4).get().ok());  // a learner promoted
    conf = leader.status().raft.conf;
    CHECK(conf.voters == std::vector<node_id>{1, 2, 3, 4});
    CHECK(conf.learners == std::vector<node_id>{5});
    REQUIRE(leader.add_voter(4).get().ok());
    CHECK(leader.status().raft.conf.index == conf.index);
    st = leader.remove_member(5).get();
    REQUIRE_MESSAGE(st.ok(), st.message());
    conf = leader.status().raft.conf;
    CHECK(conf.learners.empty());
    recorded.erase(5);
    CHECK(conf.addresses == recorded);
    REQUIRE(leader.remove_member(5).get().ok());  // not a member any more: done
    // Its address went with it, from every book: re-adding it needs the address again.
    CHECK(leader.address_book().count(5) == 0);
    CHECK(why(leader.add_learner(5)).find("node 5 has no address") != std::string::npos);
    CHECK(leader.status().raft.conf.index == conf.index);
    REQUIRE(eventually([&] { return extra[0]->status().raft.conf.is_voter(4); }));
    for (int k = 0; k < 10; ++k) REQUIRE(leader.propose(shared_bytes("1")).get().ok());
    CHECK(eventually([&] {  // (read on its apply thread)
        auto r = extra[0]->read([](const counter& c) { return c.total; }).get();
        return r.ok() && r.value == 10;
    }));

    // The leader takes itself out and steps down; the others go on.
    REQUIRE(leader.remove_member(l).get().ok());
    std::vector<node_id> rest{1, 2, 3, 4};
    std::erase(rest, l);
    CHECK(leader.status().raft.conf.voters == rest);
    REQUIRE(eventually([&] { return extra[0]->leader() != no_node && extra[0]->leader() != l; }));
    for (auto& n : extra) n->stop();
}

TEST_CASE("node: a stopped leader is replaced, and restarts from disk to catch up") {
    trio t([](node_options& o) {
        o.snapshots.entries = 50;  // snapshots and compaction happen on the way
        o.snapshots.keep_entries = 10;
    });
    t.start_all();
    auto l = t.leader();
    REQUIRE(l);
    for (int k = 0; k < 100; ++k) REQUIRE(t.nodes[*l]->propose(shared_bytes("1")).get().ok());
    const auto stopped_at = std::chrono::steady_clock::now();
    t.nodes[*l]->stop();
    std::optional<node_id> next;
    REQUIRE(eventually([&] {
        for (node_id id = 1; id <= 3; ++id)
            if (id != *l && t.nodes[id]->is_leader()) next = id;
        return next.has_value();
    }));
    CHECK(std::chrono::steady_clock::now() - stopped_at < 2s);
    for (int k = 0; k < 100; ++k) REQUIRE(t.nodes[*next]->propose(shared_bytes("2")).get().ok());
    REQUIRE(t.nodes[*l]->start().ok());  // the same object, from its data directory
    CHECK(eventually(
        [&] { return t.nodes[*l]->status().applied >= t.nodes[*next]->status().applied; }));
    for (node_id id = 1; id <= 3; ++id) CHECK(t.read_total(id) == 300);
    CHECK(t.sms[1].total == t.sms[2].total);
    CHECK(t.sms[2].total == t.sms[3].total);
}

TEST_CASE("node: a connection lost to a follower reaches the leader's core as unreachable") {
    trio t;
    t.start_all();
    auto l = t.leader();
    REQUIRE(l);
    const node_id f = *l % 3 + 1;
    for (int k = 0; k < 20; ++k) REQUIRE(t.nodes[*l]->propose(shared_bytes("1")).get().ok());
    REQUIRE(eventually([&] { return t.nodes[f]->status().applied >= 20; }));
    CHECK(t.nodes[*l]->metrics().unreachable_reports == 0);
    t.nodes[f]->stop();  // its end of the leader's connection closes
    // The leader's next heartbeat or append to it fails and is reported.
    CHECK(eventually([&] {
        t.nodes[*l]->propose(shared_bytes("1")).get();
        return t.nodes[*l]->metrics().unreachable_reports >= 1;
    }));
    REQUIRE(t.nodes[f]->start().ok());
    for (int k = 0; k < 20; ++k) REQUIRE(t.nodes[*l]->propose(shared_bytes("1")).get().ok());
    CHECK(
        eventually([&] { return t.nodes[f]->status().applied >= t.nodes[*l]->status().applied; }));
    CHECK(t.read_total(f) == t.read_total(*l));
}

TEST_CASE("node: stopped and started again without snapshots, nothing is applied twice") {
    trio t;
    t.start_all();
    auto l = t.leader();
    REQUIRE(l);
    for (int k = 0; k < 10; ++k) REQUIRE(t.nodes[*l]->propose(shared_bytes("1")).get().ok());
    for (node_id id = 1; id <= 3; ++id) {
        REQUIRE(t.read_total(id) == 10);
        t.nodes[id]->stop();
        REQUIRE(t.nodes[id]->start().ok());
    }
    REQUIRE(t.leader());
    for (node_id id = 1; id <= 3; ++id) CHECK(t.read_total(id) == 10);
}

TEST_CASE(
    "node: a committed configuration entry it cannot decode stops the node, naming the entry; "
    "the data stays") {
    std::map<node_id, tcp_endpoint> peers{{1, {"127.0.0.1", test::free_port()}}};
    test::temp_dir dir;
    counter sm;
    test::capture_logger logs;
    const auto o = test::loopback_options(1, peers, dir.path);
    tnode n(o, sm, logs);
    REQUIRE(n.start().ok());
    REQUIRE(eventually([&] { return n.is_leader(); }));
    for (int k = 0; k < 5; ++k) REQUIRE(n.propose(shared_bytes("1")).get().ok());
    n.stop();
    // What a newer build might leave in the data directory: a committed configuration entry
    // in an encoding this build does not know, and an entry after it.
    index_t bad = 0;
    term_t term = 0;
    {
        leveldb_log_store::options lo;
        lo.dir = o.data_dir / "log";
        lo.cluster_id = o.cluster_id;
        lo.id = o.id;
        auto s = leveldb_log_store::open(lo);
        REQUIRE_MESSAGE(s.store, s.error.message());
        auto hs = s.store->initial_state().hard;
        term = hs.term;
        bad = s.store->last_index() + 1;
        const std::vector<entry> ents{
            {hs.term, bad, entry_type::configuration, shared_bytes(std::string("\x05\x01"))},
            {hs.term, bad + 1, entry_type::normal, shared_bytes("1")}};
        hs.commit = bad + 1;
        log_write w;
        w.entries = ents;
        w.hard = &hs;
        REQUIRE(s.store->write(w).ok());
    }
    const std::string why = "committed configuration entry " + std::to_string(bad) + " (term " +
                            std::to_string(term) +
                            "): configuration encoding version 5, this build reads 1 and 2";
    for (int run = 0; run < 2; ++run) {  // the same again: nothing was skipped or lost
        REQUIRE(n.start().ok());
        REQUIRE(eventually([&] { return !n.status().running; }));
        CHECK(n.status().failure.message() == "craft: cannot go on: " + why);
        CHECK(logs.matching(why).size() == static_cast<std::size_t>(run + 1));
        CHECK(sm.total == 5);  // nothing past the entry was applied
        CHECK(n.status().raft.last_index == bad + 1);
        n.stop();
    }
}

TEST_CASE("node: garbage on a node's port is refused, one line per connection; it keeps serving") {
    trio t;
    t.start_all();
    auto l = t.leader();
    REQUIRE(l);
    const node_id victim = *l == 3 ? 2 : 3;
    asio::io_context io;
    auto send_raw = [&](const std::string& bytes) {
        asio::ip::tcp::socket s(io);
        s.connect({asio::ip::make_address("127.0.0.1"), t.peers[victim].port});
        asio::write(s, asio::buffer(bytes));
        std::this_thread::sleep_for(50ms);
    };
    const auto hello = asio_tcp_transport::frame(asio_tcp_transport::handshake(7, 1, victim));
    message unknown{.type = message_type::heartbeat, .from = 1, .to = victim, .term = 1};
    std::string bad_type = cereal_codec::encode(unknown);
    bad_type[1] = static_cast<char>(0x7f);  // the type, after the archive's endianness byte
    send_raw(std::string("\x05\0\0\0", 4) + "junk bytes");  // garbage
    send_raw(hello.substr(0, 10));                          // truncated
    send_raw(std::string("\xff\xff\xff\xff\0\0\0\0", 8));   // 4 GiB length
    send_raw(hello + asio_tcp_transport::frame(bad_type));  // unknown type
    send_raw(asio_tcp_transport::frame(asio_tcp_transport::handshake(8, 1, victim)));  // cluster
    for (int k = 0; k < 20; ++k) REQUIRE(t.nodes[*l]->propose(shared_bytes("1")).get().ok());
    CHECK(t.read_total(victim) == 20);
    CHECK(eventually([&] { return t.logs[victim].matching("closed connection").size() >= 5; }));
    const auto lines = t.logs[victim].matching("closed connection");
    CHECK(lines.size() == 5);
    CHECK(t.logs[victim].matching("exceeds the").size() == 1);
    CHECK(t.logs[victim].matching("unknown message type").size() == 1);
    CHECK(t.logs[victim].matching("cluster id 8").size() == 1);
}

}  // TEST_SUITE

#include <craft/testing/memory_log_store.hpp>
#include <craft/testing/memory_snapshot_store.hpp>

namespace {
/// The README's example of swapping policies: memory stores under the real runtime and TCP.
struct memory_policies : default_policies {
    using log_store = craft::testing::memory_log_store;
    using snapshot_store = craft::testing::memory_snapshot_store;
    using logger = null_logger;
};
}  // namespace

TEST_SUITE("runtime") {
TEST_CASE("node: policies swapped at compile time: memory stores under the TCP runtime") {
    using mnode = basic_node<counter, memory_policies>;
    const auto peers = test::loopback_peers(3);
    test::temp_dir dir;
    counter sms[4];
    std::unique_ptr<mnode> nodes[4];
    for (node_id id = 1; id <= 3; ++id) {
        auto o = test::loopback_options(id, peers, dir.path);
        o.snapshots.entries = 20;  // snapshots into the memory store, compaction of the memory log
        o.snapshots.keep_entries = 5;
        nodes[id] = std::make_unique<mnode>(o, sms[id]);
        REQUIRE(nodes[id]->start().ok());
    }
    // Every node takes proposals (followers forward them).
    int retries = 0;
    for (int k = 0; k < 60; ++k) {
        auto r = nodes[k % 3 + 1]->propose(shared_bytes("1")).get();
        if (!r.ok()) {  // no leader yet: retry as a client would (for at most 20 s)
            REQUIRE_MESSAGE(r.not_applied, r.error.message());
            REQUIRE(++retries < 400);
            std::this_thread::sleep_for(50ms);
            --k;
        }
    }
    for (node_id id = 1; id <= 3; ++id) {
        auto r = nodes[id]->read([](const counter& c) { return c.total; }).get();
        REQUIRE_MESSAGE(r.ok(), r.error.message());
        CHECK(r.value == 60);
        CHECK(eventually([&] { return nodes[id]->status().snapshot_index >= 20; }));
    }
    // The memory stores outlive stop(): a restarted node recovers from them.
    nodes[1]->stop();
    REQUIRE(nodes[1]->start().ok());
    CHECK(nodes[1]->status().applied >= 60);
}

namespace {
/// A memory log (written inline, on the core thread) whose writes fail once told to.
std::atomic<bool> fail_log_writes{false};
struct failing_memory_log : craft::testing::memory_log_store {
    status write(const log_write& w) {
        if (fail_log_writes) return status::error("failing_memory_log: the disk is gone");
        return memory_log_store::write(w);
    }
};
struct failing_policies : memory_policies {
    using log_store = failing_memory_log;
};
}  // namespace

TEST_CASE("node: a failed inline log write stops the node and fails what waits, naming why") {
    fail_log_writes = false;
    using fnode = basic_node<counter, failing_policies>;
    std::map<node_id, tcp_endpoint> peers{{1, {"127.0.0.1", test::free_port()}}};
    test::temp_dir dir;
    counter sm;
    fnode n(test::loopback_options(1, peers, dir.path), sm);
    REQUIRE(n.start().ok());
    REQUIRE(eventually([&] { return n.is_leader(); }));
    for (int k = 0; k < 20; ++k) REQUIRE(n.propose(shared_bytes("1")).get().ok());
    CHECK(sm.total == 20);
    fail_log_writes = true;
    auto r = n.propose(shared_bytes("1")).get();
    REQUIRE_FALSE(r.ok());
    CHECK(r.error.message().find("the disk is gone") != std::string::npos);
    CHECK(eventually([&] { return !n.status().running; }));
    CHECK(n.status().failure.message().find("the disk is gone") != std::string::npos);
    CHECK_FALSE(n.is_leader());
    CHECK(sm.total == 20);  // nothing unwritten was applied
    // The disk is back: started again, the node serves from what it stored.
    fail_log_writes = false;
    n.stop();
    REQUIRE(n.start().ok());
    REQUIRE(eventually([&] { return n.is_leader(); }));
    REQUIRE(n.propose(shared_bytes("1")).get().ok());
    CHECK(sm.total == 21);
    CHECK(n.status().running);
}
}

namespace {
/// A memory log that checks etcd-io/etcd#7625's "Append" invariant at every write: a
/// configuration entry is stored only with, or after, a commit index covering the
/// configuration entry before it (this write's own hard state counts: writes are atomic).
std::atomic<int> conf_entries_stored{0}, append_invariant_broken{0};
struct append_checked_log : craft::testing::memory_log_store {
    /// Written on the log thread, as LevelDB is: a change is done only once written too.
    static constexpr bool inline_writes = false;
    status write(const log_write& w) {
        if (!w.entries.empty()) {
            index_t commit = initial_state().hard.commit;
            if (w.hard) commit = std::max(commit, w.hard->commit);
            const index_t first = w.entries.front().index;
            index_t before = 0;  // the newest configuration entry kept ahead of this write
            for (const auto& e : stored())
                if (e.index < first && e.type == entry_type::configuration) before = e.index;
            for (const auto& e : w.entries) {
                if (e.type != entry_type::configuration) continue;
                ++conf_entries_stored;
                if (before > commit) ++append_invariant_broken;
                before = e.index;
            }
        }
        return memory_log_store::write(w);
    }
};
struct membership_policies : memory_policies {
    using log_store = append_checked_log;
};
}  // namespace

TEST_SUITE("runtime") {
TEST_CASE(
    "node: membership changes under load: a learner added, promoted, a joint change "
    "that removes the leader") {
    conf_entries_stored = 0;
    append_invariant_broken = 0;
    using mnode = basic_node<counter, membership_policies>;
    const auto peers = test::loopback_peers(4);  // the address book holds node 4 from the start
    test::temp_dir dir;
    counter sms[5];
    std::unique_ptr<mnode> nodes[5];
    for (node_id id = 1; id <= 4; ++id) {
        auto o = test::loopback_options(id, peers, dir.path);
        o.initial_voters = {1, 2, 3};  // node 4 waits to be added
        nodes[id] = std::make_unique<mnode>(o, sms[id]);
        REQUIRE(nodes[id]->start().ok());
    }
    auto leader = [&](std::initializer_list<node_id> among) {
        std::optional<node_id> found;
        eventually([&] {
            for (node_id id : among)
                if (nodes[id]->status().running && nodes[id]->is_leader()) found = id;
            return found.has_value();
        });
        return found;
    };
    auto voters_of = [&](node_id id) { return nodes[id]->status().raft.conf.voters; };
    auto l = leader({1, 2, 3});
    REQUIRE(l);
    // Proposals flow from another thread throughout, so commits move while the changes land.
    std::atomic<bool> stop_load{false};
    std::atomic<long> accepted{0};
    std::atomic<node_id> target{*l};
    std::thread load([&] {
        while (!stop_load) {
            auto r = nodes[target.load()]->propose(shared_bytes("1")).get();
            if (r.ok())
                ++accepted;
            else
                std::this_thread::sleep_for(5ms);  // leadership moving: retry as a client
        }
    });
    struct joiner {  // a failed REQUIRE still stops and joins the load
        std::atomic<bool>& stop;
        std::thread& t;
        ~joiner() {
            stop = true;
            if (t.joinable()) t.join();
        }
    } join_load{stop_load, load};
    REQUIRE(eventually([&] { return accepted > 50; }));

    // Refused, each with its reason.
    const node_id f = *l == 1 ? 2 : 1;
    auto refused = [&](node_id at, std::vector<node_id> v, std::vector<node_id> lr = {}) {
        auto st = nodes[at]->change_membership(std::move(v), std::move(lr)).get();
        REQUIRE_FALSE(st.ok());
        return st.message();
    };
    CHECK(refused(f, {1, 2, 3, 4}).find("is not the leader (node " + std::to_string(*l) + " is)") !=
          std::string::npos);
    CHECK(refused(*l, {1, 2, 9}).find("node 9 has no address") != std::string::npos);
    CHECK(refused(*l, {}).find("no voters") != std::string::npos);
    CHECK(refused(*l, {1, 2, 3}, {3}).find("as a voter and as a learner") != std::string::npos);
    CHECK_FALSE(nodes[4]->is_leader());
    CHECK(voters_of(4) == std::vector<node_id>{1, 2, 3});  // its bootstrap, never used to lead

    // Node 4 joins as a learner, then becomes a voter; each change is taken as soon as the
    // one before it reported done (as a script runs them).
    auto st = nodes[*l]->change_membership({1, 2, 3}, {4}).get();
    REQUIRE_MESSAGE(st.ok(), st.message());
    st = nodes[*l]->change_membership({1, 2, 3, 4}).get();
    REQUIRE_MESSAGE(st.ok(), st.message());
    CHECK(eventually([&] { return nodes[4]->status().applied > 50; }));  // caught up
    CHECK(eventually([&] { return voters_of(4) == std::vector<node_id>{1, 2, 3, 4}; }));

    // Two voters out at once, the leader among them: a joint configuration, left on its own;
    // the leader steps down once the change is in force.
    const node_id other = *l == 3 ? 2 : 3;
    std::vector<node_id> rest;
    for (node_id id = 1; id <= 4; ++id)
        if (id != *l && id != other) rest.push_back(id);
    st = nodes[*l]->change_membership(rest).get();
    REQUIRE_MESSAGE(st.ok(), st.message());
    CHECK(eventually([&] { return voters_of(*l) == rest; }));
    auto l2 = leader({rest[0], rest[1]});
    REQUIRE(l2);
    target = *l2;
    const long before = accepted;
    REQUIRE(eventually([&] { return accepted > before + 50; }));
    stop_load = true;
    load.join();

    // Every member applied the same.
    const auto total = [&](node_id id) {  // retried while the node looks for its leader
        for (int attempt = 0;; ++attempt) {
            auto r = nodes[id]->read([](const counter& c) { return c.total; }).get();
            if (r.ok() || attempt == 100) {
                REQUIRE_MESSAGE(r.ok(), r.error.message());
                return r.value;
            }
            std::this_thread::sleep_for(50ms);
        }
    };
    const long t = total(*l2);
    CHECK(t >= accepted.load());
    for (node_id id : rest) CHECK(total(id) == t);
    // A member restarted keeps the configuration from its log, not the bootstrap one.
    const node_id kept = rest[0] == *l2 ? rest[1] : rest[0];
    nodes[kept]->stop();
    REQUIRE(nodes[kept]->start().ok());
    CHECK(voters_of(kept) == rest);
    CHECK(total(kept) == t);

    CHECK(conf_entries_stored > 0);
    CHECK(append_invariant_broken == 0);
    for (node_id id = 1; id <= 4; ++id) nodes[id]->stop();
}
}
