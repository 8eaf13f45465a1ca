#pragma once
/// @file
/// InstallSnapshot in resumable chunks, between two runtimes (the core only says *which*
/// snapshot a follower needs, and hears of it again once it is durable on the follower).
///
/// A snapshot travels as one byte stream: a manifest (`u64` length, then the file count and,
/// per file, its name, size and CRC32C) followed by the files' bytes in order. The leader
/// first sends an empty chunk at offset 0; the follower answers every chunk with a
/// `snapshot_ack` naming the next offset it wants, so a repeated chunk is harmless and a
/// transfer broken by a lost message, a timeout or a new leader sending the same snapshot
/// resumes where it stopped. The follower checks each file's checksum, commits the snapshot
/// to its store (synced, renamed into place) and only then hands the core a complete
/// `snapshot` message; the core answers once the install is durable and loaded.
///
/// Deterministic: no threads or clocks (driven by `tick()`), so the simulation runs it too.

#include <algorithm>  // chunk bounds
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "../concepts.hpp"
#include "../core/conf_codec.hpp"  // little-endian helpers
#include "../core/raft.hpp"        // roles
#include "../core/types.hpp"
#include "crc32c.hpp"

namespace craft::detail {

/// Settings of snapshot transfers.
struct snapshot_transfer_options {
    std::size_t chunk_bytes = 1 << 20;  ///< Bytes per chunk (1 MiB).
    std::size_t window = 4;             ///< Chunks in flight per follower.
    int resend_ticks = 5;               ///< Resend from the last ack after this many idle ticks.
    int abandon_ticks = 50;             ///< Give up (the core retries later) after this many.
    std::uint64_t max_files = 100'000;  ///< A manifest naming more files is refused.
};

/// Both ends of InstallSnapshot for one node.
/// @tparam SnapshotStore models `craft::snapshot_store`.
template <snapshot_store SnapshotStore>
class snapshot_transfer {
public:
    /// What the leader side tells the core: the transfer to `peer` finished (`ok`) or failed.
    struct report {
        node_id peer = no_node;
        bool ok = false;
    };

    snapshot_transfer(node_id self, SnapshotStore& store, snapshot_transfer_options o = {})
        : self_(self), store_(&store), opt_(o) {
        opt_.chunk_bytes = std::max<std::size_t>(opt_.chunk_bytes, 1);
        opt_.window = std::max<std::size_t>(opt_.window, 1);
        opt_.resend_ticks = std::max(opt_.resend_ticks, 1);
        opt_.abandon_ticks = std::max(opt_.abandon_ticks, opt_.resend_ticks + 1);
    }

    // ---- leader side --------------------------------------------------------------------

    /// The core asks to send a snapshot at or after `m.snap.index` to `m.to` (term `m.term`).
    /// Sends the newest stored snapshot that is at least that new; a transfer already going
    /// to that follower with such a snapshot goes on.
    void offer(const message& m) {
        auto it = out_.find(m.to);
        if (it != out_.end() && it->second.meta.index >= m.snap.index && it->second.term == m.term)
            return;
        out_.erase(m.to);
        std::unique_ptr<snapshot_reader> reader;
        for (const auto& meta : store_->list()) {
            if (meta.index < m.snap.index) break;
            if ((reader = store_->open(meta.index))) break;
        }
        missing_ = !reader;
        if (!reader) {
            reports_.push_back({m.to, false});
            return;
        }
        outgoing s;
        s.to = m.to;
        s.term = m.term;
        s.meta = reader->meta();
        s.manifest = encode_manifest(reader->files());
        s.total = s.manifest.size();
        for (const auto& f : reader->files()) s.total += f.size;
        s.id = transfer_id(self_, s.meta, s.manifest);
        s.reader = std::move(reader);
        auto& ref = out_.emplace(m.to, std::move(s)).first->second;
        send_chunk(ref, 0, 0);  // hello: the follower answers with where to start
    }

    /// A follower acknowledged a chunk.
    void on_ack(const message& m) {
        auto it = out_.find(m.from);
        if (it == out_.end() || it->second.id != m.context) return;
        outgoing& s = it->second;
        if (m.reject) {
            reports_.push_back({s.to, false});
            out_.erase(it);
            return;
        }
        s.idle = 0;
        const std::uint64_t next = std::min(m.index, s.total);
        if (next >= s.total) {
            reports_.push_back({s.to, true});
            out_.erase(it);
            return;
        }
        // Behind what it acknowledged before: the follower restarted and lost its partial
        // copy (or this is an old ack overtaken by newer ones); resend from where it says.
        if (next < s.acked) s.sent = next;
        s.acked = next;
        s.sent = std::max(s.sent, s.acked);
        if (!fill_window(s)) fail_outgoing(it);
    }

    /// Leadership ended: every outgoing transfer stops.
    void stop_sending() { out_.clear(); }

    /// True while a snapshot is on its way to `peer`.
    [[nodiscard]] bool sending_to(node_id peer) const { return out_.count(peer) != 0; }

    // ---- follower side ------------------------------------------------------------------

    /// Handles a snapshot chunk that the core accepted (its term is current and its sender
    /// leads). Returns the complete message to step into the core once the snapshot is
    /// durable in the store.
    std::optional<message> on_chunk(const message& m) {
        if (!in_ || in_->id != m.context || in_->from != m.from) {
            if (m.snap_offset != 0) {
                ack(m, 0, false);  // we hold nothing of it: start over
                return std::nullopt;
            }
            in_.reset();
            incoming s;
            s.from = m.from;
            s.term = m.term;
            s.meta = m.snap;
            s.id = m.context;
            s.sink = store_->begin(m.snap);
            if (!s.sink) {
                error_ = store_->last_error();
                ack(m, 0, true);
                return std::nullopt;
            }
            in_ = std::move(s);
        }
        incoming& s = *in_;
        if (m.snap_offset != s.received || m.snap_data.empty()) {
            ack(m, s.received, false);  // a repeat, a gap or the hello: say where we are
            return std::nullopt;
        }
        s.idle = 0;
        bool local = false;
        if (auto st = consume(s, m.snap_data.str(), local); !st) {
            // Our own store failing stops the node; a bad stream from the leader is refused
            // and the leader starts over later.
            if (local) error_ = st;
            stream_problem_ = st;
            in_.reset();
            ack(m, 0, true);
            return std::nullopt;
        }
        if (!s.manifest_done() || s.file < s.files.size()) {
            ack(m, s.received, false);
            return std::nullopt;
        }
        if (auto st = s.sink->commit(); !st) {
            error_ = st;
            in_.reset();
            ack(m, 0, true);
            return std::nullopt;
        }
        const std::uint64_t done = s.received;
        message complete{.type = message_type::snapshot,
                         .from = m.from,
                         .to = self_,
                         .term = m.term,
                         .snap = s.meta};
        in_.reset();
        ack(m, done, false);
        return complete;
    }

    /// Answers a chunk of a snapshot the follower does not need (its log already covers it):
    /// the leader's transfer ends at once.
    void skip(const message& m) { ack(m, ~std::uint64_t{0}, false); }

    /// Drops a half-received snapshot (a crash loses it anyway).
    void abandon_incoming() { in_.reset(); }
    /// True while a snapshot is being received.
    [[nodiscard]] bool receiving() const noexcept { return in_.has_value(); }

    // ---- both ---------------------------------------------------------------------------

    /// One tick: resends after silence, gives up after long silence (on both sides: a
    /// half-received snapshot whose leader went quiet is dropped).
    void tick() {
        for (auto it = out_.begin(); it != out_.end();) {
            outgoing& s = it->second;
            if (++s.idle >= opt_.abandon_ticks) {
                it = fail_outgoing(it);
                continue;
            }
            if (s.idle % opt_.resend_ticks == 0) {
                s.sent = s.acked;
                const bool sent = s.acked == 0 ? send_chunk(s, 0, 0) : fill_window(s);
                if (!sent) {
                    it = fail_outgoing(it);
                    continue;
                }
            }
            ++it;
        }
        if (in_ && ++in_->idle >= 2 * opt_.abandon_ticks) in_.reset();
    }

    /// Messages to send (chunks and acks), in order.
    std::vector<message> take_messages() { return std::exchange(msgs_, {}); }
    /// Finished or failed transfers to report to the core (`report_snapshot`).
    std::vector<report> take_reports() { return std::exchange(reports_, {}); }
    /// True when the last offer found no intact snapshot recent enough to send: the node
    /// should take a fresh one.
    [[nodiscard]] bool missing_snapshot() const noexcept { return missing_; }
    /// The last failure of this node's own snapshot store while receiving (ok when none):
    /// the node cannot install snapshots and should stop.
    [[nodiscard]] const status& error() const noexcept { return error_; }
    /// The last problem that did not stop the node (for logs): a malformed stream from a
    /// leader, or a stored snapshot that could not be read for sending.
    [[nodiscard]] const status& last_problem() const noexcept { return stream_problem_; }

private:
    struct outgoing {
        node_id to = no_node;
        term_t term = 0;
        snapshot_meta meta;
        std::unique_ptr<snapshot_reader> reader;
        std::string manifest;
        std::uint64_t total = 0;
        std::uint64_t id = 0;
        std::uint64_t acked = 0;  ///< The follower holds everything before this offset.
        std::uint64_t sent = 0;   ///< Everything before this offset was sent.
        int idle = 0;
    };
    using outgoing_map = std::map<node_id, outgoing>;

    /// Ends a transfer that cannot go on; the core retries (with a fresh snapshot if ours
    /// could not be read).
    typename outgoing_map::iterator fail_outgoing(typename outgoing_map::iterator it) {
        reports_.push_back({it->second.to, false});
        return out_.erase(it);
    }

    struct incoming {
        node_id from = no_node;
        term_t term = 0;
        snapshot_meta meta;
        std::uint64_t id = 0;
        std::unique_ptr<snapshot_sink> sink;
        std::uint64_t received = 0;
        std::string manifest;            ///< Bytes of the manifest received so far.
        std::uint64_t manifest_len = 0;  ///< Known once 8 bytes arrived.
        std::vector<snapshot_file> files;
        std::size_t file = 0;  ///< The file being received.
        std::uint64_t file_offset = 0;
        std::uint32_t crc = 0;
        bool file_open = false;
        bool parsed = false;
        int idle = 0;

        [[nodiscard]] bool manifest_done() const noexcept { return parsed; }
    };

    static std::string encode_manifest(const std::vector<snapshot_file>& files) {
        std::string body;
        core::detail::put_u64(body, files.size());
        for (const auto& f : files) {
            core::detail::put_u64(body, f.name.size());
            body += f.name;
            core::detail::put_u64(body, f.size);
            core::detail::put_u64(body, f.crc);
        }
        std::string out;
        core::detail::put_u64(out, body.size() + 8);
        return out + body;
    }

    /// Names one sender's copy of one snapshot (the manifest holds each file's CRC): 64-bit
    /// FNV-1a, so a resumed transfer continues the same bytes.
    static std::uint64_t transfer_id(node_id from, const snapshot_meta& meta,
                                     const std::string& manifest) {
        std::string key = manifest;
        core::detail::put_u64(key, from);
        core::detail::put_u64(key, meta.index);
        core::detail::put_u64(key, meta.term);
        std::uint64_t h = 0xcbf29ce484222325ull;
        for (unsigned char c : key) h = (h ^ c) * 0x100000001b3ull;
        return h | 1;
    }

    /// Sends chunks up to the window; false when the snapshot could not be read.
    bool fill_window(outgoing& s) {
        const std::uint64_t limit =
            std::min<std::uint64_t>(s.total, s.acked + opt_.chunk_bytes * opt_.window);
        while (s.sent < limit) {
            const std::uint64_t n = std::min<std::uint64_t>(opt_.chunk_bytes, s.total - s.sent);
            if (!send_chunk(s, s.sent, n)) return false;
            s.sent += n;
        }
        return true;
    }

    /// Sends `n` bytes of the stream from `offset` (an empty hello when `n` is 0).
    bool send_chunk(outgoing& s, std::uint64_t offset, std::uint64_t n) {
        std::string data;
        data.reserve(n);
        const std::uint64_t end = offset + n;
        std::uint64_t pos = offset;
        if (pos < s.manifest.size()) {
            const auto k = std::min<std::uint64_t>(end, s.manifest.size()) - pos;
            data.append(s.manifest, pos, k);
            pos += k;
        }
        std::uint64_t file_start = s.manifest.size();
        for (const auto& f : s.reader->files()) {
            if (pos >= end) break;
            const std::uint64_t file_end = file_start + f.size;
            if (pos < file_end) {
                const auto want = std::min(end, file_end) - pos;
                const auto before = data.size();
                if (auto st = s.reader->read(f.name, pos - file_start, want, data);
                    !st || data.size() - before != want) {
                    stream_problem_ =
                        st ? status::error("snapshot " + std::to_string(s.meta.index) + " file " +
                                           f.name + " is shorter than its manifest says")
                           : st;
                    missing_ = true;  // take a fresh snapshot
                    return false;
                }
                pos += want;
            }
            file_start = file_end;
        }
        msgs_.push_back({.type = message_type::snapshot,
                         .from = self_,
                         .to = s.to,
                         .term = s.term,
                         .context = s.id,
                         .snap = s.meta,
                         .snap_offset = offset,
                         .snap_data = shared_bytes(std::string_view(data)),
                         .snap_partial = true});
        return true;
    }

    void ack(const message& m, std::uint64_t next, bool reject) {
        msgs_.push_back({.type = message_type::snapshot_ack,
                         .from = self_,
                         .to = m.from,
                         .term = m.term,
                         .index = next,
                         .reject = reject,
                         .context = m.context,
                         .snap = {m.snap.index, m.snap.term, {}}});
    }

    /// Feeds the next bytes of the stream into the manifest parser and the sink; `local` is
    /// set when our own store failed (rather than the stream being bad).
    status consume(incoming& s, std::string_view data, bool& local) {
        s.received += data.size();
        while (!data.empty() ||
               (s.parsed && s.file < s.files.size() && s.files[s.file].size == s.file_offset)) {
            if (!s.parsed) {
                const std::size_t want =
                    s.manifest_len ? s.manifest_len - s.manifest.size() : 8 - s.manifest.size();
                const auto take = std::min(want, data.size());
                s.manifest.append(data.substr(0, take));
                data.remove_prefix(take);
                if (!s.manifest_len && s.manifest.size() == 8) {
                    std::string_view v(s.manifest);
                    core::detail::get_u64(v, s.manifest_len);
                    if (const auto len = s.manifest_len; len < 16 || len > (64u << 20))
                        return status::error("snapshot transfer: bad manifest length " +
                                             std::to_string(s.manifest_len));
                }
                if (s.manifest_len && s.manifest.size() == s.manifest_len) {
                    if (auto st = parse_manifest(s); !st) return st;
                }
                continue;
            }
            if (s.file >= s.files.size())
                return status::error("snapshot transfer: more bytes than the manifest names");
            const snapshot_file& f = s.files[s.file];
            if (!s.file_open) {
                if (auto st = s.sink->open_file(f.name); !st) {
                    local = true;
                    return st;
                }
                s.file_open = true;
            }
            const auto take = static_cast<std::size_t>(
                std::min<std::uint64_t>(f.size - s.file_offset, data.size()));
            const auto bytes = std::as_bytes(std::span<const char>(data.data(), take));
            if (take != 0) {
                if (auto st = s.sink->write(bytes); !st) {
                    local = true;
                    return st;
                }
            }
            s.crc = crc32c(bytes, s.crc);
            s.file_offset += take;
            data.remove_prefix(take);
            if (s.file_offset == f.size) {
                if (s.crc != f.crc)
                    return status::error("snapshot transfer: file " + f.name +
                                         " fails its checksum");
                ++s.file;
                s.file_offset = 0;
                s.crc = 0;
                s.file_open = false;
            }
        }
        return {};
    }

    status parse_manifest(incoming& s) {
        std::string_view v(s.manifest);
        std::uint64_t len = 0, count = 0;
        core::detail::get_u64(v, len);
        if (!core::detail::get_u64(v, count) || count > opt_.max_files)
            return status::error("snapshot transfer: bad manifest file count");
        for (std::uint64_t i = 0; i < count; ++i) {
            snapshot_file f;
            std::uint64_t name_len = 0, crc = 0;
            if (!core::detail::get_u64(v, name_len) || name_len > v.size())
                return status::error("snapshot transfer: truncated manifest");
            f.name = std::string(v.substr(0, name_len));
            v.remove_prefix(name_len);
            if (!core::detail::get_u64(v, f.size) || !core::detail::get_u64(v, crc) ||
                !valid_snapshot_file_name(f.name))
                return status::error("snapshot transfer: bad manifest entry");
            f.crc = static_cast<std::uint32_t>(crc);
            s.files.push_back(std::move(f));
        }
        if (!v.empty()) return status::error("snapshot transfer: trailing manifest bytes");
        s.parsed = true;
        return {};
    }

    node_id self_;
    SnapshotStore* store_;
    snapshot_transfer_options opt_;
    std::map<node_id, outgoing> out_;
    std::optional<incoming> in_;
    std::vector<message> msgs_;
    std::vector<report> reports_;
    status error_;
    status stream_problem_;
    bool missing_ = false;
};

/// Delivers a message to a node whose InstallSnapshot traffic goes through `xfer`: acks go to
/// the transfer; everything else is stepped into the core; a chunk from the current leader
/// then feeds the transfer, or, when the node's log already covers the snapshot, is answered
/// at once and the core told without any bytes. Returns true when a complete snapshot was
/// stepped into the core.
template <class RawNode, class SnapshotStore>
bool deliver(RawNode& node, snapshot_transfer<SnapshotStore>& xfer, message&& m) {
    if (m.type == message_type::snapshot_ack) {
        xfer.on_ack(m);
        return false;
    }
    node.step(m);
    if (m.type != message_type::snapshot || !m.snap_partial) return false;
    const auto& r = node.raft_state();
    if (r.term() != m.term || r.leader() != m.from || r.role() != core::role::follower)
        return false;
    if (m.snap.index <= r.log().committed() || r.log().match_term(m.snap.index, m.snap.term)) {
        xfer.skip(m);  // our log covers it: no bytes needed
        m.snap_partial = false;
        m.snap_data = {};
        node.step(m);
        return false;
    }
    if (auto whole = xfer.on_chunk(m)) {
        node.step(*whole);
        return true;
    }
    return false;
}

}  // namespace craft::detail
