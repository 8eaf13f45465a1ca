// Shared by the runtime tests: free loopback ports, a counting state machine, a logger that
// keeps its lines, and bounded waits.
#pragma once

#include <craft/node.hpp>

#include <asio.hpp>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace craft::test {

/// A loopback port that was free a moment ago (bound, then closed). Drawn at random below
/// Linux's ephemeral range (32768-60999): a port the kernel hands out for binding to 0 is one
/// it may also give, a moment later, to another test process's outgoing connection as its
/// source port, before this test listens on it (ctest runs tests in parallel). Only if
/// nothing there binds does it fall back to the kernel's choice. A port it returned before
/// is never returned again by this process (three nodes must not draw the same one).
inline std::uint16_t free_port() {
    static std::mutex m;
    static std::set<std::uint16_t> given;
    static std::mt19937 rng(std::random_device{}());
    std::lock_guard l(m);
    std::uniform_int_distribution<int> pick(20000, 32767);
    asio::io_context io;
    for (int attempt = 0; attempt < 200; ++attempt) {
        const auto port = static_cast<std::uint16_t>(pick(rng));
        if (given.count(port)) continue;
        const asio::ip::tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port);
        asio::ip::tcp::acceptor a(io);
        std::error_code ec;
        a.open(ep.protocol(), ec);
        if (!ec) a.bind(ep, ec);
        if (ec) continue;
        given.insert(port);
        return port;
    }
    asio::ip::tcp::acceptor a(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    return a.local_endpoint().port();
}

/// Adds each command (a decimal number) to a total; returns the total after each.
struct counter {
    long total = 0;
    index_t last = 0;
    std::vector<long> apply(std::span<const entry> batch) {
        std::vector<long> out;
        out.reserve(batch.size());
        for (const auto& e : batch) {
            total += std::stol(std::string(e.data.str()));
            last = e.index;
            out.push_back(total);
        }
        return out;
    }
    status save_snapshot(snapshot_writer& w) const {
        return w.add_file("total", std::to_string(total));
    }
    status load_snapshot(snapshot_reader& r) {
        auto t = r.read_file("total");
        if (!t) return status::error("counter: no total in the snapshot");
        total = std::stol(*t);
        return {};
    }
};

/// Keeps every line (thread-safe); prints them too when CRAFT_TEST_LOG is set.
struct capture_logger {
    struct lines {
        std::mutex m;
        std::vector<std::string> all;
        std::function<void(std::string_view)> hook;  ///< Also sees each line (set it first).
    };
    std::shared_ptr<lines> out = std::make_shared<lines>();
    void log(log_level l, std::string_view line) {
        if (std::getenv("CRAFT_TEST_LOG")) stderr_logger{log_level::debug}.log(l, line);
        {
            std::lock_guard g(out->m);
            out->all.emplace_back(line);
        }
        if (out->hook) out->hook(line);
    }
    [[nodiscard]] std::vector<std::string> matching(std::string_view needle) const {
        std::lock_guard g(out->m);
        std::vector<std::string> r;
        for (const auto& s : out->all)
            if (s.find(needle) != std::string::npos) r.push_back(s);
        return r;
    }
};

/// The default policies with the capturing logger.
struct test_policies : default_policies {
    using logger = capture_logger;
};

/// Polls `pred` every 5 ms until it holds or `limit` passes.
inline bool eventually(const std::function<bool()>& pred,
                       std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
        if (pred()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return pred();
}

/// Options for node `id` of a loopback cluster, with short timers for tests.
/// Addresses on free loopback ports for nodes 1..n.
inline std::map<node_id, tcp_endpoint> loopback_peers(node_id n) {
    std::map<node_id, tcp_endpoint> peers;
    for (node_id id = 1; id <= n; ++id) peers[id] = {"127.0.0.1", free_port()};
    return peers;
}

inline node_options loopback_options(node_id id, const std::map<node_id, tcp_endpoint>& peers,
                                     const std::filesystem::path& dir) {
    node_options o;
    o.id = id;
    o.cluster_id = 7;
    o.peers = peers;
    o.data_dir = dir / std::to_string(id);
    o.tick = std::chrono::milliseconds(10);
    o.heartbeat_interval = std::chrono::milliseconds(50);
    o.election_timeout = std::chrono::milliseconds(300);
    o.read_timeout = std::chrono::milliseconds(1000);
    return o;
}

}  // namespace craft::test
