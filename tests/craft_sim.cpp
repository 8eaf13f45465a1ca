// craft_sim: runs random fault schedules of the real Raft core over the testing policies,
// checks every invariant at every step and liveness once faults stop, and prints the replay
// command of each failing seed. `--demo` narrates one schedule for a newcomer.

#include <CLI/CLI.hpp>

#include <chrono>  // wall time of the whole run, for the summary line only
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <string>

#include <craft/testing/cluster.hpp>
#include <craft/testing/fault_schedule.hpp>

namespace {

int run_demo(std::uint64_t seed) {
    using namespace craft;
    using namespace craft::testing;
    std::cout << "craft demo: a simulated 3-node cluster in virtual time (seed " << seed << ")\n"
              << "(the real Raft core, in-memory storage, a simulated network; the TCP runtime\n"
              << " and the key-value example come in later releases)\n\n";
    cluster_options o;
    o.seed = seed;
    cluster c(o);
    auto ms = [&] { return std::to_string(c.now() / 1000) + "ms"; };
    if (!c.run_until([&] { return c.leader().has_value(); }, 10'000'000)) {
        std::cout << "no leader elected: " << c.violation() << "\n";
        return 1;
    }
    const node_id first = *c.leader();
    std::cout << "[" << ms() << "] node " << first << " was elected leader of term "
              << c.at(first).raft->raft_state().term() << "\n";
    for (int i = 0; i < 1000; ++i) c.propose("set x=" + std::to_string(i));
    c.run_until([&] { return c.at(first).applied >= 1001; }, 5'000'000);
    std::cout << "[" << ms() << "] 1000 commands proposed in one burst; all 3 nodes applied "
              << c.at(1).sm->values().size() << ", " << c.at(2).sm->values().size() << ", "
              << c.at(3).sm->values().size() << " commands, using " << c.network().sent()
              << " messages in all (batching)\n";
    c.crash(first);
    std::cout << "[" << ms() << "] crashed the leader, node " << first << "\n";
    c.run_until([&] { return c.leader().has_value(); }, 10'000'000);
    const node_id second = *c.leader();
    std::cout << "[" << ms() << "] node " << second << " took over in term "
              << c.at(second).raft->raft_state().term() << "\n";
    for (int i = 0; i < 100; ++i) c.propose("after crash " + std::to_string(i));
    c.run_for(1'000'000);
    c.restart(first);
    std::cout << "[" << ms() << "] 100 more commands committed by the new leader; restarted node "
              << first << " from its durable log\n";
    const index_t target = c.max_committed();
    c.run_until([&] { return c.at(first).applied >= target; }, 5'000'000);
    std::cout << "[" << ms() << "] node " << first << " caught up: applied index "
              << c.at(first).applied << " of " << target << "; its state has "
              << c.at(first).sm->values().size() << " commands\n";
    const bool same = c.at(1).sm->values() == c.at(2).sm->values() &&
                      c.at(2).sm->values() == c.at(3).sm->values();
    std::cout << "[" << ms() << "] all three state machines identical: " << (same ? "yes" : "NO")
              << "; invariants held at every step: " << (c.ok() ? "yes" : c.violation()) << "\n";
    return same && c.ok() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"craft_sim: random fault schedules of the Raft core in deterministic simulation"};
    std::uint64_t seeds = 100;
    std::uint64_t first_seed = 1;
    std::size_t nodes = 0;
    bool verbose = false;
    bool trace = false;
    bool demo = false;
    app.add_option("--seeds", seeds, "number of schedules to run")->check(CLI::PositiveNumber);
    app.add_option("--first-seed", first_seed, "seed of the first schedule");
    app.add_option("--nodes", nodes, "cluster size (default: 3 or 5, by seed)")
        ->check(CLI::Range(1, 9));
    app.add_flag("--verbose", verbose, "narrate each schedule's events");
    app.add_flag("--trace", trace, "with --verbose: also every message delivery and disk write");
    app.add_flag("--demo", demo, "narrate one simple scenario for a newcomer");
    CLI11_PARSE(app, argc, argv);

    if (demo) return run_demo(first_seed);

    const auto start = std::chrono::steady_clock::now();
    std::uint64_t passed = 0;
    std::uint64_t failed = 0;
    for (std::uint64_t s = first_seed; s < first_seed + seeds; ++s) {
        craft::testing::schedule_options so;
        so.seed = s;
        so.nodes = nodes;
        so.verbose = verbose || trace;
        so.trace = trace;
        const auto r = craft::testing::run_schedule(so);
        for (const auto& line : r.log) std::cout << "  seed " << s << ": " << line << "\n";
        if (r.passed) {
            ++passed;
        } else {
            ++failed;
            std::cout << "FAILED seed " << s << ": " << r.failure << "\n"
                      << "  replay: craft_sim --seeds 1 --first-seed " << s
                      << (nodes != 0 ? " --nodes " + std::to_string(nodes) : std::string())
                      << " --verbose\n";
        }
    }
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cout << "craft_sim: seeds " << first_seed << ".." << first_seed + seeds - 1 << " in "
              << secs << "s\n";
    std::cout << passed << " passed, " << failed << " failed\n";
    return failed == 0 ? 0 : 1;
}
