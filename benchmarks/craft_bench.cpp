// craft_bench: end-to-end throughput and latency of a craft cluster, the workload shape of
// NuRaft's raft_bench. N nodes run in this process over real loopback TCP; C closed-loop client
// threads each propose a fixed-size payload to the leader and wait for its result; a trivial
// state machine applies it. Prints a progress line each second, then a table (or, with
// --json, one JSON object).
//
//   craft_bench --nodes 3 --clients 64 --payload 256 --seconds 10 --log leveldb
//   craft_bench --clients 1 --log memory --json
//
// Figures, never pass/fail: see benchmarks/README.md for the latest ones.

#include <craft/node.hpp>
#include <craft/testing/memory_log_store.hpp>
#include <craft/testing/memory_snapshot_store.hpp>

#include <CLI/CLI.hpp>
#include <asio.hpp>
#include <nlohmann/json.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace craft;
using clock_type = std::chrono::steady_clock;

struct bench_options {
    int nodes = 3;
    int clients = 64;
    std::size_t payload = 256;
    double seconds = 10;
    double warmup = 1;
    std::string log = "leveldb";
    bool no_sync = false;
    bool json = false;
};

/// Counts what it applies; a snapshot holds the count.
struct sink {
    std::uint64_t applied = 0;
    void apply(std::span<const entry> batch) { applied += batch.size(); }
    status save_snapshot(snapshot_writer& w) const {
        return w.add_file("applied", std::to_string(applied));
    }
    status load_snapshot(snapshot_reader& r) {
        applied = std::stoull(r.read_file("applied").value_or("0"));
        return {};
    }
};

struct leveldb_policies : default_policies {
    using logger = stderr_logger;
};
struct memory_policies : default_policies {
    using log_store = testing::memory_log_store;
    using snapshot_store = testing::memory_snapshot_store;
};

std::uint16_t free_port() {
    asio::io_context io;
    asio::ip::tcp::acceptor a(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    return a.local_endpoint().port();
}

struct result {
    std::uint64_t ops = 0, failed = 0;
    double seconds = 0, p50 = 0, p99 = 0, p999 = 0, max = 0, cpu = 0, rss_mb = 0;
};

double percentile(std::vector<std::uint32_t>& v, double q) {
    if (v.empty()) return 0;
    auto k = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1));
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return v[k];
}

double cpu_seconds() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

template <class Policies>
int run(const bench_options& b) {
    using node_t = basic_node<sink, Policies>;
    const auto dir =
        std::filesystem::temp_directory_path() / ("craft_bench." + std::to_string(::getpid()));
    std::map<node_id, tcp_endpoint> peers;
    for (int i = 1; i <= b.nodes; ++i) peers[static_cast<node_id>(i)] = {"127.0.0.1", free_port()};
    std::vector<sink> sms(static_cast<std::size_t>(b.nodes) + 1);
    std::vector<std::unique_ptr<node_t>> nodes(static_cast<std::size_t>(b.nodes) + 1);
    for (auto& [id, ep] : peers) {
        node_options o;
        o.id = id;
        o.peers = peers;
        o.data_dir = dir / std::to_string(id);
        o.sync = !b.no_sync;
        nodes[id] = std::make_unique<node_t>(o, sms[id], stderr_logger{log_level::warn});
        if (auto st = nodes[id]->start(); !st) {
            std::cerr << "craft_bench: " << st.message() << "\n";
            return 1;
        }
    }
    auto leader = [&]() -> node_t* {
        for (int i = 1; i <= b.nodes; ++i)
            if (nodes[static_cast<std::size_t>(i)]->is_leader())
                return nodes[static_cast<std::size_t>(i)].get();
        return nullptr;
    };
    const auto elect_by = clock_type::now() + std::chrono::seconds(10);
    while (!leader() && clock_type::now() < elect_by)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (!leader()) {
        std::cerr << "craft_bench: no leader within 10 s\n";
        return 1;
    }

    const shared_bytes payload(std::string(b.payload, 'x'));
    std::atomic<bool> measuring{false}, done{false};
    std::atomic<std::uint64_t> ops{0}, failed{0};
    std::vector<std::vector<std::uint32_t>> lat(static_cast<std::size_t>(b.clients));
    std::vector<std::thread> clients;
    for (int c = 0; c < b.clients; ++c)
        clients.emplace_back([&, c] {
            auto& mine = lat[static_cast<std::size_t>(c)];
            mine.reserve(1 << 16);
            while (!done) {
                auto* l = leader();
                if (!l) {
                    std::this_thread::sleep_for(std::chrono::milliseconds(1));
                    continue;
                }
                const auto t0 = clock_type::now();
                auto r = l->propose(payload).get();
                const auto us =
                    std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() - t0);
                if (!measuring) continue;
                if (!r.ok()) {
                    ++failed;
                    continue;
                }
                ++ops;
                mine.push_back(static_cast<std::uint32_t>(us.count()));
            }
        });

    std::this_thread::sleep_for(std::chrono::duration<double>(b.warmup));
    const double cpu0 = cpu_seconds();
    const auto t0 = clock_type::now();
    measuring = true;
    std::uint64_t last = 0;
    for (int s = 1; s <= static_cast<int>(b.seconds); ++s) {
        std::this_thread::sleep_until(t0 + std::chrono::seconds(s));
        const auto now_ops = ops.load();
        if (!b.json)
            std::fprintf(stderr, "\r  %3d s  %12llu ops  %10llu ops/s", s,
                         static_cast<unsigned long long>(now_ops),
                         static_cast<unsigned long long>(now_ops - last));
        last = now_ops;
    }
    std::this_thread::sleep_until(t0 + std::chrono::duration<double>(b.seconds));
    measuring = false;
    const double elapsed = std::chrono::duration<double>(clock_type::now() - t0).count();
    result r;
    r.cpu = cpu_seconds() - cpu0;
    r.ops = ops;
    r.failed = failed;
    r.seconds = elapsed;
    done = true;
    for (auto& t : clients) t.join();
    if (!b.json) std::fprintf(stderr, "\n");
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    r.rss_mb = static_cast<double>(u.ru_maxrss) / 1024.0;
    std::vector<std::uint32_t> all;
    for (auto& v : lat) all.insert(all.end(), v.begin(), v.end());
    r.p50 = percentile(all, 0.50);
    r.p99 = percentile(all, 0.99);
    r.p999 = percentile(all, 0.999);
    r.max = all.empty() ? 0 : *std::max_element(all.begin(), all.end());
    // What each node did over the whole run (warm-up included): how well it batched.
    nlohmann::json per_node = nlohmann::json::array();
    for (int i = 1; i <= b.nodes; ++i) {
        const auto m = nodes[static_cast<std::size_t>(i)]->metrics();
        const auto& w = m.log_write_latency;
        per_node.push_back(
            {{"id", i},
             {"leader", nodes[static_cast<std::size_t>(i)]->is_leader()},
             {"entries_applied", m.entries_applied},
             {"log_writes", m.log_writes},
             {"entries_per_write",
              m.log_writes ? static_cast<double>(m.entries_applied) / m.log_writes : 0.0},
             {"write_mean_us", w.count ? static_cast<double>(w.sum_us) / w.count : 0.0},
             {"messages_sent", m.messages_sent},
             {"messages_received", m.messages_received}});
    }
    for (auto& n : nodes)
        if (n) n->stop();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);

    const double ops_per_sec = static_cast<double>(r.ops) / r.seconds;
    if (b.json) {
        nlohmann::json j = {
            {"nodes", b.nodes},    {"clients", b.clients}, {"payload", b.payload},
            {"log", b.log},        {"sync", !b.no_sync},   {"seconds", r.seconds},
            {"ops", r.ops},        {"failed", r.failed},   {"ops_per_sec", ops_per_sec},
            {"p50_us", r.p50},     {"p99_us", r.p99},      {"p999_us", r.p999},
            {"max_us", r.max},     {"cpu_seconds", r.cpu}, {"max_rss_mb", r.rss_mb},
            {"per_node", per_node}};
        std::cout << j.dump() << "\n";
    } else {
        std::printf(
            "%d nodes (one process, loopback TCP), %s log%s, %d clients, %zu-byte payload\n",
            b.nodes, b.log.c_str(), b.no_sync ? " (no sync)" : " (sync)", b.clients, b.payload);
        std::printf("%12s %10s %9s %9s %9s %9s %8s %8s\n", "ops/s", "failed", "p50 us", "p99 us",
                    "p99.9 us", "max us", "cpu s", "rss MiB");
        std::printf("%12.0f %10llu %9.0f %9.0f %9.0f %9.0f %8.1f %8.0f\n", ops_per_sec,
                    static_cast<unsigned long long>(r.failed), r.p50, r.p99, r.p999, r.max, r.cpu,
                    r.rss_mb);
        for (const auto& n : per_node)
            std::printf(
                "  node %d%s: %.1f entries per log write, write+sync mean %.0f us, "
                "%llu messages sent\n",
                n["id"].get<int>(), n["leader"].get<bool>() ? " (leader)" : "",
                n["entries_per_write"].get<double>(), n["write_mean_us"].get<double>(),
                n["messages_sent"].get<unsigned long long>());
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{
        "craft_bench: throughput and latency of a craft cluster (NuRaft raft_bench shape)"};
    app.failure_message(CLI::FailureMessage::help);
    bench_options b;
    app.add_option("--nodes", b.nodes, "nodes in the cluster")->check(CLI::Range(1, 7));
    app.add_option("--clients", b.clients, "closed-loop client threads")
        ->check(CLI::Range(1, 4096));
    app.add_option("--payload", b.payload, "bytes per proposal")
        ->check(CLI::Range(std::size_t{1}, std::size_t{16} << 20));
    app.add_option("--seconds", b.seconds, "how long to measure")->check(CLI::Range(1.0, 3600.0));
    app.add_option("--warmup", b.warmup, "seconds of load before measuring")
        ->check(CLI::Range(0.0, 600.0));
    app.add_option("--log", b.log, "log store: leveldb (default policies) or memory")
        ->check(CLI::IsMember({"leveldb", "memory"}));
    app.add_flag("--no-sync", b.no_sync, "do not sync the LevelDB log");
    app.add_flag("--json", b.json, "print one JSON object instead of the table");
    CLI11_PARSE(app, argc, argv);
    return b.log == "memory" ? run<memory_policies>(b) : run<leveldb_policies>(b);
}
