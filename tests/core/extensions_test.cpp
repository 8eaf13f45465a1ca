// Beyond section 5: PreVote, CheckQuorum, leader stickiness, ReadIndex, flow control,
// quorums and configurations, each scripted against the pure core.

#include <craft/core/conf_codec.hpp>
#include <craft/core/inflights.hpp>
#include <craft/core/quorum.hpp>

#include "harness.hpp"

using namespace craft;
using namespace craft::test;

TEST_SUITE("core") {

// ---- PreVote and disruption ---------------------------------------------------------------

TEST_CASE("prevote: a pre-candidate does not raise its term until it wins the pre-vote") {
    peer p(opts(1, {1, 2, 3}, /*pre_vote=*/true));
    p.tick(20);  // the election timer fires
    auto out = p.flush();
    CHECK(p.r().role() == role::pre_candidate);
    CHECK(p.r().term() == 0);
    auto pv = of_type(out, message_type::pre_vote);
    REQUIRE(pv.size() == 2);
    CHECK(pv[0].term == 1);  // asks for the term it would run in
}

TEST_CASE("prevote: a partitioned node rejoining does not disrupt the leader") {
    net n(3, /*pre_vote=*/true, /*check_quorum=*/true);
    n.elect(1);
    const term_t t = n[1].r().term();
    // Node 3 is cut off and times out repeatedly.
    n.drop = [](const message& m) { return m.to == 3 || m.from == 3; };
    for (int i = 0; i < 100; ++i) {
        for (auto& [id, p] : n.peers) p->tick();
        n.settle();
    }
    CHECK(n[3].r().term() == t);  // pre-votes failed, so the term never rose
    n.drop = [](const message&) { return false; };
    for (int i = 0; i < 5; ++i) {
        for (auto& [id, p] : n.peers) p->tick();
        n.settle();
    }
    CHECK(n[1].r().role() == role::leader);
    CHECK(n[1].r().term() == t);
}

TEST_CASE("prevote: granted by a node with no leader and an older or equal log") {
    peer p(opts(2, {1, 2, 3}, true));
    auto m = msg(message_type::pre_vote, 1, 2, 1);
    p.node->step(m);
    auto r = of_type(p.flush(), message_type::pre_vote_response);
    REQUIRE(r.size() == 1);
    CHECK_FALSE(r[0].reject);
    CHECK(p.r().term() == 0);  // a pre-vote changes nothing
    CHECK(p.r().vote() == no_node);
}

// ---- CheckQuorum and leader stickiness ------------------------------------------------------

TEST_CASE("checkquorum: an isolated leader steps down within one election timeout") {
    net n(3, true, true);
    n.elect(1);
    n.drop = [](const message& m) { return m.from == 1 || m.to == 1; };
    int ticks = 0;
    while (n[1].r().role() == role::leader && ticks < 100) {
        n[1].tick();
        n.settle();
        ++ticks;
    }
    CHECK(n[1].r().role() == role::follower);
    CHECK(ticks <= n[1].r().opts().election_tick);
}

TEST_CASE("checkquorum: a leader with a live quorum stays leader") {
    net n(5, true, true);
    n.elect(1);
    n.drop = [](const message& m) { return m.to >= 4 || m.from >= 4; };  // 3 of 5 live
    for (int i = 0; i < 100; ++i) {
        for (auto& [id, p] : n.peers) p->tick();
        n.settle();
    }
    CHECK(n[1].r().role() == role::leader);
}

TEST_CASE("stickiness: a node that heard from its leader within the timeout ignores votes") {
    // With or without CheckQuorum (craft_sim seed 27700: a removed node kept deposing a
    // leader that was still replicating when stickiness depended on it).
    for (bool check_quorum : {true, false}) {
        CAPTURE(check_quorum);
        net n(3, false, check_quorum);
        n.elect(1);
        const term_t t = n[2].r().term();
        auto m = msg(message_type::vote, 3, 2, t + 1);
        m.index = 100;
        m.log_term = 100;
        n[2].node->step(m);
        CHECK(n[2].r().term() == t);  // ignored: no term change, no vote
        CHECK(of_type(n[2].flush(), message_type::vote_response).empty());
        // After an election timeout without the leader, the same request is considered.
        n[2].tick(n[2].r().opts().election_tick);
        n[2].node->step(m);
        CHECK(n[2].r().term() == t + 1);
        CHECK(n[2].r().vote() == 3);
    }
}

// ---- ReadIndex ------------------------------------------------------------------------------

TEST_CASE("readindex: a leader's read point is confirmed by a heartbeat quorum") {
    net n(3);
    n.elect(1);
    n.propose(1, "a");
    n.settle();
    REQUIRE(n[1].node->read_index(7) == core::errc::ok);
    auto rd = n[1].node->get_ready();
    CHECK(rd.read_states.empty());  // not before the quorum answered
    auto hb = of_type(rd.messages, message_type::heartbeat);
    REQUIRE(hb.size() == 2);
    CHECK(hb[0].context != 0);
    n[1].node->advance();
    n[2].node->step(hb[0].to == 2 ? hb[0] : hb[1]);
    for (auto& m : n[2].flush()) n[1].node->step(m);
    auto rd2 = n[1].node->get_ready();
    REQUIRE(rd2.read_states.size() == 1);
    CHECK(rd2.read_states[0].context == 7);
    CHECK(rd2.read_states[0].index == 2);
    n[1].node->advance();
}

TEST_CASE("readindex: a deposed leader cannot confirm a read without a quorum") {
    net n(3);
    n.elect(1);
    n.drop = [](const message& m) { return m.from == 1 || m.to == 1; };
    REQUIRE(n[1].node->read_index(9) == core::errc::ok);
    n.settle();
    n[1].tick(3);
    n.settle();
    for (auto& [id, p] : n.peers) CHECK(p->node->has_ready() == false);
    // No read state was ever produced on node 1.
    auto rd = n[1].node->get_ready();
    CHECK(rd.read_states.empty());
    n[1].node->advance();
}

TEST_CASE("readindex: a follower's request is forwarded and answered with the leader's commit") {
    net n(3);
    n.elect(1);
    n.propose(1, "a");
    n.settle();
    REQUIRE(n[2].node->read_index(11) == core::errc::ok);
    std::vector<read_state> got;
    for (int round = 0; round < 10; ++round) {
        n.collect();
        for (auto& m : std::exchange(n.in_flight, {})) n.peers.at(m.to)->node->step(m);
        if (n[2].node->has_ready()) {
            auto rd = n[2].node->get_ready();
            got.insert(got.end(), rd.read_states.begin(), rd.read_states.end());
            for (auto& m : rd.messages_after_persist) n.in_flight.push_back(m);
            n[2].node->advance();
        }
    }
    REQUIRE(got.size() == 1);
    CHECK(got[0].context == 11);
    CHECK(got[0].index == n[1].r().log().committed());
}

TEST_CASE("readindex: a follower without a leader refuses at once") {
    peer p(opts(1, {1, 2, 3}));
    CHECK(p.node->read_index(1) == core::errc::no_leader);
}

// ---- proposals ------------------------------------------------------------------------------

TEST_CASE("propose: a follower refuses and names the leader") {
    net n(3);
    n.elect(1);
    std::vector<entry> b(1);
    auto r = n[2].node->propose(std::move(b));
    CHECK(r.error == core::errc::not_leader);
    CHECK(r.leader == 1);
}

TEST_CASE("propose: a batch gets consecutive indexes in the leader's term") {
    net n(3);
    n.elect(1);
    std::vector<entry> b(5);
    auto r = n[1].node->propose(std::move(b));
    REQUIRE(r.ok());
    CHECK(r.first == 2);
    CHECK(r.last == 6);
    CHECK(r.term == n[1].r().term());
}

TEST_CASE("commit notices: notify_commit tells followers at once instead of on the next tick") {
    auto leader = replicating_leader(opts(1, {1, 2}));
    std::vector<entry> b(1);
    b[0].data = shared_bytes("x");
    REQUIRE(leader->node->propose(std::move(b)).ok());
    REQUIRE(of_type(leader->flush(), message_type::append).size() == 1);
    auto ack = msg(message_type::append_response, 2, 1, 1);
    ack.index = 2;
    leader->node->step(ack);
    const auto after_ack = leader->flush();
    REQUIRE(leader->r().log().committed() == 2);
    CHECK(of_type(after_ack, message_type::commit).empty());  // would wait for the next tick
    leader->node->notify_commit();
    const auto notices = of_type(leader->flush(), message_type::commit);
    REQUIRE(notices.size() == 1);
    CHECK(notices[0].to == 2);
    CHECK(notices[0].commit == 2);
    leader->node->notify_commit();
    CHECK(leader->flush().empty());  // already told
    // A follower has nothing to tell.
    net n(3);
    n.elect(1);
    n[2].node->notify_commit();
    CHECK(n[2].flush().empty());
    CHECK_FALSE(n[2].node->notify_commit(3).has_value());
}

TEST_CASE("commit notices: notify_commit(to) tells that follower alone what it can use") {
    net n(3);
    n.elect(1);
    n.drop = [](const message& x) { return x.type == message_type::commit; };
    n.propose(1, "a");
    n.settle();
    const index_t c = n[1].r().log().committed();
    REQUIRE(c >= 2);
    CHECK(n[1].node->notify_commit(2) == std::optional<index_t>(c));
    const auto out = n[1].flush();
    const auto notices = of_type(out, message_type::commit);
    REQUIRE(notices.size() == 1);
    CHECK(notices[0].to == 2);
    CHECK(notices[0].commit == c);
    CHECK(n[1].node->notify_commit(2) == std::optional<index_t>(c));  // told: nothing more
    CHECK(of_type(n[1].flush(), message_type::commit).empty());
    CHECK_FALSE(n[1].node->notify_commit(1).has_value());  // itself
    CHECK_FALSE(n[1].node->notify_commit(9).has_value());  // no such follower
}

TEST_CASE("early messages: a leader replicates while its batch is written, a follower waits") {
    net n(3);
    n.elect(1);
    auto& leader = *n[1].node;
    n.propose(1, "a");
    auto rd = leader.get_ready();  // being written: no ready until advance()
    REQUIRE(rd.entries.size() == 1);
    CHECK(of_type(rd.messages, message_type::append).size() == 2);
    n.propose(1, "b");
    CHECK_FALSE(leader.has_ready());
    const auto early = leader.take_early_messages();  // "b" goes out during the write of "a"
    REQUIRE(of_type(early, message_type::append).size() == 2);
    for (const auto& m : early) {
        CHECK(m.type == message_type::append);
        REQUIRE(m.entries.size() == 1);
        CHECK(m.entries[0].data.str() == "b");
    }
    CHECK(leader.take_early_messages().empty());
    // A follower's acknowledgement is never early: it waits until its batch is durable.
    auto& follower = *n[2].node;
    for (const auto* batch : {&std::as_const(rd.messages), &early})
        for (const auto& m : *batch)
            if (m.to == 2) follower.step(m);
    CHECK(follower.take_early_messages().empty());
    auto frd = follower.get_ready();
    CHECK(frd.entries.size() == 2);
    CHECK(frd.messages.empty());
    // Both appends are answered by one acknowledgement of the last entry.
    const auto acks = of_type(frd.messages_after_persist, message_type::append_response);
    REQUIRE(acks.size() == 1);
    CHECK(acks[0].to == 1);
    CHECK_FALSE(acks[0].reject);
    CHECK(acks[0].index == frd.entries.back().index);
}

TEST_CASE("acknowledgements: consecutive acceptances coalesce; a rejection keeps its place") {
    peer f(opts(2, {1, 2, 3}));
    auto append = [](index_t prev, term_t prev_term, std::vector<index_t> idx, index_t commit) {
        auto m = msg(message_type::append, 1, 2, 1);
        m.index = prev;
        m.log_term = prev_term;
        m.commit = commit;
        for (auto i : idx) m.entries.push_back({1, i, entry_type::normal, shared_bytes("x")});
        return m;
    };
    auto& node = *f.node;
    node.step(append(0, 0, {1}, 0));
    node.step(append(1, 1, {2, 3}, 1));
    node.step(append(9, 1, {}, 1));  // a probe beyond our log: rejected
    node.step(append(3, 1, {4}, 2));
    node.step(append(1, 1, {2}, 2));  // a stale duplicate: accepted, but only through 2
    const auto a = f.flush();         // persists the batch; the answers follow
    CHECK(f.r().log().last_index() == 4);
    REQUIRE(a.size() == 3);
    for (const auto& m : a) {
        CHECK(m.type == message_type::append_response);
        CHECK(m.to == 1);
        CHECK(m.term == 1);
    }
    CHECK_FALSE(a[0].reject);
    CHECK(a[0].index == 3);  // the first two appends, in one answer
    CHECK(a[0].commit == 1);
    CHECK(a[1].reject);
    CHECK(a[1].index == 9);
    CHECK_FALSE(a[2].reject);
    CHECK(a[2].index == 4);  // the duplicate does not take back what was acknowledged
    CHECK(a[2].commit == 2);
    // A new term starts a new answer.
    node.step(append(4, 1, {5}, 2));
    auto m = append(5, 1, {6}, 2);
    m.term = 2;
    m.entries[0].term = 2;
    node.step(m);
    const auto acks = f.flush();
    REQUIRE(acks.size() == 2);
    CHECK(acks[0].term == 1);
    CHECK(acks[0].index == 5);
    CHECK(acks[1].term == 2);
    CHECK(acks[1].index == 6);
}

TEST_CASE(
    "early applies: entries stored and committed are applied while the next batch is written") {
    auto leader = replicating_leader(opts(1, {1, 2}));
    auto& node = *leader->node;
    std::vector<entry> b(1);
    b[0].data = shared_bytes("a");
    REQUIRE(node.propose(std::move(b)).ok());
    leader->flush();  // "a" (index 2) is stored
    b.assign(1, entry{});
    b[0].data = shared_bytes("b");
    REQUIRE(node.propose(std::move(b)).ok());
    auto rd = node.get_ready();  // "b" (index 3) is being written
    REQUIRE(rd.entries.size() == 1);
    CHECK(rd.applicable_before_write() == rd.committed.size());
    CHECK(node.take_committed().empty());  // nothing committed yet
    auto ack = msg(message_type::append_response, 2, 1, 1);
    ack.index = 3;  // node 2 holds "a" and "b"
    node.step(ack);
    REQUIRE(node.raft_state().log().committed() == 2);  // "b" waits for our own write
    const auto early = node.take_committed();
    REQUIRE(early.size() == 1);
    CHECK(early[0].data.str() == "a");
    CHECK(node.take_committed().empty());  // handed out once
    log_write w;
    w.entries = rd.entries;
    if (rd.hard) w.hard = &*rd.hard;
    REQUIRE(leader->store->write(w).ok());
    node.advance();
    CHECK(node.raft_state().log().applied() == 2);
    const auto next = node.get_ready();  // after the write "b" commits; "a" is not handed again
    REQUIRE(next.committed.size() == 1);
    CHECK(next.committed[0].data.str() == "b");
}

TEST_CASE("early applies: a batch's committed entries that wait for its write come first") {
    core::ready rd;
    for (index_t i = 5; i <= 8; ++i) rd.committed.push_back(entry{1, i, entry_type::normal, {}});
    CHECK(rd.applicable_before_write() == 4);
    rd.entries.push_back(entry{1, 7, entry_type::normal, {}});  // 7 and 8 are written now
    CHECK(rd.applicable_before_write() == 2);
    rd.entries.clear();
    rd.committed[3].type = entry_type::configuration;  // its membership is persisted with rd
    CHECK(rd.applicable_before_write() == 0);
    rd.snap = snapshot_meta{};
    CHECK(rd.applicable_before_write() == 0);
}

// ---- batching and pipelining ----------------------------------------------------------------

TEST_CASE("batching: an append carries many entries, bounded by count and by bytes") {
    SUBCASE("by count") {
        auto o = opts(1, {1, 2});
        o.max_entries_per_message = 10;
        auto leader = replicating_leader(o);
        leader->node->propose(std::vector<entry>(35));
        auto app = of_type(leader->flush(), message_type::append);
        REQUIRE(app.size() == 4);  // 10 + 10 + 10 + 5, pipelined
        CHECK(app[0].entries.size() == 10);
        CHECK(app[3].entries.size() == 5);
    }
    SUBCASE("by bytes") {
        auto o = opts(1, {1, 2});
        o.max_bytes_per_message = 3000;
        auto leader = replicating_leader(o);
        std::vector<entry> b(10);
        for (auto& e : b) e.data = shared_bytes(std::string(1000, 'x'));
        leader->node->propose(std::move(b));
        auto app = of_type(leader->flush(), message_type::append);
        REQUIRE(app.size() >= 4);
        for (const auto& m : app) CHECK(m.entries.size() <= 2);
    }
}

TEST_CASE("pipelining: inflight appends are bounded and freed by acknowledgements") {
    auto o = opts(1, {1, 2});
    o.max_entries_per_message = 1;
    o.max_inflight_messages = 3;
    auto leader = replicating_leader(o);
    leader->node->propose(std::vector<entry>(10));
    auto app = of_type(leader->flush(), message_type::append);
    CHECK(app.size() == 3);  // the window is full
    auto ack = msg(message_type::append_response, 2, 1, 1);
    ack.index = 3;  // acknowledges two of them
    leader->node->step(ack);
    app = of_type(leader->flush(), message_type::append);
    CHECK(app.size() == 2);
}

TEST_CASE("pipelining: an unreachable report ends a stalled window at the next proposal") {
    auto o = opts(1, {1, 2});
    o.max_entries_per_message = 1;
    o.max_inflight_messages = 2;
    auto leader = replicating_leader(o);
    auto follower2 = [&] {
        for (const auto& [id, pr] : leader->node->status().followers)
            if (id == 2) return pr;
        FAIL("no progress for node 2");
        return core::progress(0, 0, 0);
    };
    const index_t match = follower2().match;
    leader->node->propose(std::vector<entry>(2));
    CHECK(of_type(leader->flush(), message_type::append).size() == 2);  // the window is full
    // Both appends are lost with the connection; nothing more goes while the window is full.
    leader->node->propose(std::vector<entry>(1));
    CHECK(of_type(leader->flush(), message_type::append).empty());
    leader->node->report_unreachable(2);
    CHECK(follower2().state == core::replication_state::probe);
    leader->node->propose(std::vector<entry>(1));
    auto app = of_type(leader->flush(), message_type::append);
    REQUIRE(app.size() == 1);  // a probe, from the last acknowledged entry on
    CHECK(app[0].index == match);
    CHECK(app[0].entries.front().index == match + 1);
    // The follower takes it: pipelining resumes.
    auto ack = msg(message_type::append_response, 2, 1, leader->r().term());
    ack.index = app[0].entries.back().index;
    leader->node->step(ack);
    CHECK(follower2().state == core::replication_state::replicate);
    leader->node->report_unreachable(7);  // not a member: nothing happens
    CHECK(follower2().state == core::replication_state::replicate);
}

TEST_CASE("pipelining: a rejected follower falls back to probing one message at a time") {
    net n(3);
    n.elect(1);
    n.drop = [](const message& x) { return x.to == 2; };  // node 2 misses entry 2
    n.propose(1, "a");
    n.settle();
    auto m = msg(message_type::append_response, 2, 1, n[1].r().term());
    m.reject = true;
    m.index = 1;  // an append after entry 2 was rejected: node 2 lacks entry 2
    m.reject_hint = 1;
    m.log_term = 1;
    n[1].node->step(m);
    n[1].flush();
    m.index = 2;
    n[1].node->step(m);
    n[1].flush();
    for (const auto& [id, pr] : n[1].node->status().followers)
        if (id == 2) CHECK(pr.state == core::replication_state::probe);
    n.propose(1, "b");
    n.propose(1, "c");
    auto app = of_type(n[1].flush(), message_type::append);
    CHECK(std::count_if(app.begin(), app.end(), [](const message& x) { return x.to == 2; }) <= 1);
}

TEST_CASE("inflights: full by count or by bytes, freed in order") {
    core::inflights w(3, 100);
    w.add(1, 10);
    w.add(2, 10);
    CHECK_FALSE(w.full());
    w.add(3, 10);
    CHECK(w.full());
    w.free_le(2);
    CHECK(w.count() == 1);
    CHECK_FALSE(w.full());
    w.add(4, 95);
    CHECK(w.full());  // by bytes
    w.free_first_one();
    CHECK(w.count() == 1);
    CHECK(w.bytes() == 95);
}

// ---- quorums and configurations -----------------------------------------------------------

TEST_CASE("quorum: majority commit index is the highest index acknowledged by a majority") {
    std::map<node_id, index_t> acked{{1, 5}, {2, 3}, {3, 9}, {4, 1}, {5, 7}};
    auto f = [&](node_id n) -> std::optional<index_t> {
        auto it = acked.find(n);
        if (it == acked.end()) return std::nullopt;
        return it->second;
    };
    std::vector<node_id> v{1, 2, 3, 4, 5};
    CHECK(core::majority_committed(v, f) == 5);
    std::vector<node_id> w{1, 2, 6};  // 6 has not answered
    CHECK(core::majority_committed(w, f) == 3);
}

TEST_CASE("quorum: a joint configuration needs both majorities") {
    configuration c;
    c.voters = {1, 2, 3};
    c.voters_outgoing = {3, 4, 5};
    std::map<node_id, index_t> acked{{1, 10}, {2, 10}, {3, 2}, {4, 2}, {5, 2}};
    auto f = [&](node_id n) -> std::optional<index_t> { return acked.at(n); };
    CHECK(core::joint_committed(c, f) == 2);
    acked[4] = 8;
    acked[3] = 9;
    CHECK(core::joint_committed(c, f) == 8);

    std::map<node_id, bool> votes{{1, true}, {2, true}};
    auto g = [&](node_id n) -> std::optional<bool> {
        auto it = votes.find(n);
        if (it == votes.end()) return std::nullopt;
        return it->second;
    };
    CHECK(core::joint_vote(c, g) == core::vote_result::pending);
    votes[4] = false;
    votes[5] = false;
    CHECK(core::joint_vote(c, g) == core::vote_result::lost);
    votes[4] = true;
    votes[3] = true;
    CHECK(core::joint_vote(c, g) == core::vote_result::won);
}

TEST_CASE("configuration: encoding round-trips and rejects malformed bytes") {
    configuration c;
    c.voters = {3, 1, 2};
    c.voters_outgoing = {1, 2, 4};
    c.learners = {9};
    c.normalize();
    auto b = core::encode_configuration(c);
    auto d = core::decode_configuration(b);
    REQUIRE(d);
    CHECK(*d == c);
    CHECK_FALSE(core::decode_configuration(shared_bytes(std::string("\x01\xff", 2))));
    CHECK_FALSE(core::decode_configuration(shared_bytes()));
    std::string truncated(b.str().substr(0, b.size() - 3));
    CHECK_FALSE(core::decode_configuration(shared_bytes(truncated)));
}

TEST_CASE("configuration: members' addresses round-trip; bytes without them read as before") {
    configuration c;
    c.voters = {1, 2, 3};
    c.learners = {4};
    c.addresses = {{4, "10.0.0.4:7004"}, {9, "gone:1"}};
    c.normalize();  // node 9 is no member: its address goes
    CHECK(c.addresses == std::map<node_id, std::string>{{4, "10.0.0.4:7004"}});
    const auto b = core::encode_configuration(c);
    CHECK(b.str().front() == 2);
    auto d = core::decode_configuration(b);
    REQUIRE(d);
    CHECK(*d == c);
    // Without addresses, version 1: what every store and peer wrote before addresses existed.
    c.addresses.clear();
    const auto v1 = core::encode_configuration(c);
    CHECK(v1.str().front() == 1);
    CHECK(v1.size() == 1 + 3 * 8 + 4 * 8);
    REQUIRE(core::decode_configuration(v1));
    CHECK(*core::decode_configuration(v1) == c);
    // Malformed: cut anywhere in the addresses, an address given twice, an empty list.
    const std::string full(b.str());
    for (std::size_t n = v1.size(); n < full.size(); ++n)
        CHECK_FALSE(core::decode_configuration(shared_bytes(full.substr(0, n))));
    std::string twice = full;
    twice[v1.size()] = 2;  // two addresses announced; the second repeats node 4's
    twice += full.substr(v1.size() + 8);
    CHECK_FALSE(core::decode_configuration(shared_bytes(twice)));
    std::string none = full.substr(0, v1.size()) + std::string(8, '\0');
    CHECK_FALSE(core::decode_configuration(shared_bytes(none)));
}

TEST_CASE("configuration: a malformed encoding is refused with its reason") {
    auto why_of = [](std::string bytes) {
        std::string why;
        CHECK_FALSE(core::decode_configuration(shared_bytes(std::move(bytes)), &why));
        return why;
    };
    CHECK(why_of("") == "empty configuration entry");
    CHECK(why_of("\x09") == "configuration encoding version 9, this build reads 1 and 2");
    configuration c;
    c.voters = {1, 2};
    const std::string full(core::encode_configuration(c).str());
    CHECK(why_of(full.substr(0, 5)).find("cut short") != std::string::npos);
    CHECK(why_of(full + "xy") == "configuration entry with 2 bytes after its end");
    std::string zero = full;
    zero[1 + 8] = 0;  // the first voter is node 0
    CHECK(why_of(zero) == "configuration entry names node 0");
}

TEST_CASE("configuration: a committed entry the core cannot decode halts it before that entry") {
    // Node 2 of {1, 2} holds entries 1..2; leader 1 sends entry 3, a configuration in an
    // encoding this build does not know (a newer build's), and entry 4, and commits both.
    peer p(opts(2, {1, 2}), {1, 1});
    auto m = msg(message_type::append, 1, 2, 1);
    m.index = 2;
    m.log_term = 1;
    m.commit = 4;
    m.entries = {entry{1, 3, entry_type::configuration, shared_bytes(std::string("\x07\x00"))},
                 entry{1, 4, entry_type::normal, shared_bytes(std::string("after"))}};
    p.node->step(m);
    // The batch that brings the configuration entry is cut before it (its commit goes first).
    std::vector<entry> applied;
    std::optional<std::string> fault;
    for (int k = 0; k < 4 && p.node->has_ready(); ++k) {
        auto rd = p.node->get_ready();
        applied.insert(applied.end(), rd.committed.begin(), rd.committed.end());
        if (rd.fault) {
            fault = rd.fault;
            break;
        }
        p.persist(rd);
    }
    REQUIRE(fault);
    CHECK(*fault ==
          "committed configuration entry 3 (term 1): configuration encoding version 7, this "
          "build reads 1 and 2");
    REQUIRE(applied.size() == 2);  // entries 1 and 2; neither 3 nor anything after it
    CHECK(applied.back().index == 2);
    CHECK(p.r().conf().voters == std::vector<node_id>{1, 2});  // the membership it knew
    CHECK_FALSE(p.node->has_ready());                          // it hands out nothing more
    p.node->step(m);
    p.node->tick();
    CHECK_FALSE(p.node->has_ready());
}

TEST_CASE("configuration: a change keeps the addresses in force; a removed member's go") {
    net n(3);
    n.elect(1);
    auto settle = [&] {
        for (int i = 0; i < 10; ++i) {
            n[1].tick();
            n.settle();
        }
    };
    n.peers.emplace(4, std::make_unique<peer>(opts(4, {})));
    configuration add;
    add.voters = {1, 2, 3};
    add.learners = {4};
    add.addresses = {{4, "h4:4"}};
    REQUIRE(n[1].node->propose_configuration(add).ok());
    settle();
    CHECK(n[2].r().conf().addresses == std::map<node_id, std::string>{{4, "h4:4"}});
    CHECK(n[4].r().conf().addresses == std::map<node_id, std::string>{{4, "h4:4"}});
    CHECK(n[2].store->initial_state().conf.addresses.at(4) == "h4:4");  // persisted
    // Promote 4 and give 3 an address, naming neither old address: 4's is kept.
    configuration promote;
    promote.voters = {1, 2, 3, 4};
    promote.addresses = {{3, "h3:3"}};
    REQUIRE(n[1].node->propose_configuration(promote).ok());
    settle();
    CHECK(n[4].r().conf().addresses == std::map<node_id, std::string>{{3, "h3:3"}, {4, "h4:4"}});
    // Remove 3 and 4 at once (joint): their addresses stay while they vote in the outgoing
    // half, and go with them.
    configuration shrink;
    shrink.voters = {1, 2};
    REQUIRE(n[1].node->propose_configuration(shrink).ok());
    n[1].tick();
    n.settle();
    bool saw_joint_with_addresses = false;
    for (int i = 0; i < 10; ++i) {
        if (n[2].r().conf().joint())
            saw_joint_with_addresses = n[2].r().conf().addresses.size() == 2;
        n[1].tick();
        n.settle();
    }
    CHECK(saw_joint_with_addresses);
    CHECK_FALSE(n[1].r().conf().joint());
    CHECK(n[1].r().conf().voters == std::vector<node_id>{1, 2});
    CHECK(n[1].r().conf().addresses.empty());
    CHECK(n[2].r().conf().addresses.empty());
}

TEST_CASE("configuration: a learner receives the log but never votes or counts") {
    auto o1 = opts(1, {1, 2});
    o1.learners = {3};
    auto o3 = opts(3, {1, 2});
    o3.learners = {3};
    net n(0);
    n.peers.emplace(1, std::make_unique<peer>(o1));
    auto o2 = opts(2, {1, 2});
    o2.learners = {3};
    n.peers.emplace(2, std::make_unique<peer>(o2));
    n.peers.emplace(3, std::make_unique<peer>(o3));
    n[3].tick(100);  // a learner never campaigns
    CHECK(n[3].r().role() == role::follower);
    n.elect(1);
    n.propose(1, "x");
    n.settle();
    n[1].tick();
    n.settle();
    CHECK(n[3].store->last_index() == n[1].store->last_index());
    // Without node 2, the learner's acknowledgements cannot commit anything.
    n.drop = [](const message& m) { return m.to == 2 || m.from == 2; };
    n.propose(1, "y");
    n.settle();
    CHECK(n[1].r().log().committed() == n[1].r().log().last_index() - 1);
}

TEST_CASE("configuration: adding two voters goes through a joint configuration and leaves it") {
    net n(3);
    n.elect(1);
    configuration target;
    target.voters = {1, 2, 3, 4, 5};
    // Nodes 4 and 5 join with empty logs and no configuration.
    for (node_id id : {4, 5}) n.peers.emplace(id, std::make_unique<peer>(opts(id, {})));
    REQUIRE(n[1].node->propose_configuration(target).ok());
    for (int i = 0; i < 10; ++i) {
        n[1].tick();
        n.settle();
    }
    CHECK(n[1].r().conf().voters == std::vector<node_id>{1, 2, 3, 4, 5});
    CHECK_FALSE(n[1].r().conf().joint());
    CHECK(n[4].r().conf().voters == std::vector<node_id>{1, 2, 3, 4, 5});
    CHECK(n[1].store->initial_state().conf.voters.size() == 5);  // persisted
    // Now 3 of 5 are needed: with 1, 2 cut, 3 4 5 can elect.
    n.drop = [](const message& m) { return m.to <= 2 || m.from <= 2; };
    n[4].node->campaign();
    n.settle();
    CHECK(n[4].r().role() == role::leader);
}

TEST_CASE("configuration: a second change is refused while one is pending") {
    net n(3);
    n.elect(1);
    configuration a;
    a.voters = {1, 2};
    REQUIRE(n[1].node->propose_configuration(a).ok());
    configuration b;
    b.voters = {1, 2, 3};
    CHECK(n[1].node->propose_configuration(b).error == core::errc::config_pending);
}

TEST_CASE("restart: entries already applied past the stored commit are not handed out again") {
    // The runtime does not write a hard state that only moves the commit, so after a failure
    // the stored commit (2) can lag what the state machine applied (4).
    auto o = opts(1, {1, 2});
    o.applied = 4;
    peer p(o, {1, 1, 1, 1, 1});
    hard_state hs{1, no_node, 2};
    log_write w;
    w.hard = &hs;
    REQUIRE(p.store->write(w).ok());
    p.node = std::make_unique<node_t>(o, *p.store);
    CHECK(p.r().log().committed() == 4);
    CHECK(p.r().log().applied() == 4);
    p.flush();
    CHECK(p.applied.empty());
    // Applied past the log's end (a lost tail): the commit stops at the last entry.
    o.applied = 9;
    p.node = std::make_unique<node_t>(o, *p.store);
    CHECK(p.r().log().committed() == 5);
}

TEST_CASE("options: invalid options are named") {
    core::options o;
    CHECK(o.validate().value_or("").find("options.id") != std::string::npos);
    o.id = 1;
    o.election_tick = 1;
    o.heartbeat_tick = 1;
    CHECK(o.validate().value_or("").find("options.election_tick") != std::string::npos);
    o.election_tick = 10;
    CHECK_FALSE(o.validate());
    o.voters = {1, 2};
    o.learners = {2};
    CHECK(o.validate().value_or("").find("options.learners") != std::string::npos);
}

}  // TEST_SUITE
