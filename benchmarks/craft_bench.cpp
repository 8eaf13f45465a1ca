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

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
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
    bool random_payload = false;  ///< Fresh random bytes in every proposal (incompressible).
    std::size_t inflight = 0;     ///< Appends in flight per follower (0: the node's default).
    bool json = false;
    bool processes = false;    ///< One process per node.
    std::string latency_file;  ///< Latency by percentile, for plots.
    // A node process started by --processes (internal flags):
    int node_process = 0;
    std::vector<std::uint16_t> ports;
    std::string process_dir;
};

std::filesystem::path bench_dir() {
    return std::filesystem::temp_directory_path() / ("craft_bench." + std::to_string(::getpid()));
}

/// Writes "percentile latency_us" rows (HdrHistogram's layout: percentiles crowd towards
/// 100 so the tail shows) for a latency-by-percentile plot.
void write_latencies(const std::string& path, std::vector<std::uint32_t> all) {
    std::ofstream out(path);
    if (!out) {
        std::cerr << "craft_bench: cannot write " << path << "\n";
        return;
    }
    std::sort(all.begin(), all.end());
    out << "# percentile latency_us (" << all.size() << " samples)\n";
    if (all.empty()) return;
    for (int i = 0; i <= 200; ++i) {  // 0 .. 99.999 %
        const double q = 1.0 - std::pow(10.0, -static_cast<double>(i) / 40.0);
        const auto k = static_cast<std::size_t>(q * static_cast<double>(all.size() - 1));
        out << 100.0 * q << " " << all[k] << "\n";
    }
    out << 100.0 << " " << all.back() << "\n";
}

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
/// The in-memory log without the simulation's per-entry CRC32C (a model of a disk's
/// checksums, not part of "no storage cost"); NuRaft's in-memory log has none either.
struct unchecked_memory_log_store : testing::memory_log_store {
    unchecked_memory_log_store() : memory_log_store(false) {}
};
struct memory_policies : default_policies {
    using log_store = unchecked_memory_log_store;
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
    std::optional<double> machine_busy_pct, steal_pct;  ///< Over the measured seconds.
};

/// The whole machine's CPU time from the first line of /proc/stat, in clock ticks: what the
/// figures of a shared VM need beside them. How busy every CPU was (this benchmark and
/// anything else) and how much time the hypervisor gave to other guests (steal) say whether
/// a run was slow because of craft or because of its neighbours.
struct machine_cpu {
    unsigned long long busy = 0, steal = 0, total = 0;

    static std::optional<machine_cpu> read() {
        std::ifstream in("/proc/stat");
        std::string cpu;
        unsigned long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0,
                           softirq = 0, steal = 0;
        if (!(in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal) ||
            cpu != "cpu")
            return std::nullopt;
        machine_cpu m;
        m.busy = user + nice + system + irq + softirq;
        m.steal = steal;
        m.total = m.busy + idle + iowait + steal;
        return m;
    }
    /// Fills `r`'s machine figures for the time from `before` to now (left empty off Linux).
    static void measure(const std::optional<machine_cpu>& before, result& r) {
        const auto after = read();
        if (!before || !after || after->total <= before->total) return;
        const auto total = static_cast<double>(after->total - before->total);
        r.machine_busy_pct = 100.0 * static_cast<double>(after->busy - before->busy) / total;
        r.steal_pct = 100.0 * static_cast<double>(after->steal - before->steal) / total;
    }
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
double max_rss_mb() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_maxrss) / 1024.0;
}

std::map<node_id, tcp_endpoint> loopback_peers(int nodes) {
    std::map<node_id, tcp_endpoint> peers;
    for (int i = 1; i <= nodes; ++i) peers[static_cast<node_id>(i)] = {"127.0.0.1", free_port()};
    return peers;
}

template <class Node>
std::unique_ptr<Node> start_node(const bench_options& b, node_id id,
                                 const std::map<node_id, tcp_endpoint>& peers,
                                 const std::filesystem::path& dir, sink& sm) {
    node_options o;
    o.id = id;
    o.peers = peers;
    o.data_dir = dir / std::to_string(id);
    o.sync = !b.no_sync;
    if (b.inflight) o.max_inflight_messages = b.inflight;
    auto n = std::make_unique<Node>(o, sm, stderr_logger{log_level::warn});
    if (auto st = n->start(); !st) {
        std::cerr << "craft_bench: node " << id << ": " << st.message() << "\n";
        return nullptr;
    }
    return n;
}

/// What a node did over the whole run (warm-up included): how well it batched.
template <class Node>
nlohmann::json node_report(Node& n, node_id id) {
    const auto m = n.metrics();
    const auto& w = m.log_write_latency;
    // Writes slower than 10 ms: the tail of the disk's service, and where p99.9 comes from.
    std::uint64_t slow = 0;
    for (std::size_t i = 0; i < w.bounds_us.size(); ++i)
        if (w.bounds_us[i] > 10000) slow += w.buckets[i];
    slow += w.buckets.back();
    return {{"id", id},
            {"leader", n.is_leader()},
            {"entries_applied", m.entries_applied},
            {"log_writes", m.log_writes},
            {"entries_per_write",
             m.log_writes ? static_cast<double>(m.entries_applied) / m.log_writes : 0.0},
            {"write_mean_us", w.count ? static_cast<double>(w.sum_us) / w.count : 0.0},
            {"writes_over_10ms", slow},
            {"messages_sent", m.messages_sent},
            {"messages_received", m.messages_received}};
}

/// Runs the closed-loop clients against whichever node `leader()` returns: warm-up, then the
/// measured seconds with a progress line each second. `on_measure` runs as measuring starts.
template <class LeaderFn>
result run_clients(const bench_options& b, LeaderFn leader,
                   const std::function<void()>& on_measure = {}) {
    // raft_bench's payload is one constant buffer; LevelDB's Snappy squeezes such entries in
    // its table files (not in its log), so --random-payload gives every proposal fresh
    // pseudo-random bytes that nothing can compress.
    const shared_bytes payload(std::string(b.payload, 'x'));
    std::atomic<bool> measuring{false}, done{false};
    std::atomic<std::uint64_t> ops{0}, failed{0};
    std::vector<std::vector<std::uint32_t>> lat(static_cast<std::size_t>(b.clients));
    std::vector<std::thread> clients;
    for (int c = 0; c < b.clients; ++c)
        clients.emplace_back([&, c] {
            auto& mine = lat[static_cast<std::size_t>(c)];
            mine.reserve(1 << 16);
            std::uint64_t rng = 0x9e3779b97f4a7c15ull * static_cast<std::uint64_t>(c + 1);
            auto next_payload = [&] {
                if (!b.random_payload) return payload;
                std::string bytes(b.payload, '\0');
                for (std::size_t i = 0; i < bytes.size(); i += sizeof rng) {
                    rng ^= rng << 13;  // xorshift64
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    std::memcpy(bytes.data() + i, &rng, std::min(sizeof rng, bytes.size() - i));
                }
                return shared_bytes(std::move(bytes));
            };
            while (!done) {
                auto* l = leader();
                if (!l) {
                    std::this_thread::sleep_for(std::chrono::milliseconds(1));
                    continue;
                }
                auto command = next_payload();
                const auto t0 = clock_type::now();
                auto r = l->propose(std::move(command)).get();
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
    if (on_measure) on_measure();
    const double cpu0 = cpu_seconds();
    const auto machine0 = machine_cpu::read();
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
    result r;
    r.seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
    r.cpu = cpu_seconds() - cpu0;
    machine_cpu::measure(machine0, r);
    r.ops = ops;
    r.failed = failed;
    done = true;
    for (auto& t : clients) t.join();
    if (!b.json) std::fprintf(stderr, "\n");
    std::vector<std::uint32_t> all;
    for (auto& v : lat) all.insert(all.end(), v.begin(), v.end());
    r.p50 = percentile(all, 0.50);
    r.p99 = percentile(all, 0.99);
    r.p999 = percentile(all, 0.999);
    r.max = all.empty() ? 0 : *std::max_element(all.begin(), all.end());
    r.rss_mb = max_rss_mb();
    if (!b.latency_file.empty()) write_latencies(b.latency_file, all);
    return r;
}

void print_result(const bench_options& b, const result& r, const nlohmann::json& per_node) {
    const double ops_per_sec = static_cast<double>(r.ops) / r.seconds;
    if (b.json) {
        nlohmann::json j = {
            {"nodes", b.nodes},
            {"processes", b.processes},
            {"clients", b.clients},
            {"payload", b.payload},
            {"log", b.log},
            {"sync", !b.no_sync},
            {"random_payload", b.random_payload},
            {"inflight", b.inflight ? b.inflight : node_options{}.max_inflight_messages},
            {"seconds", r.seconds},
            {"ops", r.ops},
            {"failed", r.failed},
            {"ops_per_sec", ops_per_sec},
            {"p50_us", r.p50},
            {"p99_us", r.p99},
            {"p999_us", r.p999},
            {"max_us", r.max},
            {"cpu_seconds", r.cpu},
            {"max_rss_mb", r.rss_mb},
            {"per_node", per_node}};
        // null where /proc/stat is not readable
        j["machine_busy_pct"] = r.machine_busy_pct ? nlohmann::json(*r.machine_busy_pct) : nullptr;
        j["steal_pct"] = r.steal_pct ? nlohmann::json(*r.steal_pct) : nullptr;
        std::cout << j.dump() << "\n";
        return;
    }
    std::printf("%d nodes (%s, loopback TCP), %s log%s, %d clients, %zu-byte %spayload\n", b.nodes,
                b.processes ? "one process each" : "one process", b.log.c_str(),
                b.no_sync ? " (no sync)" : " (sync)", b.clients, b.payload,
                b.random_payload ? "random " : "");
    std::printf("%12s %10s %9s %9s %9s %9s %8s %8s\n", "ops/s", "failed", "p50 us", "p99 us",
                "p99.9 us", "max us", "cpu s", "rss MiB");
    std::printf("%12.0f %10llu %9.0f %9.0f %9.0f %9.0f %8.1f %8.0f\n", ops_per_sec,
                static_cast<unsigned long long>(r.failed), r.p50, r.p99, r.p999, r.max, r.cpu,
                r.rss_mb);
    if (r.machine_busy_pct)
        std::printf("  machine: all CPUs %.0f %% busy, %.1f %% stolen by the hypervisor\n",
                    *r.machine_busy_pct, *r.steal_pct);
    for (const auto& n : per_node) {
        std::printf(
            "  node %d%s: %.1f entries per log write, write+sync mean %.0f us (%llu over 10 ms), "
            "%llu messages sent",
            n["id"].get<int>(), n["leader"].get<bool>() ? " (leader)" : "",
            n["entries_per_write"].get<double>(), n["write_mean_us"].get<double>(),
            n["writes_over_10ms"].get<unsigned long long>(),
            n["messages_sent"].get<unsigned long long>());
        if (n.contains("rss_mb"))
            std::printf(", %.0f MiB peak RSS, %.1f cpu s", n["rss_mb"].get<double>(),
                        n["cpu_seconds"].get<double>());
        std::printf("\n");
    }
}

/// All nodes in this process.
template <class Policies>
int run_in_process(const bench_options& b) {
    using node_t = basic_node<sink, Policies>;
    const auto dir = bench_dir();
    const auto peers = loopback_peers(b.nodes);
    std::vector<sink> sms(static_cast<std::size_t>(b.nodes) + 1);
    std::vector<std::unique_ptr<node_t>> nodes(static_cast<std::size_t>(b.nodes) + 1);
    for (const auto& [id, ep] : peers)
        if (!(nodes[id] = start_node<node_t>(b, id, peers, dir, sms[id]))) return 1;
    auto leader = [&]() -> node_t* {
        for (auto& n : nodes)
            if (n && n->is_leader()) return n.get();
        return nullptr;
    };
    const auto elect_by = clock_type::now() + std::chrono::seconds(10);
    while (!leader() && clock_type::now() < elect_by)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (!leader()) {
        std::cerr << "craft_bench: no leader within 10 s\n";
        return 1;
    }
    const result r = run_clients(b, leader);
    nlohmann::json per_node = nlohmann::json::array();
    for (const auto& [id, ep] : peers) per_node.push_back(node_report(*nodes[id], id));
    for (auto& n : nodes)
        if (n) n->stop();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    print_result(b, r, per_node);
    return 0;
}

// ---- --processes: one node per process ------------------------------------------------------
//
// The parent starts `nodes` copies of this program, each with --node-process ID. Each child
// runs one node; the one that leads runs the clients in its own process (as NuRaft's
// raft_bench does), marks the start of measuring with a file and writes its result to
// another. The parent reads every child's CPU time from /proc at those two moments and its
// peak RSS before stopping it with SIGTERM; each child writes its node report as it stops.

std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
void write_file_atomically(const std::filesystem::path& p, const std::string& text) {
    const auto tmp = p.string() + ".tmp";
    std::ofstream(tmp) << text;
    std::filesystem::rename(tmp, p);
}

/// A child: one node; the leader also runs the clients.
template <class Policies>
int run_node_process(const bench_options& b) {
    using node_t = basic_node<sink, Policies>;
    const std::filesystem::path dir = b.process_dir;
    std::map<node_id, tcp_endpoint> peers;
    for (std::size_t i = 0; i < b.ports.size(); ++i)
        peers[static_cast<node_id>(i + 1)] = {"127.0.0.1", b.ports[i]};
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);  // before any thread starts
    sink sm;
    const auto id = static_cast<node_id>(b.node_process);
    auto n = start_node<node_t>(b, id, peers, dir, sm);
    if (!n) return 1;
    const auto elect_by = clock_type::now() + std::chrono::seconds(10);
    while (n->leader() == no_node && clock_type::now() < elect_by)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (n->is_leader()) {
        const result r = run_clients(
            b, [&]() -> node_t* { return n->is_leader() ? n.get() : nullptr; },
            [&] { write_file_atomically(dir / "measuring", "1"); });
        nlohmann::json out{{"ops", r.ops},    {"failed", r.failed}, {"seconds", r.seconds},
                           {"p50_us", r.p50}, {"p99_us", r.p99},    {"p999_us", r.p999},
                           {"max_us", r.max}};
        if (r.machine_busy_pct) {
            out["machine_busy_pct"] = *r.machine_busy_pct;
            out["steal_pct"] = *r.steal_pct;
        }
        write_file_atomically(dir / "result.json", out.dump());
    }
    int sig = 0;
    sigwait(&stop_signals, &sig);
    write_file_atomically(dir / ("node-" + std::to_string(id) + ".json"),
                          node_report(*n, id).dump());
    n->stop();
    return 0;
}

/// utime + stime of a child, from /proc (0 once it is gone).
double process_cpu_seconds(pid_t pid) {
    // Fields 14 and 15 (utime, stime), counted after the command name in parentheses.
    const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
    const auto close = stat.rfind(')');
    if (close == std::string::npos) return 0;
    std::istringstream rest(stat.substr(close + 1));
    std::vector<std::string> f{std::istream_iterator<std::string>(rest), {}};
    if (f.size() < 13) return 0;
    return static_cast<double>(std::stoull(f[11]) + std::stoull(f[12])) /
           static_cast<double>(sysconf(_SC_CLK_TCK));
}
/// Peak resident memory of a child (VmHWM), in MiB.
double process_peak_rss_mb(pid_t pid) {
    std::istringstream in(read_file("/proc/" + std::to_string(pid) + "/status"));
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
    return 0;
}

int run_processes(const bench_options& b, const std::vector<std::string>& args) {
    const auto dir = bench_dir();
    std::filesystem::create_directories(dir);
    std::string ports;
    for (const auto& [id, ep] : loopback_peers(b.nodes))
        ports += (ports.empty() ? "" : ",") + std::to_string(ep.port);
    std::vector<pid_t> children;
    std::map<pid_t, int> ended;  // wait statuses of the children reaped so far
    auto reaped = [&](pid_t c, int flags) {
        if (ended.contains(c)) return true;
        int st = 0;
        if (waitpid(c, &st, flags) != c) return false;
        ended[c] = st;
        return true;
    };
    // SIGTERM to each child (which then stops its node and exits 0); true when all did so.
    auto stop_all = [&] {
        for (pid_t c : children)
            if (!ended.contains(c)) kill(c, SIGTERM);
        const auto by = clock_type::now() + std::chrono::seconds(10);
        bool clean = true;
        for (pid_t c : children) {
            while (!reaped(c, WNOHANG) && clock_type::now() < by)
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
            if (!reaped(c, WNOHANG)) {
                kill(c, SIGKILL);
                reaped(c, 0);
                clean = false;
            }
            clean = clean && WIFEXITED(ended[c]) && WEXITSTATUS(ended[c]) == 0;
        }
        return clean;
    };
    for (int i = 1; i <= b.nodes; ++i) {
        std::vector<std::string> a = args;
        for (const std::string& extra :
             {std::string("--node-process"), std::to_string(i), std::string("--ports"), ports,
              std::string("--process-dir"), dir.string()})
            a.push_back(extra);
        std::vector<char*> argv;
        for (auto& s : a) argv.push_back(s.data());
        argv.push_back(nullptr);
        const pid_t pid = fork();
        if (pid < 0) {
            std::perror("craft_bench: fork");
            (void)stop_all();
            return 1;
        }
        if (pid == 0) {
            execv("/proc/self/exe", argv.data());
            std::perror("craft_bench: exec");
            _exit(127);
        }
        children.push_back(pid);
    }
    auto cpu_of_all = [&] {
        double s = 0;
        for (pid_t c : children) s += process_cpu_seconds(c);
        return s;
    };
    const auto deadline =
        clock_type::now() + std::chrono::duration<double>(b.warmup + b.seconds + 30);
    double cpu0 = -1;
    bool finished = false;
    while (clock_type::now() < deadline) {
        if (cpu0 < 0 && std::filesystem::exists(dir / "measuring")) cpu0 = cpu_of_all();
        if (std::filesystem::exists(dir / "result.json")) {
            finished = true;
            break;
        }
        bool all_alive = true;
        for (pid_t c : children) all_alive = all_alive && !reaped(c, WNOHANG);
        if (!all_alive) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    const double cpu1 = cpu_of_all();
    std::vector<double> rss, cpu;
    for (pid_t c : children) {
        rss.push_back(process_peak_rss_mb(c));
        cpu.push_back(process_cpu_seconds(c));
    }
    const bool clean = stop_all();
    if (!finished) {
        std::cerr << "craft_bench: the node processes gave no result (no leader, or a node "
                     "exited; see above)\n";
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
        return 1;
    }
    const auto j = nlohmann::json::parse(read_file(dir / "result.json"));
    result r;
    r.ops = j["ops"];
    r.failed = j["failed"];
    r.seconds = j["seconds"];
    r.p50 = j["p50_us"];
    r.p99 = j["p99_us"];
    r.p999 = j["p999_us"];
    r.max = j["max_us"];
    r.cpu = cpu0 < 0 ? 0 : cpu1 - cpu0;
    if (j.contains("machine_busy_pct")) {
        r.machine_busy_pct = j["machine_busy_pct"].get<double>();
        r.steal_pct = j["steal_pct"].get<double>();
    }
    nlohmann::json per_node = nlohmann::json::array();
    for (int i = 1; i <= b.nodes; ++i) {
        const auto f = dir / ("node-" + std::to_string(i) + ".json");
        nlohmann::json n =
            std::filesystem::exists(f) ? nlohmann::json::parse(read_file(f)) : nlohmann::json{};
        if (!n.contains("id"))
            n = {{"id", i},
                 {"leader", false},
                 {"entries_per_write", 0.0},
                 {"write_mean_us", 0.0},
                 {"writes_over_10ms", 0},
                 {"messages_sent", 0}};
        n["rss_mb"] = rss[static_cast<std::size_t>(i - 1)];
        n["cpu_seconds"] = cpu[static_cast<std::size_t>(i - 1)];
        r.rss_mb = std::max(r.rss_mb, rss[static_cast<std::size_t>(i - 1)]);
        per_node.push_back(n);
    }
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    print_result(b, r, per_node);
    if (!clean) {
        std::cerr << "craft_bench: a node process did not exit cleanly when stopped\n";
        return 1;
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
    app.add_flag("--random-payload", b.random_payload,
                 "fresh random bytes in every proposal (the default repeats one constant "
                 "payload, as NuRaft's raft_bench does, which LevelDB's tables compress)");
    app.add_option("--inflight", b.inflight,
                   "appends in flight per follower (default: node_options' default)")
        ->check(CLI::Range(1, 4096));
    app.add_flag("--json", b.json, "print one JSON object instead of the table");
    app.add_flag("--processes", b.processes,
                 "one process per node (the leader's process runs the clients)");
    app.add_option("--latency-file", b.latency_file,
                   "write latency by percentile to this file (for benchmarks/plot.sh)");
    app.add_option("--node-process", b.node_process)->group("");  // internal: a child node
    app.add_option("--ports", b.ports)->delimiter(',')->group("");
    app.add_option("--process-dir", b.process_dir)->group("");
    CLI11_PARSE(app, argc, argv);
    const bool memory = b.log == "memory";
    if (b.node_process > 0) {
        if (b.ports.size() != static_cast<std::size_t>(b.nodes) || b.process_dir.empty() ||
            b.node_process > b.nodes) {
            std::cerr << "craft_bench: --node-process needs --ports (one per node) and "
                         "--process-dir\n";
            return 2;
        }
        return memory ? run_node_process<memory_policies>(b)
                      : run_node_process<leveldb_policies>(b);
    }
    if (b.processes) {
        std::vector<std::string> args(argv, argv + argc);
        std::erase(args, std::string("--processes"));
        return run_processes(b, args);
    }
    return memory ? run_in_process<memory_policies>(b) : run_in_process<leveldb_policies>(b);
}
