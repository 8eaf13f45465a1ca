// Micro-benchmarks of the pure core (Google Benchmark): how many entries per second go
// through propose -> ready -> step -> advance in a 3-node cluster wired in memory, with no
// network, disk or threads. These are figures, never pass/fail.

#include <benchmark/benchmark.h>

#include <craft/core/raw_node.hpp>
#include <craft/testing/memory_log_store.hpp>

#include <memory>
#include <string>
#include <vector>

namespace {

using namespace craft;
using store_t = testing::memory_log_store;
using node_t = core::raw_node<store_t>;

/// Three cores over in-memory stores; messages are handed over directly.
struct trio {
    std::vector<std::unique_ptr<store_t>> stores;
    std::vector<std::unique_ptr<node_t>> nodes;
    std::vector<message> wire;

    trio() {
        for (node_id id = 1; id <= 3; ++id) {
            // Without the simulation's per-entry CRC32C: the core's cost, not a test store's.
            stores.push_back(std::make_unique<store_t>(false));
            core::options o;
            o.id = id;
            o.voters = {1, 2, 3};
            o.seed = id;
            nodes.push_back(std::make_unique<node_t>(o, *stores.back()));
        }
        nodes[0]->campaign();
        settle();
    }

    /// Runs every node's ready batches and delivers messages until quiet.
    void settle() {
        for (;;) {
            bool any = false;
            for (std::size_t i = 0; i < nodes.size(); ++i) {
                while (nodes[i]->has_ready()) {
                    any = true;
                    auto rd = nodes[i]->get_ready();
                    for (auto& m : rd.messages) wire.push_back(std::move(m));
                    log_write w;
                    w.entries = rd.entries;
                    if (rd.hard) w.hard = &*rd.hard;
                    if (rd.conf) w.conf = &*rd.conf;
                    if (rd.snap) w.snap = &*rd.snap;
                    (void)stores[i]->write(w);
                    for (auto& m : rd.messages_after_persist) wire.push_back(std::move(m));
                    benchmark::DoNotOptimize(rd.committed.data());
                    nodes[i]->advance();
                }
            }
            if (wire.empty() && !any) return;
            for (auto& m : std::exchange(wire, {})) nodes[m.to - 1]->step(m);
        }
    }
};

/// Entries per second through the core, proposed in batches of `range(0)` entries of
/// `range(1)` bytes each. The log grows in memory; iterations are bounded by Google
/// Benchmark's time budget.
void core_replicate(benchmark::State& state) {
    const auto batch = static_cast<std::size_t>(state.range(0));
    const shared_bytes payload(std::string(static_cast<std::size_t>(state.range(1)), 'x'));
    trio t;
    for (auto _ : state) {
        std::vector<entry> b(batch);
        for (auto& e : b) e.data = payload;  // shared, not copied
        t.nodes[0]->propose(std::move(b));
        t.settle();
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch));
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * batch) * state.range(1));
}
BENCHMARK(core_replicate)->Args({1, 256})->Args({64, 256})->Args({64, 4096})->Args({1024, 256});

}  // namespace

BENCHMARK_MAIN();
