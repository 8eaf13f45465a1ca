#pragma once
/// @file
/// `cereal_codec`: the wire encoding of `craft::message`, with Cereal's portable binary
/// archive (fixed sizes, little-endian). Decoding treats its input as hostile: every count is
/// checked against the bytes that remain before anything is allocated, enums are range
/// checked, and any failure is a message naming the problem, never an exception.

#include <cereal/archives/portable_binary.hpp>
#include <cereal/cereal.hpp>

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <istream>
#include <memory>
#include <optional>
#include <ostream>
#include <sstream>
#include <streambuf>
#include <string>
#include <string_view>
#include <vector>

#include "../core/types.hpp"

namespace craft {

/// Encodes and decodes messages (models the transport's codec slot).
struct cereal_codec {
    /// Wire format version; a peer speaking another one is refused at the handshake.
    /// 2: configurations may carry members' addresses, and the handshake the sender's own
    /// (a version-1 node would have dropped such a configuration, so it is refused instead).
    static constexpr std::uint16_t version = 2;

    /// The bytes of `m`.
    static std::string encode(const message& m) {
        std::string out;
        encode_to(out, m);
        return out;
    }

    /// Appends the bytes of `m` to `out` (no intermediate buffer: a transport encodes a whole
    /// batch of frames into one output buffer).
    static void encode_to(std::string& out, const message& m) {
        append_buf buf(out);
        std::ostream os(&buf);
        cereal::PortableBinaryOutputArchive ar(os);
        ar(static_cast<std::uint8_t>(m.type), m.from, m.to, m.term, m.log_term, m.index, m.commit,
           m.reject_hint, static_cast<std::uint8_t>(m.reject), m.context);
        ar(static_cast<std::uint64_t>(m.entries.size()));
        for (const auto& e : m.entries) {
            ar(e.term, e.index, static_cast<std::uint8_t>(e.type));
            put_bytes(ar, e.data);
        }
        ar(m.snap.index, m.snap.term);
        put_conf(ar, m.snap.conf);
        ar(m.snap_offset, static_cast<std::uint8_t>(m.snap_partial));
        put_bytes(ar, m.snap_data);
        // A trailer, only when there is something in it: the snapshot configuration's member
        // addresses (only a snapshot message carries a configuration with them).
        if (!m.snap.conf.addresses.empty()) {
            ar(static_cast<std::uint64_t>(m.snap.conf.addresses.size()));
            for (const auto& [id, a] : m.snap.conf.addresses) {
                ar(id);
                put_bytes(ar, shared_bytes(a));
            }
        }
    }

    /// The message in `bytes` (copied once into a buffer the decoded payloads share), or
    /// `std::nullopt` with `why` saying what is wrong.
    static std::optional<message> decode(std::string_view bytes, std::string* why = nullptr) {
        return decode(std::make_shared<const std::string>(bytes), why);
    }

    /// The message in `*frame`, or `std::nullopt` with `why` saying what is wrong. Entry
    /// payloads are not copied: they share `frame`, which lives as long as any of them.
    static std::optional<message> decode(std::shared_ptr<const std::string> frame,
                                         std::string* why = nullptr) {
        const std::string_view bytes(*frame);
        return decode(std::shared_ptr<const void>(std::move(frame)), bytes, why);
    }

    /// The message in `bytes`, which `owner` keeps alive; entry payloads share `owner`.
    static std::optional<message> decode(const std::shared_ptr<const void>& owner,
                                         std::string_view bytes, std::string* why = nullptr) {
        assert(owner || bytes.empty());
        view_buf buf(bytes);
        std::istream is(&buf);
        message m;
        try {
            cereal::PortableBinaryInputArchive ar(is);
            std::uint8_t type = 0, reject = 0, partial = 0;
            ar(type, m.from, m.to, m.term, m.log_term, m.index, m.commit, m.reject_hint, reject,
               m.context);
            if (reject > 1) return fail(why, "bad reject flag " + std::to_string(reject));
            m.reject = reject != 0;
            if (type > static_cast<std::uint8_t>(last_message_type))
                return fail(why, "unknown message type " + std::to_string(type));
            m.type = static_cast<message_type>(type);
            const std::uint64_t n = get_count(ar, buf, 25, "entries");
            m.entries.reserve(n);
            for (std::uint64_t i = 0; i < n; ++i) {
                entry e;
                std::uint8_t et = 0;
                ar(e.term, e.index, et);
                if (et > static_cast<std::uint8_t>(entry_type::configuration))
                    return fail(why, "unknown entry type " + std::to_string(et));
                e.type = static_cast<entry_type>(et);
                e.data = get_bytes(ar, buf, owner);
                m.entries.push_back(std::move(e));
            }
            ar(m.snap.index, m.snap.term);
            get_conf(ar, buf, m.snap.conf);
            ar(m.snap_offset, partial);
            if (partial > 1) return fail(why, "bad snap_partial flag " + std::to_string(partial));
            m.snap_partial = partial != 0;
            m.snap_data = get_bytes(ar, buf, owner);
            if (buf.remaining() != 0 && m.type == message_type::snapshot) {
                // The trailer: the snapshot configuration's member addresses.
                const std::uint64_t n = get_count(ar, buf, 16, "address");
                if (n == 0) return fail(why, "an empty address trailer");
                const auto& c = m.snap.conf;
                const auto in = [](const std::vector<node_id>& ids, node_id id) {
                    return std::find(ids.begin(), ids.end(), id) != ids.end();
                };
                for (std::uint64_t i = 0; i < n; ++i) {
                    node_id id = no_node;
                    ar(id);
                    auto a = get_bytes(ar, buf, owner);
                    if (!in(c.voters, id) && !in(c.voters_outgoing, id) && !in(c.learners, id))
                        return fail(why, "an address for node " + std::to_string(id) +
                                             ", not a member of the snapshot's configuration");
                    if (!m.snap.conf.addresses.emplace(id, a.str()).second)
                        return fail(why, "node " + std::to_string(id) + "'s address given twice");
                }
            }
        } catch (const std::exception& e) {
            return fail(why, std::string("truncated or malformed message: ") + e.what());
        }
        if (buf.remaining() != 0)
            return fail(why, std::to_string(buf.remaining()) + " bytes after the message");
        return m;
    }

private:
    /// A read-only stream buffer over bytes we do not own (no copy of the frame).
    struct view_buf : std::streambuf {
        explicit view_buf(std::string_view v) {
            char* p = const_cast<char*>(v.data());
            setg(p, p, p + v.size());
        }
        [[nodiscard]] std::size_t remaining() const {
            return static_cast<std::size_t>(egptr() - gptr());
        }
        /// The next `n` bytes (at most `remaining()`), skipped over.
        const char* take(std::size_t n) {
            char* p = gptr();
            setg(eback(), p + n, egptr());
            return p;
        }
    };
    /// A stream buffer that appends to a string.
    struct append_buf : std::streambuf {
        explicit append_buf(std::string& s) : out(s) {}
        std::streamsize xsputn(const char* p, std::streamsize n) override {
            out.append(p, static_cast<std::size_t>(n));
            return n;
        }
        int_type overflow(int_type c) override {
            if (!traits_type::eq_int_type(c, traits_type::eof()))
                out.push_back(traits_type::to_char_type(c));
            return traits_type::not_eof(c);
        }
        std::string& out;
    };

    static std::optional<message> fail(std::string* why, std::string what) {
        if (why) *why = std::move(what);
        return std::nullopt;
    }

    template <class Ar>
    static void put_bytes(Ar& ar, const shared_bytes& b) {
        ar(static_cast<std::uint64_t>(b.size()));
        if (!b.empty()) ar(cereal::binary_data(b.data(), b.size()));
    }
    /// A count that must fit in what remains, at `min_size` bytes per element.
    template <class Ar>
    static std::uint64_t get_count(Ar& ar, const view_buf& buf, std::size_t min_size,
                                   const char* what) {
        std::uint64_t n = 0;
        ar(n);
        if (n > buf.remaining() / min_size)
            throw std::length_error(std::string(what) + " count " + std::to_string(n) +
                                    " exceeds the message");
        return n;
    }
    /// A payload: a view into the frame that shares its ownership.
    template <class Ar>
    static shared_bytes get_bytes(Ar& ar, view_buf& buf, const std::shared_ptr<const void>& owner) {
        const std::uint64_t n = get_count(ar, buf, 1, "payload byte");
        if (n == 0) return {};
        const auto* p = reinterpret_cast<const std::byte*>(buf.take(n));
        return shared_bytes(std::shared_ptr<const std::byte[]>(owner, p), n);
    }
    template <class Ar>
    static void put_conf(Ar& ar, const configuration& c) {
        for (const auto* v : {&c.voters, &c.voters_outgoing, &c.learners}) {
            ar(static_cast<std::uint64_t>(v->size()));
            for (node_id id : *v) ar(id);
        }
        ar(c.index);
    }
    template <class Ar>
    static void get_conf(Ar& ar, const view_buf& buf, configuration& c) {
        for (auto* v : {&c.voters, &c.voters_outgoing, &c.learners}) {
            const std::uint64_t n = get_count(ar, buf, 8, "member");
            v->resize(n);
            for (auto& id : *v) ar(id);
        }
        ar(c.index);
    }
};

}  // namespace craft
