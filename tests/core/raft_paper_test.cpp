// One test per rule of section 5 of the Raft paper ("In Search of an Understandable
// Consensus Algorithm"), scripted message by message against the pure core.

#include "harness.hpp"

using namespace craft;
using namespace craft::test;

TEST_SUITE("core") {

// ---- 5.1 Raft basics ----------------------------------------------------------------------

TEST_CASE("5.1 a node seeing a newer term adopts it and becomes follower") {
    net n(3);
    n.elect(1);
    const term_t t = n[1].r().term();
    auto m = msg(message_type::append_response, 2, 1, t + 3);
    m.index = 0;
    n[1].node->step(m);
    CHECK(n[1].r().term() == t + 3);
    CHECK(n[1].r().role() == role::follower);
    CHECK(n[1].r().vote() == no_node);
}

TEST_CASE("5.1 a request with a stale term is rejected and answered with the current term") {
    net n(3);
    n.elect(1);
    n.elect(2);  // term 2: node 1 is now a follower in term 2
    const term_t t = n[1].r().term();
    REQUIRE(t == 2);
    auto m = msg(message_type::append, 3, 1, 1);
    m.index = 0;
    m.entries.push_back({1, 1, entry_type::normal, shared_bytes("stale")});
    n[1].node->step(m);
    auto out = n[1].flush();
    auto resp = of_type(out, message_type::append_response);
    REQUIRE(resp.size() == 1);
    CHECK(resp[0].term == t);                 // tells the stale leader about the newer term
    CHECK(n[1].r().log().last_index() == 2);  // nothing from the stale leader was appended
    CHECK(n[1].r().leader() == 2);
}

// ---- 5.2 Leader election --------------------------------------------------------------------

TEST_CASE("5.2 a follower that hears nothing for an election timeout starts an election") {
    peer p(opts(1, {1, 2, 3}));
    p.tick(20);  // randomized timeout is below 2 * election_tick
    auto out = p.flush();
    CHECK(p.r().role() == role::candidate);
    CHECK(p.r().term() == 1);
    CHECK(p.r().vote() == 1);  // votes for itself
    auto votes = of_type(out, message_type::vote);
    REQUIRE(votes.size() == 2);
    for (const auto& v : votes) {
        CHECK(v.term == 1);
        CHECK(v.index == 0);
    }
    CHECK(p.store->initial_state().hard.vote == 1);  // the vote was persisted before sending
}

TEST_CASE("5.2 election timeouts are randomized between one and two election timeouts") {
    std::set<int> fired;
    for (std::uint64_t seed = 1; seed <= 40; ++seed) {
        auto o = opts(1, {1, 2, 3});
        o.seed = seed;
        peer p(o);
        int t = 0;
        while (p.r().role() == role::follower && t < 100) {
            p.tick();
            ++t;
        }
        CHECK(t >= o.election_tick);
        CHECK(t < 2 * o.election_tick);
        fired.insert(t);
    }
    CHECK(fired.size() > 3);  // not a constant
}

TEST_CASE("5.2 a candidate that gets votes from a majority becomes leader") {
    net n(5);
    n[1].node->campaign();
    n.drop = [](const message& m) { return m.to == 4 || m.to == 5; };  // two voters silent
    n.settle();
    CHECK(n[1].r().role() == role::leader);
}

TEST_CASE("5.2 a candidate without a majority of votes does not become leader") {
    net n(5);
    n[1].node->campaign();
    n.drop = [](const message& m) { return m.to >= 3 || m.from >= 3; };
    n.settle();
    CHECK(n[1].r().role() == role::candidate);
}

TEST_CASE("5.2 each node votes for at most one candidate per term, first come first served") {
    peer p(opts(3, {1, 2, 3}));
    auto req = [](node_id from) {
        auto m = msg(message_type::vote, from, 3, 1);
        m.index = 0;
        m.log_term = 0;
        return m;
    };
    p.node->step(req(1));
    p.node->step(req(2));
    auto out = of_type(p.flush(), message_type::vote_response);
    REQUIRE(out.size() == 2);
    CHECK(out[0].to == 1);
    CHECK_FALSE(out[0].reject);
    CHECK(out[1].to == 2);
    CHECK(out[1].reject);
    CHECK(p.r().vote() == 1);
    // The same candidate asking again gets the same answer (a retransmission).
    p.node->step(req(1));
    auto again = of_type(p.flush(), message_type::vote_response);
    REQUIRE(again.size() == 1);
    CHECK_FALSE(again[0].reject);
}

TEST_CASE("5.2 a candidate that receives an append from a leader of its term becomes follower") {
    peer p(opts(1, {1, 2, 3}));
    p.node->campaign();
    p.flush();
    REQUIRE(p.r().role() == role::candidate);
    auto m = msg(message_type::append, 2, 1, p.r().term());
    p.node->step(m);
    CHECK(p.r().role() == role::follower);
    CHECK(p.r().leader() == 2);
}

TEST_CASE("5.2 a candidate whose election times out starts a new one in a higher term") {
    peer p(opts(1, {1, 2, 3}));
    p.node->campaign();
    p.flush();
    const term_t t = p.r().term();
    p.tick(20);
    p.flush();
    CHECK(p.r().role() == role::candidate);
    CHECK(p.r().term() == t + 1);
}

TEST_CASE("5.2 an idle leader sends heartbeats to every follower each heartbeat interval") {
    net n(3);
    n.elect(1);
    // The election's appends count as contact for the current interval (craft skips a
    // heartbeat right after an append); from then on the idle leader beats every interval.
    n[1].tick();
    n.settle();
    for (int interval = 0; interval < 5; ++interval) {
        n[1].tick();
        auto hb = of_type(n[1].flush(), message_type::heartbeat);
        std::set<node_id> to;
        for (const auto& m : hb) to.insert(m.to);
        CHECK(to == std::set<node_id>{2, 3});
        for (auto& m : hb) n.peers.at(m.to)->node->step(m);
        n.settle();
    }
}

TEST_CASE("5.2 a follower that hears heartbeats does not start an election") {
    net n(3);
    n.elect(1);
    for (int i = 0; i < 100; ++i) {
        for (auto& [id, p] : n.peers) p->tick();
        n.settle();
    }
    CHECK(n[1].r().role() == role::leader);
    CHECK(n[2].r().role() == role::follower);
    CHECK(n[1].r().term() == 1);
}

// ---- 5.3 Log replication --------------------------------------------------------------------

TEST_CASE("5.3 a leader appends a proposal to its log and sends it to every follower") {
    net n(3);
    n.elect(1);
    n.propose(1, "x");
    auto out = n[1].flush();
    auto app = of_type(out, message_type::append);
    REQUIRE(app.size() == 2);
    for (const auto& m : app) {
        REQUIRE(m.entries.size() == 1);
        CHECK(m.entries[0].data.str() == "x");
        CHECK(m.entries[0].index == 2);  // after the leader's no-op
        CHECK(m.index == 1);             // preceded by the no-op
        CHECK(m.log_term == 1);
    }
}

TEST_CASE("5.3 an entry is committed once a majority stores it, and then applied in order") {
    net n(5);
    n.elect(1);
    n.drop = [](const message& m) { return m.to == 4 || m.to == 5; };
    n.propose(1, "a");
    n.propose(1, "b");
    n.settle();
    CHECK(n[1].r().log().committed() == 3);
    REQUIRE(n[1].applied.size() == 3);
    CHECK(n[1].applied[1].data.str() == "a");
    CHECK(n[1].applied[2].data.str() == "b");
    n.drop = [](const message& m) { return m.to >= 3; };  // now only 1 and 2: no majority
    n.propose(1, "c");
    n.settle();
    CHECK(n[1].r().log().committed() == 3);
    CHECK(n[1].r().log().last_index() == 4);
}

TEST_CASE("5.3 a follower rejects an append whose previous entry it does not hold") {
    peer p(opts(2, {1, 2, 3}), {1, 1}, 2);
    auto m = msg(message_type::append, 1, 2, 2);
    m.index = 2;
    m.log_term = 2;  // we hold term 1 at index 2
    m.entries.push_back({2, 3, entry_type::normal, shared_bytes("x")});
    p.node->step(m);
    auto resp = of_type(p.flush(), message_type::append_response);
    REQUIRE(resp.size() == 1);
    CHECK(resp[0].reject);
    CHECK(resp[0].index == 2);
    CHECK(p.r().log().last_index() == 2);
}

TEST_CASE("5.3 a follower deletes a conflicting entry and all that follow it, then appends") {
    peer p(opts(2, {1, 2, 3}), {1, 1, 1, 1}, 2);
    auto m = msg(message_type::append, 1, 2, 2);
    m.index = 2;
    m.log_term = 1;
    m.entries.push_back({2, 3, entry_type::normal, shared_bytes("new3")});
    p.node->step(m);
    auto resp = of_type(p.flush(), message_type::append_response);
    REQUIRE(resp.size() == 1);
    CHECK_FALSE(resp[0].reject);
    CHECK(resp[0].index == 3);
    CHECK(p.store->last_index() == 3);
    CHECK(p.store->term(3) == 2);
}

TEST_CASE("5.3 a follower ignores entries it already holds (a repeated append is harmless)") {
    peer p(opts(2, {1, 2, 3}), {1, 1, 1}, 1);
    auto m = msg(message_type::append, 1, 2, 1);
    m.index = 1;
    m.log_term = 1;
    m.entries.push_back({1, 2, entry_type::normal, shared_bytes("e2")});
    p.node->step(m);
    p.flush();
    CHECK(p.store->last_index() == 3);  // entry 3 is not truncated by an older, shorter append
}

TEST_CASE("5.3 a follower commits up to min(leader commit, index of last new entry)") {
    peer p(opts(2, {1, 2, 3}), {}, 1);
    auto m = msg(message_type::append, 1, 2, 1);
    m.index = 0;
    m.log_term = 0;
    m.commit = 5;
    m.entries.push_back({1, 1, entry_type::normal, shared_bytes("a")});
    m.entries.push_back({1, 2, entry_type::normal, shared_bytes("b")});
    p.node->step(m);
    p.flush();
    CHECK(p.r().log().committed() == 2);
    CHECK(p.applied.size() == 2);
}

TEST_CASE("5.3 after a rejection the leader backs up and the logs converge") {
    net n(3);
    n.elect(1);
    // Node 3 misses ten entries.
    n.drop = [](const message& m) { return m.to == 3 || m.from == 3; };
    for (int i = 0; i < 10; ++i) n.propose(1, "v" + std::to_string(i));
    n.settle();
    n.drop = [](const message&) { return false; };
    for (int i = 0; i < 3; ++i) {  // the next heartbeat reveals the gap
        n[1].tick();
        n.settle();
    }
    CHECK(n[3].store->last_index() == n[1].store->last_index());
    CHECK(n[3].r().log().committed() == n[1].r().log().committed());
}

TEST_CASE("5.3 a follower diverging over several terms is repaired in round trips per term") {
    // Leader log: terms 1 1 1 then 6 6 6 ... ; follower: terms 1 1 1 then 2 x10, 3 x10, 4 x10.
    std::vector<term_t> leader_terms{1, 1, 1};
    std::vector<term_t> follower_terms{1, 1, 1};
    for (int i = 0; i < 40; ++i) leader_terms.push_back(6);
    for (term_t t = 2; t <= 4; ++t)
        for (int i = 0; i < 10; ++i) follower_terms.push_back(t);
    peer leader(opts(1, {1, 2}), leader_terms, 6);
    peer follower(opts(2, {1, 2}), follower_terms, 6);
    leader.node->campaign();
    // Deliver by hand, counting rejected appends.
    std::vector<message> q = leader.flush();
    int rejections = 0;
    for (int round = 0; round < 50 && !q.empty(); ++round) {
        std::vector<message> next;
        for (auto& m : q) {
            peer& to = m.to == 1 ? leader : follower;
            to.node->step(m);
            if (m.type == message_type::append_response && m.reject) ++rejections;
        }
        for (auto& m : leader.flush()) next.push_back(std::move(m));
        for (auto& m : follower.flush()) next.push_back(std::move(m));
        q = std::move(next);
    }
    REQUIRE(leader.r().role() == role::leader);
    CHECK(follower.store->last_index() == leader.store->last_index());
    CHECK(follower.store->term(10) == 6);
    CHECK(rejections <= 3);  // not one per divergent entry (30)
}

TEST_CASE("5.3 a leader never overwrites or deletes entries in its own log") {
    net n(3);
    n.elect(1);
    n.propose(1, "a");
    n.settle();
    const auto before = n[1].store->last_index();
    // A rejection from a follower with a conflicting hint does not touch the leader's log.
    auto m = msg(message_type::append_response, 2, 1, n[1].r().term());
    m.reject = true;
    m.index = before;
    m.reject_hint = 0;
    n[1].node->step(m);
    n[1].flush();
    CHECK(n[1].store->last_index() == before);
    CHECK(n[1].store->term(before) == n[1].r().term());
}

// ---- 5.4 Safety -----------------------------------------------------------------------------

TEST_CASE("5.4.1 a voter denies its vote to a candidate whose log is less up to date") {
    // The voter's log has the given terms; the candidate's last entry is (index, log_term).
    auto granted = [](std::vector<term_t> voter_log, index_t index, term_t log_term) {
        peer p(opts(3, {1, 2, 3}), voter_log, 2);
        auto m = msg(message_type::vote, 1, 3, 3);
        m.index = index;
        m.log_term = log_term;
        p.node->step(m);
        auto r = of_type(p.flush(), message_type::vote_response);
        REQUIRE(r.size() == 1);
        return !r[0].reject;
    };
    CHECK_FALSE(granted({1, 2}, 5, 1));     // longer, but an older last term
    CHECK_FALSE(granted({1, 2, 2}, 2, 2));  // same last term, shorter
    CHECK(granted({1, 2, 2}, 3, 2));        // as up to date
    CHECK(granted({1, 2, 2}, 1, 3));        // newer last term, even if shorter
}

TEST_CASE("5.4.2 a leader does not commit an entry of an earlier term by counting replicas") {
    // Figure 8: the leader of term 3 holds an entry of term 2 at index 2 that is now stored on
    // a majority; it still must not count it committed until an entry of term 3 is.
    peer leader(opts(1, {1, 2, 3}), {1, 2}, 2);
    peer f2(opts(2, {1, 2, 3}), {1, 2}, 2);
    peer f3(opts(3, {1, 2, 3}), {1}, 2);
    leader.node->campaign();
    auto out = leader.flush();
    // Votes from 2 and 3 arrive, so the leader takes term 3 and appends its no-op at index 3.
    for (auto* p : {&f2, &f3}) {
        for (auto& m : out)
            if (m.to == (p == &f2 ? 2u : 3u)) p->node->step(m);
        for (auto& m : p->flush()) leader.node->step(m);
    }
    out = leader.flush();
    REQUIRE(leader.r().role() == role::leader);
    REQUIRE(leader.r().term() == 3);
    // Only the old entry's replication gets through to node 2 (it already has it); the no-op
    // append is lost, so index 2 is on a majority (1, 2) but nothing of term 3 is.
    auto m = msg(message_type::append_response, 2, 1, 3);
    m.index = 2;
    leader.node->step(m);
    leader.flush();
    CHECK(leader.r().log().committed() == 0);
    // Once the term-3 no-op is on a majority, everything before it commits too.
    m.index = 3;
    leader.node->step(m);
    leader.flush();
    CHECK(leader.r().log().committed() == 3);
}

TEST_CASE("5.4.3 a leader counts its own entry only after it is durable") {
    net n(3);
    n.elect(1);
    n.drop = [](const message& m) { return m.to != 1; };  // followers never get anything
    n.propose(1, "x");
    auto rd = n[1].node->get_ready();
    REQUIRE(rd.entries.size() == 1);
    // Before advance() (the sync), the leader's own match must not have moved.
    for (const auto& [id, pr] : n[1].node->status().followers)
        if (id == 1) CHECK(pr.match < rd.entries[0].index);
    log_write w;
    w.entries = rd.entries;
    REQUIRE(n[1].store->write(w).ok());
    n[1].node->advance();
    for (const auto& [id, pr] : n[1].node->status().followers)
        if (id == 1) CHECK(pr.match == rd.entries[0].index);
}

TEST_CASE("5.4.3 a vote and its term are persisted before the vote is sent") {
    peer p(opts(3, {1, 2, 3}));
    auto m = msg(message_type::vote, 1, 3, 1);
    p.node->step(m);
    auto rd = p.node->get_ready();
    CHECK(rd.messages.empty());  // nothing goes out before the sync
    REQUIRE(rd.messages_after_persist.size() == 1);
    CHECK(rd.messages_after_persist[0].type == message_type::vote_response);
    REQUIRE(rd.hard);
    CHECK(rd.hard->vote == 1);
    CHECK(rd.hard->term == 1);
}

// ---- 5.5 Follower and candidate crashes ---------------------------------------------------

TEST_CASE("5.5 a restarted follower keeps its term, vote and log and answers retransmissions") {
    auto store = std::make_unique<testing::memory_log_store>();
    {
        node_t n(opts(3, {1, 2, 3}), *store);
        auto m = msg(message_type::vote, 1, 3, 4);
        n.step(m);
        auto rd = n.get_ready();
        log_write w;
        w.hard = &*rd.hard;
        REQUIRE(store->write(w).ok());
        n.advance();
    }
    node_t again(opts(3, {1, 2, 3}), *store);
    CHECK(again.raft_state().term() == 4);
    CHECK(again.raft_state().vote() == 1);
    auto m = msg(message_type::vote, 2, 3, 4);  // another candidate of the same term
    again.step(m);
    auto rd = again.get_ready();
    REQUIRE(rd.messages_after_persist.size() == 1);
    CHECK(rd.messages_after_persist[0].reject);
}

}  // TEST_SUITE
