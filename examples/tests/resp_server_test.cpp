// The examples' RESP server against clients that misbehave: one that never reads its replies,
// and more clients than it takes. Loopback only; every wait is bounded.

#include <doctest/doctest.h>

#include <asio.hpp>

#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/resp_server.hpp"

using namespace std::chrono_literals;
namespace resp = craft::examples::resp;

namespace {

/// A server on a free loopback port, run on its own thread; `handler` answers commands.
struct running_server {
    asio::io_context io;
    std::optional<resp::server> srv;
    std::thread thread;

    running_server(resp::server::options o, resp::server::handler h,
                   resp::server::classifier is_write = {}) {
        o.host = "127.0.0.1";
        o.port = 0;
        srv.emplace(io, std::move(o), std::move(h), std::move(is_write));
        srv->start();
        thread = std::thread([this] { io.run(); });
    }
    ~running_server() {
        asio::post(io, [this] {
            srv->stop();
            io.stop();
        });
        thread.join();
    }
    [[nodiscard]] std::uint16_t port() const { return srv->port(); }
};

/// Reads until the server closes the connection or `limit` passes; the bytes read, and
/// whether it closed.
std::pair<std::string, bool> read_until_closed(asio::ip::tcp::socket& s,
                                               std::chrono::milliseconds limit) {
    std::string got;
    s.non_blocking(true);
    const auto end = std::chrono::steady_clock::now() + limit;
    char buf[65536];
    while (std::chrono::steady_clock::now() < end) {
        std::error_code ec;
        const auto n = s.read_some(asio::buffer(buf), ec);
        if (ec == asio::error::would_block) {
            std::this_thread::sleep_for(2ms);
            continue;
        }
        if (ec) return {got, true};  // eof or reset
        got.append(buf, n);
    }
    return {got, false};
}

asio::ip::tcp::socket connect(asio::io_context& io, std::uint16_t port) {
    asio::ip::tcp::socket s(io);
    s.connect({asio::ip::make_address("127.0.0.1"), port});
    return s;
}

}  // namespace

TEST_CASE("resp server: a client that never reads its replies is closed past max_unread_bytes") {
    // Replies come later from another thread, as the Raft node's do: every command is run
    // before any reply is held, so pausing reading alone cannot bound them.
    std::mutex m;
    std::vector<resp::server::reply_fn> waiting;
    resp::server::options o;
    o.max_output_bytes = 64 << 10;
    o.max_unread_bytes = 1 << 20;
    running_server rs(o, [&](std::vector<std::string>&, resp::server::reply_fn reply) {
        std::lock_guard l(m);
        waiting.push_back(std::move(reply));
    });
    auto commands_run = [&](std::size_t n) {  // within 5 s
        for (int k = 0; k < 500; ++k) {
            {
                std::lock_guard l(m);
                if (waiting.size() == n) return true;
            }
            std::this_thread::sleep_for(10ms);
        }
        return false;
    };
    asio::io_context io;
    auto s = connect(io, rs.port());
    std::string many;
    for (int k = 0; k < 200; ++k) many += "*1\r\n$3\r\nGET\r\n";
    asio::write(s, asio::buffer(many));
    REQUIRE(commands_run(200));
    // 200 replies of 512 KiB (100 MiB) for a client that reads none of them.
    {
        std::lock_guard l(m);
        for (auto& reply : waiting) reply(resp::bulk(std::string(512 << 10, 'x')));
    }
    auto [got, closed] = read_until_closed(s, 10s);
    CHECK(closed);
    // What the server held (1 MiB at most) and the kernel's socket buffers took (a few MiB
    // on loopback), not all 100 MiB.
    CHECK(got.size() < (16u << 20));
    // Another client is served as before.
    auto t = connect(io, rs.port());
    asio::write(t, asio::buffer(std::string("*1\r\n$3\r\nGET\r\n")));
    REQUIRE(commands_run(201));
    {
        std::lock_guard l(m);
        waiting.back()(resp::simple("OK"));
    }
    std::string ok(5, '\0');
    asio::read(t, asio::buffer(ok));
    CHECK(ok == "+OK\r\n");
}

TEST_CASE("resp server: past max_clients a new client is told so and closed") {
    resp::server::options o;
    o.max_clients = 2;
    running_server rs(o, [](std::vector<std::string>&, resp::server::reply_fn reply) {
        reply(resp::simple("PONG"));
    });
    asio::io_context io;
    auto ping = [](asio::ip::tcp::socket& s) {
        asio::write(s, asio::buffer(std::string("*1\r\n$4\r\nPING\r\n")));
        std::string r(7, '\0');
        asio::read(s, asio::buffer(r));
        return r;
    };
    auto a = connect(io, rs.port());
    auto b = connect(io, rs.port());
    CHECK(ping(a) == "+PONG\r\n");
    CHECK(ping(b) == "+PONG\r\n");
    auto c = connect(io, rs.port());
    auto [got, closed] = read_until_closed(c, 5s);
    CHECK(got == "-ERR max number of clients reached\r\n");
    CHECK(closed);
    CHECK(ping(a) == "+PONG\r\n");  // the others are served on
    // One leaves: a new client takes its place (once the server has seen it go).
    a.close();
    bool served = false;
    for (int k = 0; k < 100 && !served; ++k) {
        auto d = connect(io, rs.port());
        asio::write(d, asio::buffer(std::string("*1\r\n$4\r\nPING\r\n")));
        auto [r, gone] = read_until_closed(d, 200ms);
        served = r == "+PONG\r\n";
    }
    CHECK(served);
}

TEST_CASE(
    "resp server: a write answered TIMEOUT holds later writes until its handler answers, "
    "or answers them unrun") {
    // Writes named "now" are answered at once; the others wait for the test.
    std::mutex m;
    std::vector<std::pair<std::string, resp::server::reply_fn>> run;
    resp::server::options o;
    o.command_timeout = 100ms;
    running_server rs(
        o,
        [&](std::vector<std::string>& args, resp::server::reply_fn reply) {
            std::lock_guard l(m);
            run.emplace_back(args.at(1), reply);
            if (args.at(1).starts_with("now")) reply(resp::simple("OK"));
        },
        [](const std::vector<std::string>&) { return true; });  // every command writes
    auto runs = [&] {
        std::lock_guard l(m);
        return run.size();
    };
    asio::io_context cio;
    auto c = connect(cio, rs.port());
    auto set = [](const std::string& name) {
        return "*2\r\n$3\r\nSET\r\n$" + std::to_string(name.size()) + "\r\n" + name + "\r\n";
    };
    auto next_reply = [&](std::size_t n) {  // within a sweep or two of the 100 ms
        std::string r(n, '\0');
        asio::read(c, asio::buffer(r));
        return r;
    };
    const std::string timeout =
        "-TIMEOUT no answer from the cluster in time (the command may still take effect)\r\n";
    const std::string unrun =
        "-TIMEOUT not run: the outcome of an earlier write is still unknown (send it again)\r\n";
    asio::write(c, asio::buffer(set("a") + set("now1")));
    CHECK(next_reply(timeout.size()) == timeout);  // "a": its handler has not answered
    // "now1" waits its turn: "a" may still take effect. Past its own deadline it is answered
    // without being run.
    CHECK(next_reply(unrun.size()) == unrun);
    CHECK(runs() == 1);
    // Once "a" is answered at last (its client was told already), writes run again.
    {
        std::lock_guard l(m);
        run[0].second(resp::simple("OK"));
    }
    asio::write(c, asio::buffer(set("now2")));
    CHECK(next_reply(5) == "+OK\r\n");
    REQUIRE(runs() == 2);
    std::lock_guard l(m);
    CHECK(run[1].first == "now2");
}
