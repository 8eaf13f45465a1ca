// Fuzz target for what a node reads from the network: frames (length, CRC32C), the handshake
// and the message decoder. An input starting with 'D' goes to the decoder directly (random
// mutations rarely keep a CRC32C intact); any other is read as a connection's byte stream. Built
// with libFuzzer when the compiler is Clang
// (`craft_fuzz_frames`); with other compilers the same function replays the seed corpus in
// tests/fuzz/corpus as a ctest test. Properties: no crash, no allocation beyond the frame
// limit, and every message that decodes encodes back to bytes that decode to the same message.

#include <craft/codec/cereal_codec.hpp>
#include <craft/transport/asio_tcp_transport.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace {

/// Decodes `payload`; a message that decodes must round-trip. Returns whether it decoded.
bool check_message(std::string_view payload) {
    std::string why;
    auto m = craft::cereal_codec::decode(payload, &why);
    if (!m) {
        if (why.empty()) std::abort();  // a refusal must say why
        return false;
    }
    const auto again = craft::cereal_codec::decode(craft::cereal_codec::encode(*m));
    if (!again || again->type != m->type || again->from != m->from || again->to != m->to ||
        again->term != m->term || again->index != m->index || again->commit != m->commit ||
        again->entries != m->entries || !(again->snap == m->snap) ||
        !(again->snap_data == m->snap_data) || again->snap_offset != m->snap_offset ||
        again->snap_partial != m->snap_partial || again->context != m->context)
        std::abort();  // the codec does not round-trip
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using craft::asio_tcp_transport;
    std::string_view in(reinterpret_cast<const char*>(data), size);
    if (!in.empty() && in.front() == 'D') {
        check_message(in.substr(1));
        return 0;
    }
    constexpr std::size_t max_frame = 1 << 20;  // what a node would allow, scaled down
    bool handshake_seen = false;
    while (in.size() >= 8) {
        const auto h = asio_tcp_transport::read_header(in.data());
        if (h.length > max_frame) return 0;  // refused before allocating
        in.remove_prefix(8);
        if (in.size() < h.length) return 0;  // truncated
        const std::string_view payload = in.substr(0, h.length);
        in.remove_prefix(h.length);
        if (!asio_tcp_transport::payload_intact(h, payload)) return 0;
        if (!handshake_seen) {
            if (!asio_tcp_transport::parse_handshake(payload)) return 0;
            handshake_seen = true;
            continue;
        }
        if (!check_message(payload)) return 0;
    }
    return 0;
}
