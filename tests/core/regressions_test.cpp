// Regressions: each case is a bug found by review or by craft_sim, scripted so it stays fixed.

#include <craft/core/conf_codec.hpp>

#include "harness.hpp"

using namespace craft;
using namespace craft::test;

TEST_SUITE("core") {

TEST_CASE("regression: one batch cannot carry two configuration changes") {
    // Each was legal against the configuration in force; together they would jump from {1,2}
    // to {1,4,5} in one step once the first one's leave entry committed.
    net n(3);
    n.elect(1);
    configuration joint;
    joint.voters = {1, 4, 5};
    joint.voters_outgoing = {1, 2, 3};
    configuration simple;
    simple.voters = {1, 2};
    std::vector<entry> batch(2);
    batch[0].type = batch[1].type = entry_type::configuration;
    batch[0].data = core::encode_configuration(joint);
    batch[1].data = core::encode_configuration(simple);
    const index_t before = n[1].r().log().last_index();
    CHECK(n[1].node->propose(std::move(batch)).error == core::errc::config_invalid);
    CHECK(n[1].r().log().last_index() == before);
}

TEST_CASE("regression: a new leader leaves a joint configuration its predecessor entered") {
    net n(3);
    for (node_id id : {4, 5}) n.peers.emplace(id, std::make_unique<peer>(opts(id, {})));
    n.elect(1);
    configuration target;
    target.voters = {1, 2, 3, 4, 5};
    // Every append from 1 carrying the leave entry (index 3) is lost.
    n.drop = [](const message& m) {
        if (m.from != 1 || m.type != message_type::append) return false;
        return std::any_of(m.entries.begin(), m.entries.end(),
                           [](const entry& e) { return e.index >= 3; });
    };
    REQUIRE(n[1].node->propose_configuration(target).ok());
    n.settle();
    for (int i = 0; i < 3; ++i) {  // heartbeats carry commit 2 (the joint entry) to 2 and 3
        n[1].tick();
        n.settle();
    }
    REQUIRE(n[2].r().conf().joint());
    n.drop = [](const message& m) { return m.from == 1 || m.to == 1; };  // 1 dies
    n[2].node->campaign();
    n.settle();
    REQUIRE(n[2].r().role() == role::leader);
    for (int i = 0; i < 5; ++i) {
        n[2].tick();
        n.settle();
    }
    CHECK_FALSE(n[2].r().conf().joint());
    CHECK(n[2].r().conf().voters == std::vector<node_id>{1, 2, 3, 4, 5});
}

TEST_CASE("regression: malformed messages are dropped, never trusted") {
    peer f(opts(2, {1, 2}));
    SUBCASE("entries not numbered from index + 1") {
        auto m = msg(message_type::append, 1, 2, 1);
        m.entries.push_back({1, 5, entry_type::normal, shared_bytes("x")});
        f.node->step(m);
    }
    SUBCASE("entries of a later term than the message") {
        auto m = msg(message_type::append, 1, 2, 1);
        m.entries.push_back({7, 1, entry_type::normal, shared_bytes("x")});
        f.node->step(m);
    }
    SUBCASE("a message claiming to come from ourselves") {
        auto m = msg(message_type::append, 2, 2, 1);
        m.entries.push_back({1, 1, entry_type::normal, shared_bytes("x")});
        f.node->step(m);
    }
    SUBCASE("a snapshot of a later term than the message") {
        auto m = msg(message_type::snapshot, 1, 2, 1);
        m.snap.index = 10;
        m.snap.term = 5;
        f.node->step(m);
    }
    f.flush();
    CHECK(f.store->last_index() == 0);
    CHECK(f.r().term() == 0);
}

TEST_CASE("regression: a snapshot the follower already holds is acknowledged up to commit") {
    // Entries 4 and 5 (term 2) came from a deposed leader and were never committed; the
    // follower must not vouch for them.
    peer f(opts(3, {1, 2, 3}), {1, 1, 1, 2, 2}, 2);
    auto s = msg(message_type::snapshot, 1, 3, 3);
    s.snap.index = 3;
    s.snap.term = 1;
    s.snap.conf.voters = {1, 2, 3};
    f.node->step(s);
    auto out = f.flush();
    REQUIRE(out.size() == 1);
    CHECK(out[0].index == 3);
    CHECK(f.store->last_index() == 5);  // the suffix is kept for the leader to repair
}

TEST_CASE("regression: a single voter leads only once its term and vote are durable") {
    // craft_sim seed 4989: a one-voter configuration elected itself before its new term was
    // on disk, crashed, came back in the old term and voted for another node in the same term.
    peer p(opts(1, {1}));
    p.node->campaign();
    auto rd = p.node->get_ready();
    REQUIRE(rd.hard);
    CHECK(rd.hard->vote == 1);
    CHECK(p.r().role() == role::candidate);  // not leader before the write
    for (const auto& m : rd.messages) CHECK(m.type != message_type::append);
    log_write w;
    w.hard = &*rd.hard;
    REQUIRE(p.store->write(w).ok());
    p.node->advance();
    CHECK(p.r().role() == role::leader);
}

TEST_CASE("regression: a voter shares how far the candidate's log is known committed") {
    // craft_sim: nodes stuck in a joint configuration whose outgoing half was a removed node
    // with a longer log learn from its vote rejection that the configuration was left.
    peer voter(opts(2, {1, 2, 3}), {1, 1, 1, 1}, 1);
    auto hb = msg(message_type::heartbeat, 3, 2, 1);
    hb.commit = 4;
    voter.node->step(hb);
    voter.flush();
    REQUIRE(voter.r().log().committed() == 4);
    peer candidate(opts(1, {1, 2, 3}), {1, 1, 1}, 1);
    REQUIRE(candidate.r().log().committed() == 0);
    candidate.node->campaign();
    for (auto& m : candidate.flush()) {
        if (m.to != 2) continue;
        voter.node->step(m);
        for (auto& r : voter.flush()) candidate.node->step(r);
    }
    candidate.flush();
    CHECK(candidate.r().log().committed() == 3);  // min(voter's commit, candidate's last)
}

TEST_CASE("regression: a hopeless candidate does not restart an up-to-date node's timer") {
    // craft_sim seed 9088: two stale candidates taking turns kept the one up-to-date voter
    // from ever campaigning.
    peer p(opts(1, {1, 2, 3}), {1, 1, 1, 1}, 1);
    int ticks = 0;
    for (; ticks < 100 && p.r().role() == role::follower; ++ticks) {
        p.tick();
        if (ticks % 5 == 4) {
            auto m = msg(message_type::vote, ticks % 10 == 4 ? 2 : 3, 1, p.r().term() + 1);
            m.index = 1;  // stale
            m.log_term = 1;
            p.node->step(m);
        }
        p.flush();
    }
    CHECK(p.r().role() == role::candidate);
    CHECK(ticks < 2 * p.r().opts().election_tick);
}

TEST_CASE("regression: a stale vote request is answered with the current term") {
    // craft_sim seed 39236: a candidate one term behind a node that ignored it campaigned
    // forever, never learning the newer term.
    peer p(opts(3, {1, 2, 3}), {1}, 9);
    auto m = msg(message_type::vote, 2, 3, 5);
    m.index = 1;
    m.log_term = 1;
    p.node->step(m);
    auto r = of_type(p.flush(), message_type::vote_response);
    REQUIRE(r.size() == 1);
    CHECK(r[0].reject);
    CHECK(r[0].term == 9);
}

TEST_CASE("regression: a configuration entry is stored only after the commit before it") {
    // craft_sim seed 91187356: {1,2,3} -> {1,3} -> {1} -> {1,2}. Node 2 got entries 8..20 (the
    // last two changes among them) with commit 16 in one append; a crash kept a prefix of
    // the entries but not the hard state, so it restarted with commit 2, applied none of the
    // changes, and won term 7 with node 3's vote under {1,2,3}, lacking entry 16 that node 1
    // had committed alone under {1}. Now the commit is written before the configuration
    // entry, and the acknowledgement waits until the entries it vouches for are written.
    peer f(opts(2, {1, 2, 3}));
    configuration two;
    two.voters = {1, 2};
    auto app = msg(message_type::append, 1, 2, 1);
    app.commit = 2;
    app.entries = {{1, 1, entry_type::normal, shared_bytes("a")},
                   {1, 2, entry_type::configuration, core::encode_configuration(two)},
                   {1, 3, entry_type::normal, shared_bytes("b")}};
    f.node->step(app);
    auto write = [&](const core::ready& rd) { f.persist(rd); };
    REQUIRE(f.node->has_ready());
    auto rd = f.node->get_ready();
    REQUIRE(rd.entries.size() == 1);  // stops before the configuration entry
    CHECK(rd.hard_first);
    REQUIRE(rd.hard);
    CHECK(rd.hard->commit == 1);  // no further than the entries stored (the next batch: 2)
    CHECK(rd.messages_after_persist.empty());  // it acknowledges entry 3
    REQUIRE(rd.committed.size() == 1);         // only what is stored after this write
    CHECK(rd.committed[0].index == 1);
    write(rd);
    SUBCASE("the next batch writes the rest and acknowledges it") {
        REQUIRE(f.node->has_ready());
        rd = f.node->get_ready();
        REQUIRE(rd.entries.size() == 2);
        CHECK(rd.entries[0].index == 2);
        CHECK_FALSE(rd.hard_first);
        REQUIRE(rd.messages_after_persist.size() == 1);
        CHECK(rd.messages_after_persist[0].type == message_type::append_response);
        CHECK(rd.messages_after_persist[0].index == 3);
        REQUIRE(rd.committed.size() == 1);
        CHECK(rd.committed[0].index == 2);
        REQUIRE(rd.hard);
        CHECK(rd.hard->commit == 2);
        write(rd);
        CHECK(f.r().conf().voters == two.voters);
        CHECK_FALSE(f.node->has_ready());
    }
    SUBCASE("an acknowledgement held from an older term is dropped") {
        // A leader of term 2 replaces entry 3 before it is written: the held acknowledgement
        // to node 1 would vouch for an entry the log no longer holds.
        auto app2 = msg(message_type::append, 3, 2, 2);
        app2.index = 2;
        app2.log_term = 1;
        app2.commit = 2;
        app2.entries = {{2, 3, entry_type::normal, shared_bytes("c")}};
        f.node->step(app2);
        rd = f.node->get_ready();
        REQUIRE(rd.entries.size() == 2);
        CHECK(rd.entries[1].term == 2);
        REQUIRE_FALSE(rd.messages_after_persist.empty());
        for (const auto& m : rd.messages_after_persist) {
            CHECK(m.to == 3);
            CHECK(m.term == 2);
        }
    }
}

TEST_CASE("regression: a batch cut before a configuration entry keeps the pre-votes it holds") {
    // Held messages are dropped only when the term changes; pre-vote traffic carries the
    // next term and must survive the wait (a reviewer's finding on the first version).
    peer f(opts(2, {1, 2, 3}, true));
    configuration two;
    two.voters = {1, 2};
    auto app = msg(message_type::append, 1, 2, 1);
    app.commit = 1;
    app.entries = {{1, 1, entry_type::normal, shared_bytes("a")},
                   {1, 2, entry_type::configuration, core::encode_configuration(two)}};
    f.node->step(app);
    f.tick(30);  // the leader is gone: a pre-vote campaign starts
    REQUIRE(f.r().role() == role::pre_candidate);
    auto rd = f.node->get_ready();
    REQUIRE(rd.hard_first);
    CHECK(rd.messages_after_persist.empty());
    log_write w;
    w.entries = rd.entries;
    w.hard = &*rd.hard;
    REQUIRE(f.store->write(w).ok());
    f.node->advance();
    rd = f.node->get_ready();
    std::size_t pre_votes = 0;
    for (const auto& m : rd.messages_after_persist)
        pre_votes += m.type == message_type::pre_vote ? 1 : 0;
    CHECK(pre_votes >= 2);  // to nodes 1 and 3 (one round or more)
}

}  // TEST_SUITE
