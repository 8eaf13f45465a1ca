// craft_test_node: one node of a counter cluster, as a process, for the multi-process test.
// While it leads and the total is below --target, it keeps 64 proposals of "+1" in flight.
// Every 20 ms it writes "<role> <term> <leader> <applied> <total>" to --status-file
// (atomically, through a rename). SIGTERM or SIGINT stop it cleanly.

#include <craft/node.hpp>

#include <CLI/CLI.hpp>

#include <csignal>
#include <deque>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <string>
#include <thread>

#include "../support.hpp"

namespace {

std::atomic<bool> stop_requested{false};
extern "C" void on_signal(int) {
    stop_requested = true;
}

/// Parses "1=127.0.0.1:7001,2=127.0.0.1:7002".
std::optional<std::map<craft::node_id, craft::tcp_endpoint>> parse_peers(const std::string& s) {
    std::map<craft::node_id, craft::tcp_endpoint> out;
    std::stringstream in(s);
    std::string item;
    while (std::getline(in, item, ',')) {
        const auto eq = item.find('='), colon = item.rfind(':');
        if (eq == std::string::npos || colon == std::string::npos || colon < eq) return {};
        try {
            out[std::stoull(item.substr(0, eq))] = {
                item.substr(eq + 1, colon - eq - 1),
                static_cast<std::uint16_t>(std::stoul(item.substr(colon + 1)))};
        } catch (const std::exception&) {
            return {};
        }
    }
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"craft_test_node: one node of a counter cluster (for tests)"};
    craft::node_id id = 0;
    std::string peers, data_dir, status_file;
    long target = 10'000;
    app.add_option("--id", id, "this node's id")->required();
    app.add_option("--peers", peers, "id=host:port,... for every node, this one included")
        ->required();
    app.add_option("--data-dir", data_dir, "where the log and snapshots live")->required();
    app.add_option("--status-file", status_file, "where to write the status line")->required();
    app.add_option("--target", target, "stop proposing once the total reaches this");
    CLI11_PARSE(app, argc, argv);

    auto parsed = parse_peers(peers);
    if (!parsed) {
        std::cerr << "craft_test_node: --peers: expected id=host:port,... but got '" << peers
                  << "'\n";
        return 2;
    }
    craft::node_options o = craft::test::loopback_options(id, *parsed, data_dir);
    o.data_dir = data_dir;
    o.snapshots.entries = 2'000;
    o.snapshots.keep_entries = 500;
    craft::test::counter sm;
    craft::node<craft::test::counter> n(o, sm, craft::stderr_logger{craft::log_level::warn});
    if (auto st = n.start(); !st) {
        std::cerr << "craft_test_node: " << st.message() << "\n";
        return 1;
    }
    std::signal(SIGTERM, on_signal);
    std::signal(SIGINT, on_signal);

    std::deque<std::future<craft::outcome<long>>> inflight;
    auto next_status = std::chrono::steady_clock::now();
    long total_seen = 0;  // the last total a linearizable read returned
    while (!stop_requested) {
        while (!inflight.empty() &&
               inflight.front().wait_for(std::chrono::seconds(0)) == std::future_status::ready)
            inflight.pop_front();
        const auto st = n.status();
        if (!st.running) break;
        if (n.is_leader() && total_seen < target)
            while (inflight.size() < 64) inflight.push_back(n.propose(craft::shared_bytes("1")));
        if (std::chrono::steady_clock::now() >= next_status) {
            next_status += std::chrono::milliseconds(20);
            auto total = n.read([](const craft::test::counter& c) { return c.total; });
            long value = -1;
            if (total.wait_for(std::chrono::milliseconds(200)) == std::future_status::ready) {
                auto r = total.get();
                if (r.ok()) value = total_seen = r.value;
            }
            const std::string tmp = status_file + ".tmp";
            {
                std::ofstream out(tmp, std::ios::trunc);
                out << (st.raft.soft.role == craft::core::role::leader ? "leader" : "follower")
                    << ' ' << st.raft.hard.term << ' ' << st.raft.soft.leader << ' ' << st.applied
                    << ' ' << value << '\n';
            }
            std::filesystem::rename(tmp, status_file);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    n.stop();
    return n.status().failure.ok() ? 0 : 1;
}
