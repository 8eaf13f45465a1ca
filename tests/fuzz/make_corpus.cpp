// Writes the seed corpus of the frame fuzz target (tests/fuzz/corpus): connection streams
// (handshake, then frames of each message type) and direct decoder inputs ('D' + message).
// Usage: craft_fuzz_make_corpus <directory>

#include <craft/codec/cereal_codec.hpp>
#include <craft/transport/asio_tcp_transport.hpp>

#include <fstream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
    if (argc != 2) return 2;
    using namespace craft;
    std::vector<message> samples;
    for (int t = 0; t <= static_cast<int>(last_message_type); ++t) {
        message m{.type = static_cast<message_type>(t), .from = 1, .to = 2, .term = 3};
        samples.push_back(m);
    }
    message app{.type = message_type::append,
                .from = 1,
                .to = 2,
                .term = 4,
                .log_term = 3,
                .index = 10,
                .commit = 9};
    app.entries = {{4, 11, entry_type::normal, shared_bytes("set x 1")},
                   {4, 12, entry_type::configuration, shared_bytes("\1\0\0\0")}};
    samples.push_back(app);
    message chunk{.type = message_type::snapshot,
                  .from = 1,
                  .to = 2,
                  .term = 4,
                  .context = 99,
                  .snap = {20, 4, {{1, 2, 3}, {}, {4}, {{4, "10.0.0.4:7004"}}, 7}},
                  .snap_offset = 1024,
                  .snap_data = shared_bytes("chunk bytes"),
                  .snap_partial = true};
    samples.push_back(chunk);
    int n = 0;
    for (const auto& m : samples) {
        const std::string bytes = cereal_codec::encode(m);
        std::ofstream(std::string(argv[1]) + "/decode-" + std::to_string(n), std::ios::binary)
            << 'D' << bytes;
        std::ofstream(std::string(argv[1]) + "/stream-" + std::to_string(n), std::ios::binary)
            << asio_tcp_transport::frame(asio_tcp_transport::handshake(7, 1, 2))
            << asio_tcp_transport::frame(bytes);
        ++n;
    }
    return 0;
}
