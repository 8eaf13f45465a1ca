// leveldb_log_store appends beside raw LevelDB writes of the same shape (one WriteBatch of
// `batch` values of `payload` bytes, synced or not), in the same run. Figures, never pass/fail.

#include <benchmark/benchmark.h>
#include <leveldb/db.h>
#include <leveldb/write_batch.h>
#include <unistd.h>  // getpid: unique temporary directories

#include <craft/storage/leveldb_log_store.hpp>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace {

using namespace craft;

std::filesystem::path fresh_dir(const char* name) {
    auto p = std::filesystem::temp_directory_path() /
             ("craft-bench-" + std::string(name) + "-" + std::to_string(::getpid()));
    std::filesystem::remove_all(p);
    return p;
}

/// Args: batch, payload bytes, sync (0/1).
void leveldb_log_store_append(benchmark::State& state) {
    const auto batch = static_cast<std::size_t>(state.range(0));
    const shared_bytes payload(std::string(static_cast<std::size_t>(state.range(1)), 'x'));
    const auto dir = fresh_dir("store");
    leveldb_log_store::options o;
    o.dir = dir;
    o.id = 1;
    o.sync = state.range(2) != 0;
    auto opened = leveldb_log_store::open(o);
    if (!opened.store) {
        state.SkipWithError(opened.error.message().c_str());
        return;
    }
    auto& s = *opened.store;
    index_t next = 1;
    std::vector<entry> ents(batch);
    for (auto _ : state) {
        for (auto& e : ents) e = {1, next++, entry_type::normal, payload};
        log_write w;
        w.entries = ents;
        if (!s.write(w).ok()) state.SkipWithError("write failed");
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch));
    opened.store.reset();
    std::filesystem::remove_all(dir);
}

/// The same shape written straight to LevelDB: the ceiling the store is measured against.
void raw_leveldb_write(benchmark::State& state) {
    const auto batch = static_cast<std::size_t>(state.range(0));
    const std::string payload(static_cast<std::size_t>(state.range(1)) + 13, 'x');  // + header
    const auto dir = fresh_dir("raw");
    leveldb::Options lo;
    lo.create_if_missing = true;
    leveldb::DB* raw = nullptr;
    if (!leveldb::DB::Open(lo, dir.string(), &raw).ok()) {
        state.SkipWithError("cannot open LevelDB");
        return;
    }
    std::unique_ptr<leveldb::DB> db(raw);
    leveldb::WriteOptions wo;
    wo.sync = state.range(2) != 0;
    std::uint64_t next = 1;
    for (auto _ : state) {
        leveldb::WriteBatch b;
        for (std::size_t i = 0; i < batch; ++i)
            b.Put(leveldb_log_store::entry_key(next++), payload);
        if (!db->Write(wo, &b).ok()) state.SkipWithError("write failed");
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch));
    db.reset();
    std::filesystem::remove_all(dir);
}

void shapes(benchmark::internal::Benchmark* b) {
    for (std::int64_t sync : {1, 0})
        for (std::int64_t payload : {256, 4096})
            for (std::int64_t batch : {1, 64}) b->Args({batch, payload, sync});
    b->ArgNames({"batch", "bytes", "sync"})->UseRealTime();
}
BENCHMARK(leveldb_log_store_append)->Apply(shapes);
BENCHMARK(raw_leveldb_write)->Apply(shapes);

}  // namespace

BENCHMARK_MAIN();
