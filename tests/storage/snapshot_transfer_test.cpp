// InstallSnapshot in chunks, end to end between two in-memory snapshot stores: lost and
// repeated chunks, a broken transfer that resumes, and malformed streams.

#include <doctest/doctest.h>

#include <craft/detail/snapshot_transfer.hpp>
#include <craft/testing/memory_snapshot_store.hpp>

#include <optional>
#include <string>
#include <vector>

using namespace craft;
using transfer = detail::snapshot_transfer<testing::memory_snapshot_store>;

namespace {

std::string pattern(std::size_t n, char seed) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + (i * 7) % 61);
    return s;
}

snapshot_meta meta50() {
    snapshot_meta m{50, 3, {}};
    m.conf.voters = {1, 2, 3};
    return m;
}

/// A leader store holding snapshot 50: files "a" (5000 bytes), "empty" and "b" (1234 bytes).
void fill(testing::memory_snapshot_store& s, char seed = 'A') {
    auto sink = s.begin(meta50());
    REQUIRE(sink->add_file("a", pattern(5000, seed)).ok());
    REQUIRE(sink->open_file("empty").ok());
    REQUIRE(sink->add_file("b", pattern(1234, static_cast<char>(seed + 1))).ok());
    REQUIRE(sink->commit().ok());
}

message offer_to_2() {
    return {.type = message_type::snapshot, .from = 1, .to = 2, .term = 3, .snap = meta50()};
}

/// Delivers messages between the two ends until nothing moves; `keep` may drop or repeat.
struct wire {
    transfer& leader;
    transfer& follower;
    std::optional<message> complete;
    std::vector<message> chunks_seen;

    template <class Keep>
    void run(Keep&& keep, int max_rounds = 200) {
        for (int round = 0; round < max_rounds && !complete; ++round) {
            auto to_f = leader.take_messages();
            for (auto& m : to_f) {
                chunks_seen.push_back(m);
                for (int copies = keep(m); copies > 0; --copies)
                    if (auto c = follower.on_chunk(m)) complete = c;
            }
            auto to_l = follower.take_messages();
            for (auto& m : to_l) leader.on_ack(m);
            if (to_f.empty() && to_l.empty()) leader.tick();
        }
    }
};

}  // namespace

TEST_SUITE("storage") {

TEST_CASE("snapshot transfer: lost and repeated chunks still deliver an identical snapshot") {
    testing::memory_snapshot_store ls, fs;
    fill(ls);
    transfer lead(1, ls, {.chunk_bytes = 1000, .window = 2, .resend_ticks = 2});
    transfer follow(2, fs);
    lead.offer(offer_to_2());
    wire l{lead, follow, {}, {}};
    int n = 0;
    // Drop every fifth chunk, deliver every third twice.
    l.run([&](const message&) { return (++n % 5 == 0) ? 0 : (n % 3 == 0 ? 2 : 1); });
    REQUIRE(l.complete);
    CHECK(l.complete->type == message_type::snapshot);
    CHECK_FALSE(l.complete->snap_partial);
    CHECK(l.complete->snap == meta50());
    auto reports = lead.take_reports();
    REQUIRE(reports.size() == 1);
    CHECK(reports[0].peer == 2);
    CHECK(reports[0].ok);
    auto r = fs.open(50);
    REQUIRE(r);
    CHECK(r->meta() == meta50());
    CHECK(r->files().size() == 3);
    CHECK(r->read_file("a") == pattern(5000, 'A'));
    CHECK(r->read_file("empty") == std::string());
    CHECK(r->read_file("b") == pattern(1234, 'B'));
    CHECK(follow.error().ok());
}

TEST_CASE("snapshot transfer: a broken transfer resumes where it stopped") {
    testing::memory_snapshot_store ls, fs;
    fill(ls);
    transfer lead(1, ls, {.chunk_bytes = 1000, .window = 1});
    transfer follow(2, fs);
    lead.offer(offer_to_2());
    wire l{lead, follow, {}, {}};
    l.run([](const message&) { return 1; }, 4);  // hello and a few chunks, then the break
    REQUIRE_FALSE(l.complete);
    lead.stop_sending();  // the leader gave up (or lost leadership and won it back)
    lead.take_messages();
    lead.offer(offer_to_2());
    l.chunks_seen.clear();
    l.run([](const message&) { return 1; });
    REQUIRE(l.complete);
    // After the new hello, the first chunk with data starts where the follower stopped.
    std::optional<std::uint64_t> first_data;
    for (const auto& m : l.chunks_seen)
        if (!m.snap_data.empty()) {
            first_data = m.snap_offset;
            break;
        }
    REQUIRE(first_data);
    CHECK(*first_data >= 2000);
    CHECK(fs.open(50)->read_file("a") == pattern(5000, 'A'));
}

TEST_CASE("snapshot transfer: another leader's snapshot of the same index starts over") {
    testing::memory_snapshot_store ls1, ls2, fs;
    fill(ls1, 'A');
    fill(ls2, 'a');  // same index and term, different bytes
    transfer lead1(1, ls1, {.chunk_bytes = 1000, .window = 1});
    transfer lead2(1, ls2, {.chunk_bytes = 1000, .window = 1});
    transfer follow(2, fs);
    lead1.offer(offer_to_2());
    wire a{lead1, follow, {}, {}};
    a.run([](const message&) { return 1; }, 4);
    lead2.offer(offer_to_2());
    wire b{lead2, follow, {}, {}};
    b.run([](const message&) { return 1; });
    REQUIRE(b.complete);
    CHECK(fs.open(50)->read_file("a") == pattern(5000, 'a'));  // not a mix of the two
}

TEST_CASE("snapshot transfer: a follower that restarts mid-transfer gets it from the start") {
    testing::memory_snapshot_store ls, fs;
    fill(ls);
    transfer lead(1, ls, {.chunk_bytes = 500, .window = 2, .resend_ticks = 2});
    auto follow = std::make_unique<transfer>(2, fs);
    lead.offer(offer_to_2());
    wire w1{lead, *follow, {}, {}};
    w1.run([](const message&) { return 1; }, 5);
    REQUIRE_FALSE(w1.complete);
    REQUIRE(lead.sending_to(2));
    follow = std::make_unique<transfer>(2, fs);  // restarted: the partial copy is gone
    wire w2{lead, *follow, {}, {}};
    w2.run([](const message&) { return 1; });
    REQUIRE(w2.complete);
    CHECK(fs.open(50)->read_file("a") == pattern(5000, 'A'));
    CHECK(fs.open(50)->read_file("b") == pattern(1234, 'B'));
    // A chunk of it repeated after the install is answered and changes nothing.
    auto stale = w2.chunks_seen.back();
    CHECK_FALSE(follow->on_chunk(stale));
    auto acks = follow->take_messages();
    REQUIRE(acks.size() == 1);
    CHECK(acks[0].type == message_type::snapshot_ack);
    CHECK(fs.list().size() == 1);
}

TEST_CASE("snapshot transfer: a malformed stream is refused without storing anything") {
    testing::memory_snapshot_store fs;
    transfer follow(2, fs);
    message hello{.type = message_type::snapshot,
                  .from = 1,
                  .to = 2,
                  .term = 3,
                  .context = 77,
                  .snap = meta50(),
                  .snap_partial = true};
    CHECK_FALSE(follow.on_chunk(hello));
    std::string bad;
    SUBCASE("a manifest length far too large") {
        core::detail::put_u64(bad, 1ull << 40);
    }
    SUBCASE("a file name with a slash") {
        std::string body;
        core::detail::put_u64(body, 1);
        core::detail::put_u64(body, 6);
        body += "../etc";
        core::detail::put_u64(body, 0);
        core::detail::put_u64(body, 0);
        core::detail::put_u64(bad, body.size() + 8);
        bad += body;
    }
    SUBCASE("file bytes that fail their checksum") {
        std::string body;
        core::detail::put_u64(body, 1);
        core::detail::put_u64(body, 1);
        body += "f";
        core::detail::put_u64(body, 3);
        core::detail::put_u64(body, 12345);
        core::detail::put_u64(bad, body.size() + 8);
        bad += body + "xyz";
    }
    message chunk = hello;
    chunk.snap_data = shared_bytes(std::string_view(bad));
    CHECK_FALSE(follow.on_chunk(chunk));
    auto acks = follow.take_messages();
    REQUIRE(acks.size() == 2);
    CHECK(acks.back().type == message_type::snapshot_ack);
    CHECK(acks.back().reject);
    CHECK(follow.error().ok());  // the leader's fault: refused, not a reason to stop
    CHECK_FALSE(follow.last_problem().ok());
    CHECK(fs.list().empty());
}

}  // TEST_SUITE
