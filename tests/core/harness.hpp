// A message-by-message harness for scripted core tests: nodes persist each ready batch at
// once and the test decides which messages are delivered.
#pragma once

#include <doctest/doctest.h>

#include <craft/core/raw_node.hpp>
#include <craft/testing/memory_log_store.hpp>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace craft::test {

using core::role;
using store_t = testing::memory_log_store;
using node_t = core::raw_node<store_t>;

/// Options for scripted tests: election timeout 10 ticks, heartbeat 1, fixed seed.
inline core::options opts(node_id id, std::vector<node_id> voters, bool pre_vote = false,
                          bool check_quorum = false) {
    core::options o;
    o.id = id;
    o.voters = std::move(voters);
    o.election_tick = 10;
    o.heartbeat_tick = 1;
    o.pre_vote = pre_vote;
    o.check_quorum = check_quorum;
    o.seed = 42;
    return o;
}

/// One node with its own store; `flush` persists and hands back everything it sends.
struct peer {
    std::unique_ptr<store_t> store = std::make_unique<store_t>();
    std::unique_ptr<node_t> node;
    std::vector<entry> applied;

    explicit peer(const core::options& o) { node = std::make_unique<node_t>(o, *store); }
    /// Seeds the store with entries of the given terms (indexes 1..n) before start.
    peer(const core::options& o, const std::vector<term_t>& terms, term_t current_term = 0) {
        std::vector<entry> ents;
        for (std::size_t i = 0; i < terms.size(); ++i)
            ents.push_back(
                {terms[i], i + 1, entry_type::normal, shared_bytes("e" + std::to_string(i + 1))});
        hard_state hs{current_term ? current_term : (terms.empty() ? 0 : terms.back()), no_node, 0};
        log_write w;
        w.entries = ents;
        w.hard = &hs;
        REQUIRE(store->write(w).ok());
        node = std::make_unique<node_t>(o, *store);
    }

    /// Writes what `rd` persists (snapshot, entries, hard state, membership) and advances.
    void persist(const core::ready& rd) {
        log_write w;
        if (rd.snap) w.snap = &*rd.snap;
        w.entries = rd.entries;
        if (rd.hard) w.hard = &*rd.hard;
        if (rd.conf) w.conf = &*rd.conf;
        REQUIRE(store->write(w).ok());
        node->advance();
    }
    /// Handles every pending ready batch; returns the messages in send order.
    std::vector<message> flush() {
        std::vector<message> out;
        while (node->has_ready()) {
            auto rd = node->get_ready();
            for (auto& m : rd.messages) out.push_back(std::move(m));
            persist(rd);
            for (auto& m : rd.messages_after_persist) out.push_back(std::move(m));
            applied.insert(applied.end(), rd.committed.begin(), rd.committed.end());
        }
        return out;
    }
    [[nodiscard]] const core::raft<store_t>& r() const { return node->raft_state(); }
    void tick(int n = 1) {
        for (int i = 0; i < n; ++i) node->tick();
    }
};

/// A hand-driven network of peers.
struct net {
    std::map<node_id, std::unique_ptr<peer>> peers;
    std::vector<message> in_flight;
    std::function<bool(const message&)> drop = [](const message&) { return false; };
    std::size_t delivered = 0;

    explicit net(std::size_t n, bool pre_vote = false, bool check_quorum = false) {
        std::vector<node_id> ids;
        for (node_id i = 1; i <= n; ++i) ids.push_back(i);
        for (node_id i : ids)
            peers.emplace(i, std::make_unique<peer>(opts(i, ids, pre_vote, check_quorum)));
    }
    peer& operator[](node_id id) { return *peers.at(id); }

    /// Collects what every node wants to send.
    void collect() {
        for (auto& [id, p] : peers)
            for (auto& m : p->flush()) in_flight.push_back(std::move(m));
    }
    /// Delivers messages until the network is quiet (bounded).
    void settle(int max_rounds = 100) {
        for (int round = 0; round < max_rounds; ++round) {
            collect();
            if (in_flight.empty()) return;
            auto batch = std::exchange(in_flight, {});
            for (auto& m : batch) {
                if (drop(m) || !peers.contains(m.to)) continue;
                ++delivered;
                peers.at(m.to)->node->step(m);
            }
        }
        FAIL("network did not settle");
    }
    /// Makes `id` campaign and settles.
    void elect(node_id id) {
        peers.at(id)->node->campaign();
        settle();
        REQUIRE(peers.at(id)->r().role() == role::leader);
    }
    void propose(node_id id, const std::string& v) {
        std::vector<entry> b(1);
        b[0].data = shared_bytes(v);
        peers.at(id)->node->propose(std::move(b));
    }
};

/// A message from `from` to `to` of `type` in `term` (other fields by the caller).
inline message msg(message_type type, node_id from, node_id to, term_t term) {
    message m;
    m.type = type;
    m.from = from;
    m.to = to;
    m.term = term;
    return m;
}

/// Node 1 of the cluster {1, 2}, elected in term 1, with node 2 acknowledging the no-op, so
/// node 2 is in replicate state (pipelining) when the test starts.
inline std::unique_ptr<peer> replicating_leader(core::options o) {
    o.id = 1;
    o.voters = {1, 2};
    auto leader = std::make_unique<peer>(o);
    leader->node->campaign();
    leader->flush();
    leader->node->step(msg(message_type::vote_response, 2, 1, 1));
    leader->flush();
    REQUIRE(leader->r().role() == role::leader);
    auto ack = msg(message_type::append_response, 2, 1, 1);
    ack.index = 1;
    leader->node->step(ack);
    leader->flush();
    return leader;
}

/// Messages of one type in `ms`.
inline std::vector<message> of_type(const std::vector<message>& ms, message_type t) {
    std::vector<message> out;
    std::copy_if(ms.begin(), ms.end(), std::back_inserter(out),
                 [&](const message& m) { return m.type == t; });
    return out;
}

}  // namespace craft::test
