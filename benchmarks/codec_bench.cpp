// Micro-benchmarks of the wire codec (Google Benchmark): encoding and decoding an append
// message of `batch` entries of `bytes` each, as the TCP transport does for every frame.
// Figures, never pass/fail.

#include <benchmark/benchmark.h>

#include <craft/codec/cereal_codec.hpp>

#include <memory>
#include <string>

namespace {

using namespace craft;

message append_of(std::int64_t batch, std::int64_t bytes) {
    message m{.type = message_type::append, .from = 1, .to = 2, .term = 7};
    m.log_term = 7;
    m.index = 1000;
    m.commit = 990;
    const shared_bytes payload(std::string(static_cast<std::size_t>(bytes), 'x'));
    for (std::int64_t i = 0; i < batch; ++i)
        m.entries.push_back(entry{.term = 7,
                                  .index = static_cast<index_t>(1001 + i),
                                  .type = entry_type::normal,
                                  .data = payload});
    return m;
}

void set_counters(benchmark::State& state, std::size_t frame_bytes) {
    state.SetItemsProcessed(state.iterations() * state.range(0));
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(frame_bytes));
}

/// Appends the message to a reused buffer, as the transport fills its output buffer.
void BM_encode(benchmark::State& state) {
    const message m = append_of(state.range(0), state.range(1));
    std::string out;
    for (auto _ : state) {
        out.clear();
        cereal_codec::encode_to(out, m);
        benchmark::DoNotOptimize(out.data());
    }
    set_counters(state, out.size());
}

/// Decodes a received frame; payloads share the frame's buffer.
void BM_decode(benchmark::State& state) {
    const std::string bytes = cereal_codec::encode(append_of(state.range(0), state.range(1)));
    for (auto _ : state) {
        auto frame = std::make_shared<const std::string>(bytes);  // the transport's read buffer
        auto m = cereal_codec::decode(std::move(frame));
        if (!m) state.SkipWithError("decode failed");
        benchmark::DoNotOptimize(m);
    }
    set_counters(state, bytes.size());
}

// {entries per message, payload bytes}
#define CRAFT_CODEC_ARGS         \
    ArgNames({"batch", "bytes"}) \
        ->Args({1, 256})         \
        ->Args({64, 256})        \
        ->Args({64, 4096})       \
        ->Args({1024, 256})

BENCHMARK(BM_encode)->CRAFT_CODEC_ARGS;
BENCHMARK(BM_decode)->CRAFT_CODEC_ARGS;

}  // namespace

BENCHMARK_MAIN();
