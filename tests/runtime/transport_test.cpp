// asio_tcp_transport between two endpoints on loopback.

#include <doctest/doctest.h>

#include <asio.hpp>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "support.hpp"

using namespace craft;
using namespace std::chrono_literals;

namespace {

struct endpoint_pair {
    std::map<node_id, tcp_endpoint> peers{{1, {"127.0.0.1", test::free_port()}},
                                          {2, {"127.0.0.1", test::free_port()}}};
    test::capture_logger logs;
    std::mutex m;
    std::vector<message> got;  // received by node 2

    asio_tcp_transport::options opts(node_id id, std::uint64_t cluster = 7) {
        asio_tcp_transport::options o;
        o.id = id;
        o.cluster_id = cluster;
        o.listen = peers.at(id);
        o.peers = peers;
        o.peers.erase(id);
        o.backoff_min = 10ms;
        o.backoff_max = 50ms;
        return o;
    }
    std::function<void(message&&)> collect() {
        return [this](message&& msg) {
            std::lock_guard l(m);
            got.push_back(std::move(msg));
        };
    }
    std::size_t received() {
        std::lock_guard l(m);
        return got.size();
    }
    log_sink sink() {
        return [this](log_level l, std::string_view s) { logs.log(l, s); };
    }
};

message heartbeat(std::uint64_t k) {
    return {.type = message_type::heartbeat, .from = 1, .to = 2, .term = 1, .context = k};
}

}  // namespace

TEST_SUITE("runtime") {

TEST_CASE("transport: messages arrive in order, intact, and again after a reconnect") {
    endpoint_pair p;
    asio_tcp_transport a(p.opts(1)), b(p.opts(2));
    REQUIRE(a.start([](message&&) {}).ok());
    REQUIRE(b.start(p.collect()).ok());
    message big{.type = message_type::append, .from = 1, .to = 2, .term = 3};
    big.entries = {{3, 1, entry_type::normal, shared_bytes(std::string(100'000, 'x'))}};
    a.send(message(big));
    for (std::uint64_t k = 0; k < 1000; ++k) a.send(heartbeat(k));
    REQUIRE(test::eventually([&] { return p.received() == 1001; }));
    {
        std::lock_guard l(p.m);
        CHECK(p.got[0].entries == big.entries);
        for (std::uint64_t k = 0; k < 1000; ++k) CHECK(p.got[k + 1].context == k);
    }
    // The receiver goes away and comes back: the sender reconnects by itself.
    b.stop();
    REQUIRE(b.start(p.collect()).ok());
    REQUIRE(test::eventually([&] {
        a.send(heartbeat(5000));  // lost while the connection is down: Raft retransmits
        return p.received() > 1001;
    }));
}

TEST_CASE("transport: bursts of large messages from two threads arrive whole and in order") {
    // More than the socket takes at once: direct writes end part-way and the I/O thread
    // finishes them; frames span reads, and one is far larger than a read buffer.
    endpoint_pair p;
    asio_tcp_transport a(p.opts(1)), b(p.opts(2));
    REQUIRE(a.start([](message&&) {}).ok());
    REQUIRE(b.start(p.collect()).ok());
    REQUIRE(test::eventually([&] {  // connected: the bursts below go as direct writes
        a.send(heartbeat(1u << 20));
        return p.received() > 0;
    }));
    auto burst = [&](term_t from_thread) {
        for (std::uint64_t k = 0; k < 200; ++k) {
            message m{.type = message_type::append, .from = 1, .to = 2, .term = from_thread};
            m.index = k;
            const std::size_t size = k == 100 ? (5u << 20) : 1000 + 997 * k;
            m.entries = {{from_thread, k, entry_type::normal,
                          shared_bytes(std::string(size, static_cast<char>('a' + k % 26)))}};
            a.send(std::move(m));
        }
    };
    std::thread other(burst, 2);
    burst(1);
    other.join();
    auto appends = [&] {
        std::vector<message> out;
        std::lock_guard l(p.m);
        for (const auto& m : p.got)
            if (m.type == message_type::append) out.push_back(m);
        return out;
    };
    REQUIRE(test::eventually([&] { return appends().size() == 400; }));
    std::map<term_t, std::uint64_t> next;
    for (const auto& m : appends()) {
        CHECK(m.index == next[m.term]++);  // each thread's messages in its order
        REQUIRE(m.entries.size() == 1);
        const auto& d = m.entries[0].data;
        const std::size_t size = m.index == 100 ? (5u << 20) : 1000 + 997 * m.index;
        REQUIRE(d.size() == size);
        const auto want = static_cast<std::byte>('a' + m.index % 26);
        const auto bytes = d.bytes();
        CHECK(std::all_of(bytes.begin(), bytes.end(), [&](std::byte c) { return c == want; }));
    }
    CHECK(next[1] == 200);
    CHECK(next[2] == 200);
    CHECK(a.dropped(2) == 0);
}

TEST_CASE("transport: a large frame arriving in pieces costs buffers in proportion to it") {
    // Its read buffer grows geometrically with what has arrived, never by the header's claim
    // alone and never by a copy of everything on each small read.
    endpoint_pair p;
    asio_tcp_transport b(p.opts(2));
    REQUIRE(b.start(p.collect()).ok());
    const std::size_t size = 16u << 20;
    message m{.type = message_type::append, .from = 1, .to = 2, .term = 1};
    m.entries = {{1, 1, entry_type::normal, shared_bytes(std::string(size, 'z'))}};
    const std::string bytes = asio_tcp_transport::frame(asio_tcp_transport::handshake(7, 1, 2)) +
                              asio_tcp_transport::frame(cereal_codec::encode(m));
    asio::io_context io;
    asio::ip::tcp::socket s(io);
    s.connect({asio::ip::make_address("127.0.0.1"), p.peers.at(2).port});
    s.set_option(asio::ip::tcp::no_delay(true));
    const std::size_t half = bytes.size() / 2;
    asio::write(s, asio::buffer(bytes.data(), half));
    for (std::size_t at = half; at < bytes.size(); at += 128u << 10) {  // then in pieces
        std::this_thread::sleep_for(2ms);
        asio::write(s, asio::buffer(bytes.data() + at,
                                    std::min<std::size_t>(128u << 10, bytes.size() - at)));
    }
    REQUIRE(test::eventually([&] { return p.received() == 1; }));
    {
        std::lock_guard l(p.m);
        CHECK(p.got[0].entries == m.entries);
    }
    CHECK(b.stats().read_buffer_bytes < 4 * size);
}

TEST_CASE("transport: a full send queue drops new messages and counts them, never blocks") {
    endpoint_pair p;
    auto o = p.opts(1);
    o.max_queue_messages = 100;
    asio_tcp_transport a(o);  // node 2 never starts: nothing drains the queue
    REQUIRE(a.start([](message&&) {}).ok());
    const auto before = std::chrono::steady_clock::now();
    for (std::uint64_t k = 0; k < 1000; ++k) a.send(heartbeat(k));
    CHECK(std::chrono::steady_clock::now() - before < 1s);
    CHECK(a.dropped(2) == 900);
}

TEST_CASE("transport: a lost connection, and drops to a peer that stops reading, are reported") {
    endpoint_pair p;
    std::mutex m;
    std::vector<node_id> reports;
    auto count = [&] {
        std::lock_guard l(m);
        return reports.size();
    };
    asio_tcp_transport a(p.opts(1)), b(p.opts(2));
    a.on_unreachable([&](node_id id) {
        std::lock_guard l(m);
        reports.push_back(id);
    });
    REQUIRE(a.start([](message&&) {}).ok());
    REQUIRE(b.start(p.collect()).ok());
    REQUIRE(test::eventually([&] {
        a.send(heartbeat(1));
        return p.received() > 0;
    }));
    CHECK(count() == 0);
    b.stop();  // the connection goes down under the sender
    REQUIRE(test::eventually([&] {
        a.send(heartbeat(2));
        return count() > 0;
    }));
    {
        std::lock_guard l(m);
        CHECK(reports.front() == 2);
    }
    a.stop();

    // A peer that accepts and never reads: the socket fills, then the queue, then drops.
    auto o = p.opts(1);
    o.max_queue_messages = 4;
    asio_tcp_transport c(o);
    c.on_unreachable([&](node_id id) {
        std::lock_guard l(m);
        reports.push_back(id);
    });
    asio::io_context io;
    asio::ip::tcp::acceptor silent(io, {asio::ip::make_address("127.0.0.1"), p.peers.at(2).port});
    const auto before = count();
    REQUIRE(c.start([](message&&) {}).ok());
    message big{.type = message_type::append, .from = 1, .to = 2, .term = 3};
    big.entries = {{3, 1, entry_type::normal, shared_bytes(std::string(1 << 20, 'x'))}};
    REQUIRE(test::eventually([&] {
        c.send(message(big));
        return c.dropped(2) > 0;
    }));
    for (int k = 0; k < 20; ++k) c.send(message(big));  // more drops, in the same stall
    CHECK(test::eventually([&] { return count() == before + 1; }));
    std::this_thread::sleep_for(100ms);
    CHECK(count() == before + 1);  // once per stall, not once per drop
    c.stop();
}

TEST_CASE("transport: a peer of another cluster is refused and logged once") {
    endpoint_pair p;
    asio_tcp_transport a(p.opts(1, 99), p.sink());  // wrong cluster id, keeps reconnecting
    asio_tcp_transport b(p.opts(2), p.sink());
    REQUIRE(b.start(p.collect()).ok());
    REQUIRE(a.start([](message&&) {}).ok());
    for (int k = 0; k < 20; ++k) {
        a.send(heartbeat(static_cast<std::uint64_t>(k)));
        std::this_thread::sleep_for(20ms);
    }
    CHECK(test::eventually([&] { return b.rejected_connections() >= 3; }));
    CHECK(p.received() == 0);
    CHECK(p.logs.matching("cluster id 99").size() == 1);
}

TEST_CASE("transport: bad options are clear errors") {
    endpoint_pair p;
    auto o = p.opts(1);
    o.listen.host = "not-an-address";
    asio_tcp_transport a(o);
    auto st = a.start([](message&&) {});
    CHECK_FALSE(st.ok());
    CHECK(st.message().find("not-an-address") != std::string::npos);
    asio_tcp_transport b(p.opts(2)), c(p.opts(2));
    REQUIRE(b.start([](message&&) {}).ok());
    auto busy = c.start([](message&&) {});  // the port is taken
    CHECK_FALSE(busy.ok());
    CHECK(busy.message().find("cannot listen") != std::string::npos);
}

TEST_CASE("transport: a peer added while running is dialled; a moved one is reached anew") {
    endpoint_pair p;
    auto o1 = p.opts(1), o2 = p.opts(2);
    o1.peers.clear();  // node 1 starts knowing nobody...
    o2.peers.clear();  // ...and nobody dials it (a handshake would introduce node 2)
    asio_tcp_transport a(o1);
    asio_tcp_transport b(o2);
    REQUIRE(a.start([](message&&) {}).ok());
    REQUIRE(b.start(p.collect()).ok());
    a.send(heartbeat(1));  // unknown peer: dropped, never queued
    a.set_peer(2, p.peers.at(2));
    REQUIRE(test::eventually([&] {
        a.send(heartbeat(2));
        return p.received() > 0;
    }));
    {
        std::lock_guard l(p.m);
        CHECK(p.got.front().context == 2);
    }
    // Node 2 moves to another port: node 1 learns it, and reaches it there once the old
    // connection is gone.
    b.stop();
    const tcp_endpoint moved{"127.0.0.1", test::free_port()};
    auto o2b = o2;
    o2b.listen = moved;
    asio_tcp_transport b2(o2b);
    REQUIRE(b2.start(p.collect()).ok());
    a.set_peer(2, moved);
    const auto before = p.received();
    REQUIRE(test::eventually([&] {
        a.send(heartbeat(3));
        return p.received() > before;
    }));
    a.set_peer(1, moved);  // its own id: ignored
    CHECK(a.dropped(2) == 0);
}

TEST_CASE(
    "transport: a node of the cluster missing from the address book is answered where "
    "its handshake says") {
    endpoint_pair p;
    auto o2 = p.opts(2);
    o2.peers.clear();  // node 2 has never heard of node 1 (added since, say)
    test::capture_logger logs2;
    asio_tcp_transport a(p.opts(1), p.sink()),
        b(o2, [&](log_level l, std::string_view s) { logs2.log(l, s); });
    std::atomic<int> at_a{0};
    REQUIRE(b.start(p.collect()).ok());
    REQUIRE(a.start([&](message&&) { ++at_a; }).ok());
    a.send(heartbeat(1));
    REQUIRE(test::eventually([&] { return p.received() == 1; }));
    CHECK(logs2
              .matching("node 1 (at " + p.peers.at(1).to_string() +
                        ", not in the address book) connected: answering there")
              .size() == 1);
    b.send(message{.type = message_type::heartbeat_response, .from = 2, .to = 1, .term = 1});
    CHECK(test::eventually([&] { return at_a == 1; }));
    CHECK(b.rejected_connections() == 0);
}

TEST_CASE("transport: nodes missing from the address book are answered up to a limit") {
    endpoint_pair p;
    auto o2 = p.opts(2);
    o2.peers.clear();
    o2.max_unlisted_peers = 2;
    test::capture_logger logs2;
    asio_tcp_transport b(o2, [&](log_level l, std::string_view s) { logs2.log(l, s); });
    REQUIRE(b.start(p.collect()).ok());
    // Strangers of the cluster, each giving an address where nothing listens (so dialling
    // them fails and is retried: the place stays taken).
    asio::io_context io;
    std::vector<asio::ip::tcp::socket> socks;
    std::map<node_id, tcp_endpoint> gave;
    auto hello = [&](node_id from) {
        auto& s = socks.emplace_back(io);
        s.connect({asio::ip::make_address("127.0.0.1"), p.peers.at(2).port});
        gave[from] = {"127.0.0.1", test::free_port()};
        asio::write(s, asio::buffer(asio_tcp_transport::frame(
                           asio_tcp_transport::handshake(7, from, 2, gave[from].to_string()))));
    };
    hello(5);
    hello(6);
    REQUIRE(test::eventually([&] {
        return logs2.matching("not in the address book) connected: answering there").size() == 2;
    }));
    hello(8);
    CHECK(test::eventually([&] {
        return logs2
                   .matching(
                       "unknown node id 8: 2 nodes not in the address book are answered "
                       "already (transport option max_unlisted_peers)")
                   .size() == 1;
    }));
    CHECK(b.rejected_connections() == 1);
    // A node the address book lists (as the node does once the log names it, at the address
    // it gave) takes no place.
    b.set_peer(5, gave.at(5));
    hello(8);
    CHECK(test::eventually([&] {
        return logs2.matching("node 8 (at ").size() == 1;  // answered now
    }));
    CHECK(b.rejected_connections() == 1);
}

TEST_CASE("transport: handshakes of another version, or without a parsable address, are named") {
    const std::string h = asio_tcp_transport::handshake(7, 1, 2, "10.0.0.1:7001");
    const auto f = asio_tcp_transport::parse_handshake(h);
    REQUIRE(f);
    CHECK(f->address == "10.0.0.1:7001");
    CHECK(f->from == 1);
    CHECK(f->to == 2);
    CHECK(h.size() == asio_tcp_transport::handshake_size + 13);
    // Version 1 (30 bytes, no address) still parses as far as its version.
    std::string v1 = h.substr(0, 30);
    v1[4] = 1;
    REQUIRE(asio_tcp_transport::parse_handshake(v1));
    CHECK(asio_tcp_transport::parse_handshake(v1)->version == 1);
    // An address length that disagrees with the payload is no handshake.
    CHECK_FALSE(asio_tcp_transport::parse_handshake(h + "x"));
    CHECK_FALSE(asio_tcp_transport::parse_handshake(h.substr(0, h.size() - 1)));
    CHECK_FALSE(asio_tcp_transport::parse_handshake(h.substr(0, 30)));
    // A version-1 peer is refused, naming both versions.
    endpoint_pair p;
    test::capture_logger logs2;
    asio_tcp_transport b(p.opts(2), [&](log_level l, std::string_view s) { logs2.log(l, s); });
    REQUIRE(b.start(p.collect()).ok());
    asio::io_context io;
    asio::ip::tcp::socket s(io);
    s.connect({asio::ip::make_address("127.0.0.1"), p.peers.at(2).port});
    asio::write(s, asio::buffer(asio_tcp_transport::frame(v1)));
    CHECK(test::eventually(
        [&] { return logs2.matching("wire version 1, this node speaks 2").size() == 1; }));
}

TEST_CASE("transport: a connection the peer refused is seen closed and made again at once") {
    endpoint_pair p;
    auto o1 = p.opts(1), o2 = p.opts(2);
    o1.advertise = "nowhere";  // node 2 refuses node 1's handshake: unknown, and no address
    o2.peers.clear();
    test::capture_logger logs2;
    asio_tcp_transport a(o1, p.sink()),
        b(o2, [&](log_level l, std::string_view s) { logs2.log(l, s); });
    REQUIRE(b.start(p.collect()).ok());
    REQUIRE(a.start([](message&&) {}).ok());
    REQUIRE(test::eventually([&] { return b.rejected_connections() >= 1; }));
    CHECK(test::eventually([&] {  // (counted just before it is logged)
        return !logs2.matching("unknown node id 1 (its address 'nowhere': no port").empty();
    }));
    b.set_peer(1, p.peers.at(1));  // node 2 learns of node 1
    // Node 1 noticed the refusal without writing anything, and connects again by itself...
    REQUIRE(test::eventually([&] { return !p.logs.matching("connected to node 2").empty(); }));
    CHECK(p.logs.matching("closed by the peer").size() == 1);
    // ...so the first message it sends arrives (not written to the refused connection).
    a.send(heartbeat(1));
    CHECK(test::eventually([&] { return p.received() == 1; }));
}

TEST_CASE("transport: endpoints print and parse as host:port") {
    CHECK(tcp_endpoint{"10.0.0.1", 7001}.to_string() == "10.0.0.1:7001");
    CHECK(tcp_endpoint{"::1", 7001}.to_string() == "[::1]:7001");
    CHECK(tcp_endpoint::parse("[::1]:7001") == tcp_endpoint{"::1", 7001});
    CHECK(tcp_endpoint::parse("10.1.2.3:80") == tcp_endpoint{"10.1.2.3", 80});
    std::string name;
    CHECK_FALSE(tcp_endpoint::parse("db-1.example:80", &name));  // never resolved: refused
    CHECK(name ==
          "'db-1.example:80': 'db-1.example' is not an IP address (names are not "
          "resolved) (expected host:port)");
    std::string why;
    for (const char* bad : {"", "host", ":7001", "h:", "h:1", "1.2.3.4:0", "1.2.3.4:65536",
                            "1.2.3.4:7x", "1.2.3.4:-1", "[1.2.3.4:1"}) {
        CHECK_FALSE(tcp_endpoint::parse(bad, &why));
        CHECK(why.find("expected host:port") != std::string::npos);
    }
    CHECK_FALSE(tcp_endpoint::parse("1.2.3.4:0", &why));
    CHECK(why == "'1.2.3.4:0': port out of range (expected host:port)");
}

TEST_CASE("transport: a peer list parses as id=host:port,...; a wrong item is named") {
    const auto book = parse_peer_list("1=10.0.0.1:7001,2=[::1]:7002");
    REQUIRE(book);
    CHECK(*book == std::map<node_id, tcp_endpoint>{{1, {"10.0.0.1", 7001}}, {2, {"::1", 7002}}});
    REQUIRE(parse_peer_list(""));
    CHECK(parse_peer_list("")->empty());
    std::string why;
    CHECK_FALSE(parse_peer_list("1=10.0.0.1:1,10.0.0.2:2", &why));
    CHECK(why == "'10.0.0.2:2': not id=host:port (expected id=host:port,...)");
    CHECK_FALSE(parse_peer_list("0=10.0.0.1:1", &why));
    CHECK(why == "'0=10.0.0.1:1': bad node id (expected a positive integer)");
    CHECK_FALSE(parse_peer_list("x=10.0.0.1:1", &why));
    CHECK(why == "'x=10.0.0.1:1': bad node id (expected a positive integer)");
    CHECK_FALSE(parse_peer_list("1=10.0.0.1:1,1=10.0.0.2:2", &why));
    CHECK(why == "node 1 is given twice (expected one address each)");
    CHECK_FALSE(parse_peer_list("1=10.0.0.1:1,2=10.0.0.2:99999", &why));
    CHECK(why == "node 2: '10.0.0.2:99999': port out of range (expected host:port)");
    for (const char* bad : {"1=10.0.0.1:1,", ",1=10.0.0.1:1", "1=10.0.0.1:1,,2=10.0.0.2:2", ","}) {
        CHECK_FALSE(parse_peer_list(bad, &why));
        CHECK(why == "an empty item (expected id=host:port,... without a comma too many)");
    }
}

TEST_CASE(
    "codec: a snapshot's member addresses travel in a trailer; messages without read as before") {
    message m{.type = message_type::snapshot, .from = 1, .to = 2, .term = 3};
    m.snap.index = 10;
    m.snap.term = 2;
    m.snap.conf.voters = {1, 2, 3};
    const std::string plain = cereal_codec::encode(m);
    m.snap.conf.addresses = {{3, "10.0.0.3:7003"}};
    const std::string with = cereal_codec::encode(m);
    CHECK(with.substr(0, plain.size()) == plain);  // version 1's bytes, then the trailer
    auto d = cereal_codec::decode(with);
    REQUIRE(d);
    CHECK(d->snap == m.snap);
    REQUIRE(cereal_codec::decode(plain));
    CHECK(cereal_codec::decode(plain)->snap.conf.addresses.empty());
    std::string why;
    for (std::size_t n = plain.size() + 1; n < with.size(); ++n)
        CHECK_FALSE(cereal_codec::decode(with.substr(0, n), &why));
    CHECK_FALSE(cereal_codec::decode(plain + std::string(8, '\0'), &why));
    CHECK(why == "an empty address trailer");
}

}  // TEST_SUITE
