#pragma once
/// @file
/// Encoding of a `configuration` inside a configuration log entry. Fixed-width little-endian
/// integers, so the bytes are the same on every platform; no third-party dependency.

#include <cstdint>
#include <optional>
#include <string>

#include "types.hpp"

namespace craft::core {

namespace detail {
inline void put_u64(std::string& out, std::uint64_t v) {
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
inline bool get_u64(std::string_view& in, std::uint64_t& v) {
    if (in.size() < 8) return false;
    v = 0;
    for (int i = 0; i < 8; ++i)
        v |= static_cast<std::uint64_t>(static_cast<unsigned char>(in[static_cast<std::size_t>(i)]))
             << (8 * i);
    in.remove_prefix(8);
    return true;
}
}  // namespace detail

/// Version byte of the configuration encoding.
inline constexpr char conf_codec_version = 1;

/// Encodes the member lists of `c` (its `index` is implied by the entry's position).
[[nodiscard]] inline shared_bytes encode_configuration(const configuration& c) {
    std::string out;
    out.push_back(conf_codec_version);
    for (const auto* v : {&c.voters, &c.voters_outgoing, &c.learners}) {
        detail::put_u64(out, v->size());
        for (node_id id : *v) detail::put_u64(out, id);
    }
    return shared_bytes(out);
}

/// Decodes bytes made by `encode_configuration`; nothing when they are malformed.
[[nodiscard]] inline std::optional<configuration> decode_configuration(const shared_bytes& b) {
    std::string_view in = b.str();
    if (in.empty() || in.front() != conf_codec_version) return std::nullopt;
    in.remove_prefix(1);
    configuration c;
    for (auto* v : {&c.voters, &c.voters_outgoing, &c.learners}) {
        std::uint64_t n = 0;
        if (!detail::get_u64(in, n) || n > in.size() / 8) return std::nullopt;
        v->resize(n);
        for (auto& id : *v)
            if (!detail::get_u64(in, id) || id == no_node) return std::nullopt;
    }
    if (!in.empty()) return std::nullopt;
    c.normalize();
    return c;
}

}  // namespace craft::core
