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

/// Version byte of the configuration encoding: 1, the member lists; 2, the member lists and
/// then the members' addresses. A configuration without addresses is written as version 1,
/// so data and peers from before addresses existed read the same bytes.
inline constexpr char conf_codec_version = 1;
inline constexpr char conf_codec_version_addresses = 2;

/// Encodes the member lists and addresses of `c` (its `index` is implied by the entry's
/// position).
[[nodiscard]] inline shared_bytes encode_configuration(const configuration& c) {
    std::string out;
    out.push_back(c.addresses.empty() ? conf_codec_version : conf_codec_version_addresses);
    for (const auto* v : {&c.voters, &c.voters_outgoing, &c.learners}) {
        detail::put_u64(out, v->size());
        for (node_id id : *v) detail::put_u64(out, id);
    }
    if (!c.addresses.empty()) {
        detail::put_u64(out, c.addresses.size());
        for (const auto& [id, a] : c.addresses) {
            detail::put_u64(out, id);
            detail::put_u64(out, a.size());
            out += a;
        }
    }
    return shared_bytes(out);
}

/// Decodes bytes made by `encode_configuration`; nothing when they are malformed, with the
/// reason in `*why` when given (an unknown version names it: a newer build's entry).
[[nodiscard]] inline std::optional<configuration> decode_configuration(const shared_bytes& b,
                                                                       std::string* why = nullptr) {
    const auto bad = [why](std::string reason) -> std::optional<configuration> {
        if (why) *why = std::move(reason);
        return std::nullopt;
    };
    std::string_view in = b.str();
    if (in.empty()) return bad("empty configuration entry");
    if (in.front() != conf_codec_version && in.front() != conf_codec_version_addresses)
        return bad("configuration encoding version " +
                   std::to_string(static_cast<unsigned char>(in.front())) + ", this build reads " +
                   std::to_string(int{conf_codec_version}) + " and " +
                   std::to_string(int{conf_codec_version_addresses}));
    const bool with_addresses = in.front() == conf_codec_version_addresses;
    in.remove_prefix(1);
    configuration c;
    for (auto* v : {&c.voters, &c.voters_outgoing, &c.learners}) {
        std::uint64_t n = 0;
        if (!detail::get_u64(in, n) || n > in.size() / 8)
            return bad("configuration entry cut short in its member lists");
        v->resize(n);
        for (auto& id : *v) {
            if (!detail::get_u64(in, id)) return bad("configuration entry cut short");
            if (id == no_node) return bad("configuration entry names node 0");
        }
    }
    if (with_addresses) {
        std::uint64_t n = 0;
        if (!detail::get_u64(in, n) || n == 0 || n > in.size() / 16)
            return bad("configuration entry with a malformed address count");
        for (std::uint64_t i = 0; i < n; ++i) {
            std::uint64_t id = 0, len = 0;
            if (!detail::get_u64(in, id) || !detail::get_u64(in, len) || len > in.size())
                return bad("configuration entry cut short in its addresses");
            if (!c.addresses.emplace(id, std::string(in.substr(0, len))).second)
                return bad("configuration entry gives node " + std::to_string(id) +
                           " two addresses");
            in.remove_prefix(len);
        }
    }
    if (!in.empty())
        return bad("configuration entry with " + std::to_string(in.size()) +
                   " bytes after its end");
    c.normalize();
    return c;
}

}  // namespace craft::core
