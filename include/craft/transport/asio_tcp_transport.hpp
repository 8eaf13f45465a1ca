#pragma once
/// @file
/// `asio_tcp_transport`: the default transport, over TCP with standalone Asio.
///
/// Each node keeps one outgoing connection per peer for the messages it sends, and accepts
/// one from each peer for the messages it receives. A connection starts with a handshake
/// frame (magic, wire version, cluster id, sender id, receiver id); a wrong cluster, an
/// unknown sender, a different receiver or another version is refused, logged once and
/// closed. Every frame is `u32 length | u32 CRC32C | payload` (little-endian); a length over
/// `max_frame_bytes` closes the connection before anything is allocated, and so does a
/// checksum or decoding failure (one log line per bad connection). Queued messages to a peer
/// are coalesced into one write, and a message with nothing queued ahead of it is written at
/// once from the sender's thread (no hand-off to the I/O thread: a thread wake-up saved per
/// message at low load; what the socket does not take at once, the I/O thread writes after
/// it). TCP_NODELAY is on; a lost connection is retried with
/// exponential back-off and jitter. Each peer's send queue is bounded by count and bytes:
/// when it is full the new message is dropped and counted (Raft retransmits), never blocking
/// the caller. Either loss (a connection that was up going down with what it was writing, a
/// message dropped at a full queue while connected) is reported to the `on_unreachable`
/// handler, which a node turns into its core's `report_unreachable` (etcd's
/// ReportUnreachable): the leader resends from the last acknowledged entry at its next
/// proposal rather than waiting for a heartbeat's answer.

#include <asio.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "../codec/cereal_codec.hpp"
#include "../concepts.hpp"
#include "../core/conf_codec.hpp"
#include "../detail/crc32c.hpp"
#include "../detail/thread_name.hpp"
#include "../logger.hpp"

namespace craft {

/// A peer's address.
struct tcp_endpoint {
    std::string host = "127.0.0.1";
    std::uint16_t port = 0;

    /// "host:port", the host in brackets when it holds a colon (IPv6).
    [[nodiscard]] std::string to_string() const {
        const bool v6 = host.find(':') != std::string::npos;
        return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
    }
    /// Parses "host:port" (or "[v6-host]:port"); nothing, with `why` saying what is wrong,
    /// when it is not one. The host must be an IP address: the transport resolves no names
    /// (a name would only fail later, at every dial).
    static std::optional<tcp_endpoint> parse(std::string_view s, std::string* why = nullptr) {
        const auto fail = [&](std::string w) -> std::optional<tcp_endpoint> {
            if (why) *why = "'" + std::string(s) + "': " + std::move(w) + " (expected host:port)";
            return std::nullopt;
        };
        const auto colon = s.rfind(':');
        if (colon == std::string_view::npos) return fail("no port");
        std::string_view host = s.substr(0, colon), port = s.substr(colon + 1);
        if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
            host = host.substr(1, host.size() - 2);
        if (host.empty()) return fail("no host");
        std::error_code bad_ip;
        (void)asio::ip::make_address(std::string(host), bad_ip);
        if (bad_ip)
            return fail("'" + std::string(host) +
                        "' is not an IP address (names are not resolved)");
        unsigned long n = 0;
        const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), n);
        if (ec != std::errc() || end != port.data() + port.size() || port.empty())
            return fail("bad port");
        if (n == 0 || n > 65535) return fail("port out of range");
        return tcp_endpoint{std::string(host), static_cast<std::uint16_t>(n)};
    }

    friend bool operator==(const tcp_endpoint&, const tcp_endpoint&) = default;
};

/// Parses "1=host:port,2=host:port" (an address book, as `node_options::peers` holds); nothing,
/// with `why` naming the item that is wrong and what was expected, when it is not one. Empty
/// input: an empty book.
inline std::optional<std::map<node_id, tcp_endpoint>> parse_peer_list(std::string_view s,
                                                                      std::string* why = nullptr) {
    std::map<node_id, tcp_endpoint> out;
    const auto fail = [&](const std::string& w) -> std::optional<std::map<node_id, tcp_endpoint>> {
        if (why) *why = w;
        return std::nullopt;
    };
    for (bool more = !s.empty(); more;) {
        const auto comma = s.find(',');
        const std::string_view item = s.substr(0, comma);
        more = comma != std::string_view::npos;
        s = more ? s.substr(comma + 1) : std::string_view();
        if (item.empty())
            return fail("an empty item (expected id=host:port,... without a comma too many)");
        const auto eq = item.find('=');
        if (eq == std::string_view::npos)
            return fail("'" + std::string(item) +
                        "': not id=host:port (expected id=host:port,...)");
        node_id id = no_node;
        const auto [end, ec] = std::from_chars(item.data(), item.data() + eq, id);
        if (ec != std::errc() || end != item.data() + eq || id == no_node)
            return fail("'" + std::string(item) + "': bad node id (expected a positive integer)");
        std::string bad;
        auto ep = tcp_endpoint::parse(item.substr(eq + 1), &bad);
        if (!ep) return fail("node " + std::to_string(id) + ": " + bad);
        if (!out.emplace(id, std::move(*ep)).second)
            return fail("node " + std::to_string(id) +
                        " is given twice (expected one address each)");
    }
    return out;
}

/// Message transport over TCP (models `craft::transport`).
class asio_tcp_transport {
public:
    struct options {
        node_id id = no_node;          ///< This node.
        std::uint64_t cluster_id = 0;  ///< Connections from another cluster are refused.
        tcp_endpoint listen;           ///< Port 0 picks a free port (see `local_port()`).
        /// "host:port" where peers reach this node, told in every handshake so that a peer
        /// that does not know this node yet can answer it (empty: `listen`'s).
        std::string advertise;
        std::map<node_id, tcp_endpoint> peers;        ///< Every other member.
        std::size_t max_frame_bytes = 64u << 20;      ///< Larger frames close the connection.
        std::size_t max_queue_messages = 65'536;      ///< Per peer; beyond it, drop new ones.
        std::size_t max_queue_bytes = 256u << 20;     ///< Per peer, payload bytes.
        std::chrono::milliseconds backoff_min{20};    ///< First reconnect delay...
        std::chrono::milliseconds backoff_max{1000};  ///< ...doubling up to this, with jitter.
        std::chrono::milliseconds handshake_timeout{2000};
        /// Nodes not in `peers` (nor given by `set_peer`) that this node answers at the
        /// address their handshake gives, at most; beyond that, such handshakes are refused
        /// (the cluster id is no password: this bounds what strangers can make it dial).
        std::size_t max_unlisted_peers = 64;
    };

    asio_tcp_transport(options o, log_sink log = {}) : opt_(std::move(o)), log_(std::move(log)) {
        for (const auto& [id, ep] : opt_.peers)
            if (id != opt_.id) dropped_[id] = 0;
    }
    ~asio_tcp_transport() { stop(); }
    asio_tcp_transport(const asio_tcp_transport&) = delete;
    asio_tcp_transport& operator=(const asio_tcp_transport&) = delete;

    /// Sets what is told (on the I/O thread) the id of a peer that messages to were lost:
    /// its connection, once up, went down, or its full queue dropped one (once per stall:
    /// again only after a write to it completes). Set before `start`.
    void on_unreachable(std::function<void(node_id)> f) { unreachable_ = std::move(f); }
    /// Sets what runs (on the I/O thread) after the handler took every message one read
    /// brought. Set before `start`.
    void on_delivered(std::function<void()> f) { delivered_ = std::move(f); }

    /// Listens, connects to the peers and starts delivering to `handler` (on the I/O thread).
    status start(std::function<void(message&&)> handler) {
        std::unique_lock guard(e_mutex_);
        if (e_) return status::error("asio_tcp_transport: already started");
        // Everything of one run lives in an engine, destroyed whole by stop(): no handler of
        // an earlier run can fire in a later one.
        e_ = std::make_unique<engine>();
        for (const auto& [id, pep] : opt_.peers)
            if (id != opt_.id) emplace_peer(id, pep);
        handler_ = std::move(handler);
        std::error_code ec;
        const auto addr = asio::ip::make_address(opt_.listen.host, ec);
        if (ec) {
            e_.reset();
            return status::error("asio_tcp_transport: bad listen address '" + opt_.listen.host +
                                 "': " + ec.message());
        }
        const asio::ip::tcp::endpoint ep(addr, opt_.listen.port);
        if (e_->acceptor.open(ep.protocol(), ec); !ec)
            e_->acceptor.set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
        if (!ec) e_->acceptor.bind(ep, ec);
        if (!ec) e_->acceptor.listen(asio::socket_base::max_listen_connections, ec);
        if (ec) {
            e_.reset();
            return status::error("asio_tcp_transport: cannot listen on " + opt_.listen.host + ":" +
                                 std::to_string(opt_.listen.port) + ": " + ec.message());
        }
        local_port_ = e_->acceptor.local_endpoint().port();
        advertise_ = opt_.advertise.empty()
                         ? tcp_endpoint{opt_.listen.host, local_port_}.to_string()
                         : opt_.advertise;
        stopped_ = false;
        e_->work.emplace(asio::make_work_guard(e_->io));
        accept();
        for (auto& [id, p] : e_->peers) asio::post(e_->io, [this, pp = p.get()] { connect(*pp); });
        e_->thread = std::thread([this] { e_->io.run(); });
        detail::name_thread(e_->thread, "craft-net");
        return {};
    }

    /// Adds peer `id` at `ep`, or gives it a new address (any thread). A new peer is dialled
    /// at once; a known one keeps its connection, and its next connection goes to `ep`.
    void set_peer(node_id id, const tcp_endpoint& ep) {
        if (id == opt_.id || id == no_node) return;
        std::shared_lock guard(e_mutex_);  // the engine stays (or stays away) meanwhile
        std::unique_lock lock(peers_mutex_);
        unlisted_.erase(id);  // listed now: its place among the unlisted is free
        if (auto it = opt_.peers.find(id); it != opt_.peers.end() && it->second == ep) return;
        opt_.peers.insert_or_assign(id, ep);
        dropped_[id];                 // counted from now on, also while stopped
        if (!e_ || stopped_) return;  // start() makes it from opt_.peers
        auto it = e_->peers.find(id);
        if (it == e_->peers.end()) {
            auto* p = emplace_peer(id, ep);
            asio::post(e_->io, [this, p] { connect(*p); });
        } else {
            asio::post(e_->io, [p = it->second.get(), ep] { p->ep = ep; });  // read there only
        }
    }

    /// Queues `m` for `m.to` without blocking; dropped when that peer's queue is full.
    void send(message&& m) {
        std::shared_lock guard(e_mutex_);
        if (!e_ || stopped_) return;
        peer* pp = find_peer(m.to);
        if (!pp) return;
        peer& p = *pp;
        const std::size_t bytes = approx_size(m);
        bool lost = false;
        {
            std::lock_guard lock(p.mutex);
            if (p.connected && !p.writing && p.queue.empty()) return write_now(p, m);
            if (p.queue.size() >= opt_.max_queue_messages ||
                p.queued_bytes + bytes > opt_.max_queue_bytes) {
                ++p.dropped;
                // Lost while connected (a peer that does not read): reported once per stall.
                // While disconnected, nothing is in flight but what the lost connection took
                // (reported then).
                if (!p.connected || std::exchange(p.drop_reported, true)) return;
                lost = true;
            } else {
                p.queue.push_back(std::move(m));
                p.queued_bytes += bytes;
                if (p.flush_posted) return;
                p.flush_posted = true;
            }
        }
        if (lost) return asio::post(e_->io, [this, &p] { report_unreachable(p); });
        asio::post(e_->io, [this, &p] { flush(p); });
    }

    /// Stops delivery and sending; no handler call starts after it returns.
    void stop() {
        std::unique_lock guard(e_mutex_);
        if (!e_) return;
        stopped_ = true;
        e_->work.reset();
        e_->io.stop();
        if (e_->thread.joinable()) e_->thread.join();
        e_.reset();  // closes every socket; pending handlers are destroyed, never run
    }

    /// The port this transport listens on (after `start`).
    [[nodiscard]] std::uint16_t local_port() const noexcept { return local_port_; }
    /// Messages dropped because a peer's queue was full.
    [[nodiscard]] std::uint64_t dropped(node_id peer_id) const {
        std::shared_lock lock(peers_mutex_);
        auto it = dropped_.find(peer_id);
        return it == dropped_.end() ? 0 : it->second.load();
    }
    /// Connections refused or closed for bad input, since start.
    [[nodiscard]] std::uint64_t rejected_connections() const noexcept { return rejected_; }

    /// Traffic counters since construction (frames and bytes on the wire, headers included).
    struct traffic {
        std::uint64_t messages_sent = 0, bytes_sent = 0;
        std::uint64_t messages_received = 0, bytes_received = 0;
        std::uint64_t read_buffer_bytes = 0;  ///< allocated for receiving (grows ~ received)
    };
    [[nodiscard]] traffic stats() const noexcept {
        return {msgs_sent_.load(std::memory_order_relaxed),
                bytes_sent_.load(std::memory_order_relaxed),
                msgs_received_.load(std::memory_order_relaxed),
                bytes_received_.load(std::memory_order_relaxed),
                read_buffer_bytes_.load(std::memory_order_relaxed)};
    }

    /// The handshake frame payload that `from` sends to `to`, with the address where `from`
    /// is reached (at most `max_address_bytes`; public for tests and fuzzing).
    static std::string handshake(std::uint64_t cluster, node_id from, node_id to,
                                 std::string_view address = {}) {
        address = address.substr(0, max_address_bytes);
        std::string h = "CRFT";
        h.push_back(static_cast<char>(cereal_codec::version & 0xff));
        h.push_back(static_cast<char>(cereal_codec::version >> 8));
        core::detail::put_u64(h, cluster);
        core::detail::put_u64(h, from);
        core::detail::put_u64(h, to);
        h.push_back(static_cast<char>(address.size()));
        h.append(address);
        return h;
    }
    /// A whole frame around `payload`.
    static std::string frame(std::string_view payload) {
        std::string f;
        f.reserve(payload.size() + 8);
        put_frame(f, payload);
        return f;
    }

    /// What a frame's 8-byte header says.
    struct frame_header {
        std::uint32_t length = 0;
        std::uint32_t crc = 0;
    };
    /// Reads a frame header (`bytes` holds at least 8 bytes).
    static frame_header read_header(const char* bytes) {
        return {get_u32(bytes), get_u32(bytes + 4)};
    }
    /// True when `payload` matches the header's checksum.
    static bool payload_intact(const frame_header& h, std::string_view payload) {
        return payload.size() == h.length &&
               detail::crc32c(std::as_bytes(std::span(payload.data(), payload.size()))) == h.crc;
    }

    /// The fields of a handshake.
    struct handshake_fields {
        std::uint16_t version = 0;
        std::uint64_t cluster = 0;
        node_id from = no_node;
        node_id to = no_node;
        std::string_view address;  ///< Where `from` is reached (in the parsed payload).
    };
    /// Bytes of a handshake payload: the fixed part (magic, version, cluster, from, to, the
    /// address's length), then the address. Version 1 had no address: 30 bytes, the least
    /// any version sends.
    static constexpr std::size_t handshake_size = 31;
    static constexpr std::size_t min_handshake_size = 30;
    static constexpr std::size_t max_address_bytes = 255;
    static constexpr std::size_t max_handshake_size = handshake_size + max_address_bytes;
    /// Refusals logged once are remembered (by host and reason) up to this many, then
    /// forgotten together: a stranger trying endless ids costs bounded memory.
    static constexpr std::size_t max_logged_refusals = 1024;
    /// Parses a handshake payload, or nothing when it is not one. The magic and version come
    /// first in every version, so another version's handshake parses far enough to be named.
    static std::optional<handshake_fields> parse_handshake(std::string_view h) {
        if (h.size() < min_handshake_size || h.size() > max_handshake_size ||
            h.substr(0, 4) != "CRFT")
            return std::nullopt;
        handshake_fields f;
        f.version = static_cast<std::uint16_t>(static_cast<unsigned char>(h[4]) |
                                               (static_cast<unsigned char>(h[5]) << 8));
        if (f.version != cereal_codec::version) return f;
        if (h.size() < handshake_size) return std::nullopt;
        std::string_view rest = h.substr(6);
        core::detail::get_u64(rest, f.cluster);
        core::detail::get_u64(rest, f.from);
        core::detail::get_u64(rest, f.to);
        const auto n = static_cast<unsigned char>(rest[0]);
        if (rest.size() != 1u + n) return std::nullopt;
        f.address = rest.substr(1);
        return f;
    }

private:
    struct peer {
        peer(asio::io_context& io, node_id i, tcp_endpoint e, std::atomic<std::uint64_t>& drops)
            : id(i), ep(std::move(e)), socket(io), timer(io), dropped(drops) {}
        node_id id;
        tcp_endpoint ep;  // I/O thread (set_peer changes it there)
        asio::ip::tcp::socket socket;
        asio::steady_timer timer;
        mutable std::mutex mutex;  // guards the next six (and `out` while not writing)
        std::deque<message> queue;
        std::size_t queued_bytes = 0;
        bool flush_posted = false;
        bool connected = false;      // set by the I/O thread; a sender then writes directly
        bool writing = false;        // the I/O thread owns `out` and the socket's writes
        bool drop_reported = false;  // a drop was reported; again after a write completes
        std::string out;             // the frames being written
        // I/O thread only:
        bool connecting = false;
        std::chrono::milliseconds backoff{0};
        bool backing_off = false;  // a reconnect is scheduled: flush() must not dial sooner
        std::chrono::steady_clock::time_point connected_at;
        std::string last_error;  // logged once until it changes
        // Of the connection, changed by the I/O thread; stale handlers check it.
        std::atomic<std::uint64_t> generation{0};
        std::array<char, 64> watch_buf{};     // what watch() reads (the peer sends nothing)
        std::atomic<std::uint64_t>& dropped;  // messages its full queue dropped (dropped_)
    };

    /// The peer `id`, or null (the engine's peers map may grow while it runs: set_peer).
    peer* find_peer(node_id id) const {
        std::shared_lock lock(peers_mutex_);
        auto it = e_->peers.find(id);
        return it == e_->peers.end() ? nullptr : it->second.get();
    }

    struct connection {
        explicit connection(asio::io_context& io) : socket(io), deadline(io) {}
        asio::ip::tcp::socket socket;
        asio::steady_timer deadline;
        std::shared_ptr<char[]> buf;  // received bytes; [begin, end) not yet handled
        std::size_t cap = 0, begin = 0, end = 0;
        node_id from = no_node;  // known after the handshake
        std::string remote;
    };

    static constexpr std::size_t read_chunk = 64u << 10;    // a new read buffer's size
    static constexpr std::size_t min_read_room = 4u << 10;  // less room left: a new buffer

    static void put_u32(std::string& out, std::uint32_t v) {
        for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    }
    static std::uint32_t get_u32(const char* p) {
        std::uint32_t v = 0;
        for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
        return v;
    }
    static void put_frame(std::string& out, std::string_view payload) {
        put_u32(out, static_cast<std::uint32_t>(payload.size()));
        put_u32(out, detail::crc32c(std::as_bytes(std::span(payload.data(), payload.size()))));
        out.append(payload);
    }
    /// Appends `m` as a frame, encoded in place (the header is filled in after the payload).
    static void put_message_frame(std::string& out, const message& m) {
        const std::size_t at = out.size();
        out.append(8, '\0');
        cereal_codec::encode_to(out, m);
        const std::string_view payload(out.data() + at + 8, out.size() - at - 8);
        std::string header;  // 8 bytes: no allocation
        put_u32(header, static_cast<std::uint32_t>(payload.size()));
        put_u32(header, detail::crc32c(std::as_bytes(std::span(payload.data(), payload.size()))));
        out.replace(at, 8, header);
    }
    static std::size_t approx_size(const message& m) {
        std::size_t n = 96 + m.snap_data.size();
        for (const auto& e : m.entries) n += 24 + e.data.size();
        return n;
    }

    void log(log_level l, const std::string& line) {
        if (log_) log_(l, "transport " + std::to_string(opt_.id) + ": " + line);
    }

    // ---- outgoing -----------------------------------------------------------------------

    void connect(peer& p) {
        if (stopped_ || p.connected || p.connecting) return;
        p.connecting = true;
        std::error_code ec;
        const auto addr = asio::ip::make_address(p.ep.host, ec);
        if (ec) {
            note_peer_error(p, "bad address '" + p.ep.host + "': " + ec.message());
            p.connecting = false;
            return;
        }
        p.socket = asio::ip::tcp::socket(e_->io);
        p.socket.async_connect(asio::ip::tcp::endpoint(addr, p.ep.port), [this, &p](auto err) {
            p.connecting = false;
            if (stopped_) return;
            if (err) return retry(p, "cannot connect to " + describe(p) + ": " + err.message());
            std::error_code e;
            p.socket.set_option(asio::ip::tcp::no_delay(true), e);
            p.socket.non_blocking(true, e);  // for write_now(): never blocks the sender
            if (e)
                return retry(p,
                             "cannot set up the connection to " + describe(p) + ": " + e.message());
            p.connected_at = std::chrono::steady_clock::now();
            if (!p.last_error.empty()) log(log_level::info, "connected to " + describe(p));
            p.last_error.clear();
            {
                std::lock_guard lock(p.mutex);
                p.connected = p.writing = true;
                p.drop_reported = false;
                p.out.clear();
                put_frame(p.out, handshake(opt_.cluster_id, opt_.id, p.id, advertise_));
            }
            ++p.generation;
            watch(p);
            write(p);
        });
    }

    /// The peer never writes on a connection we opened: a read that ends means it closed it
    /// (it refused our handshake, or stopped). Reconnect now, not when the next message is
    /// lost writing to a dead socket.
    void watch(peer& p) {
        p.socket.async_read_some(asio::buffer(p.watch_buf), [this, &p, gen = p.generation.load()](
                                                                auto err, std::size_t) {
            if (stopped_ || gen != p.generation) return;  // an earlier connection's
            retry(p, "connection to " + describe(p) + " closed by the peer" +
                         (err && err != asio::error::eof ? ": " + err.message() : ""));
        });
    }

    static std::string describe(const peer& p) {
        return "node " + std::to_string(p.id) + " at " + p.ep.host + ":" +
               std::to_string(p.ep.port);
    }

    void note_peer_error(peer& p, const std::string& what) {
        if (what == p.last_error) return;
        p.last_error = what;
        log(log_level::warn, what);
    }

    void retry(peer& p, const std::string& why) {
        note_peer_error(p, why);
        ++p.generation;  // the closed connection's handlers are stale from here
        bool was_connected = false;
        {
            std::lock_guard lock(p.mutex);
            was_connected = std::exchange(p.connected, false);
            p.writing = false;
            p.out.clear();
        }
        std::error_code ec;
        p.socket.close(ec);
        if (was_connected) report_unreachable(p);  // what it was writing is lost
        // A connection that lived a while was healthy: start the back-off afresh. One closed
        // at once (a peer refusing our handshake) keeps backing off.
        if (was_connected &&
            std::chrono::steady_clock::now() - p.connected_at > std::chrono::seconds(1))
            p.backoff = std::chrono::milliseconds(0);
        const auto lo = std::max(opt_.backoff_min, p.backoff * 2);
        p.backoff = std::min(lo, opt_.backoff_max);
        std::uniform_int_distribution<long> jitter(0, p.backoff.count() / 2 + 1);
        const auto delay = p.backoff + std::chrono::milliseconds(jitter(rng_));
        p.timer.expires_after(delay);
        p.backing_off = true;
        p.timer.async_wait([this, &p](auto err) {
            p.backing_off = false;
            if (!err && !stopped_) connect(p);
        });
    }

    /// Tells the node that messages to `p` were lost (I/O thread).
    void report_unreachable(const peer& p) {
        if (unreachable_) unreachable_(p.id);
    }

    /// Encodes everything queued for `p` into one buffer and writes it.
    void flush(peer& p) {
        std::deque<message> batch;
        {
            std::lock_guard lock(p.mutex);
            p.flush_posted = false;
            if (!p.connected || p.writing) {
                if (!p.connected && !p.connecting && !p.backing_off)
                    asio::post(e_->io, [this, &p] { connect(p); });
                return;
            }
            batch.swap(p.queue);
            p.queued_bytes = 0;
            if (batch.empty()) return;
            p.writing = true;  // from here, no sender writes ahead of this batch
        }
        p.out.clear();
        for (const auto& m : batch) put_message_frame(p.out, m);
        msgs_sent_.fetch_add(batch.size(), std::memory_order_relaxed);
        bytes_sent_.fetch_add(p.out.size(), std::memory_order_relaxed);
        write(p);
    }

    /// Writes `p.out` (the caller set `p.writing`, under the lock).
    void write(peer& p) {
        asio::async_write(
            p.socket, asio::buffer(p.out),
            [this, &p, gen = p.generation.load()](auto err, std::size_t) {
                if (stopped_ || gen != p.generation) return;  // watch() saw it closed first
                if (err)
                    return retry(p, "lost the connection to " + describe(p) + ": " + err.message());
                bool more = false;
                {
                    std::lock_guard lock(p.mutex);
                    p.writing = false;
                    p.drop_reported = false;  // it reads again
                    more = !p.queue.empty() && !p.flush_posted;
                    if (more) p.flush_posted = true;
                }
                if (more) flush(p);
            });
    }

    /// Writes `m` from the sender's thread (`p.mutex` held; connected, nothing queued or being
    /// written); what the socket does not take now, the I/O thread writes.
    void write_now(peer& p, const message& m) {
        p.out.clear();
        put_message_frame(p.out, m);
        msgs_sent_.fetch_add(1, std::memory_order_relaxed);
        bytes_sent_.fetch_add(p.out.size(), std::memory_order_relaxed);
        std::error_code ec;
        const std::size_t n = p.socket.write_some(asio::buffer(p.out), ec);
        if (!ec && n == p.out.size()) return;
        p.writing = true;  // the rest, and what queues behind it, go from the I/O thread
        if (ec && ec != asio::error::would_block && ec != asio::error::try_again &&
            ec != asio::error::interrupted) {
            asio::post(e_->io, [this, &p, why = ec.message(), gen = p.generation.load()] {
                if (gen == p.generation)
                    retry(p, "lost the connection to " + describe(p) + ": " + why);
            });
            return;
        }
        p.out.erase(0, ec ? 0 : n);
        asio::post(e_->io, [this, &p] { write(p); });
    }

    // ---- incoming -----------------------------------------------------------------------

    void accept() {
        auto c = std::make_shared<connection>(e_->io);
        e_->acceptor.async_accept(c->socket, [this, c](auto err) {
            if (stopped_ || err == asio::error::operation_aborted) return;
            if (!err) {
                std::error_code ec;
                const auto remote = c->socket.remote_endpoint(ec);
                c->remote =
                    ec ? "?" : remote.address().to_string() + ":" + std::to_string(remote.port());
                c->socket.set_option(asio::ip::tcp::no_delay(true), ec);
                e_->incoming.push_back(c);
                c->deadline.expires_after(opt_.handshake_timeout);
                c->deadline.async_wait([this, c](auto e) {
                    if (!e && c->from == no_node) refuse(c, "no handshake within the timeout");
                });
                read_more(c);
            }
            accept();
        });
    }

    /// Closes a connection that sent bad input, with one log line; a refused handshake
    /// (another cluster, version or node) is logged once per remote host and reason, since a
    /// misconfigured peer keeps reconnecting.
    void refuse(const std::shared_ptr<connection>& c, const std::string& why, bool once = false) {
        if (!c->socket.is_open()) return;
        ++rejected_;
        const std::string host = c->remote.substr(0, c->remote.rfind(':'));
        if (once && logged_.size() >= max_logged_refusals) logged_.clear();  // bounded memory
        if (!once || logged_.insert(host + " " + why).second)
            log(log_level::warn, "closed connection from " + c->remote +
                                     (c->from ? " (node " + std::to_string(c->from) + ")" : "") +
                                     ": " + why + (once ? " (logged once)" : ""));
        drop(c);
    }
    void drop(const std::shared_ptr<connection>& c) {
        std::error_code ec;
        c->socket.close(ec);
        c->deadline.cancel();
        std::erase(e_->incoming, c);
    }

    /// Reads what the socket has into the connection's buffer and handles every whole frame in
    /// it: one read for many frames. Decoded payloads share the buffer, which is filled front
    /// to back and replaced when nearly full (the unparsed tail moves to the new one), so it
    /// lives as long as any payload in it.
    void read_more(const std::shared_ptr<connection>& c) {
        // Before the handshake, a buffer for the handshake alone: an unknown connection
        // costs next to nothing.
        const std::size_t chunk = c->from == no_node ? 8 + max_handshake_size : read_chunk;
        if (!c->buf || c->cap - c->end < std::min(chunk, min_read_room)) {
            const std::size_t pending = c->end - c->begin;
            std::size_t need = 8;  // bytes of the next frame (its header, until that is read)
            if (pending >= 8) need += read_header(c->buf.get() + c->begin).length;
            // A long frame's buffer grows with what has arrived of it (at most twice that plus
            // one read, so its bytes are copied a few times at most), never by what its header
            // claims alone.
            const std::size_t cap = std::max(chunk, std::min(need, 2 * pending + chunk));
            auto buf = std::make_shared_for_overwrite<char[]>(cap);
            read_buffer_bytes_.fetch_add(cap, std::memory_order_relaxed);
            if (pending) std::memcpy(buf.get(), c->buf.get() + c->begin, pending);
            c->buf = std::move(buf);
            c->cap = cap;
            c->begin = 0;
            c->end = pending;
        }
        c->socket.async_read_some(
            asio::buffer(c->buf.get() + c->end, c->cap - c->end),
            [this, c](auto err, std::size_t n) {
                if (stopped_) return;
                if (err) {
                    const bool midway = c->end != c->begin;
                    if (c->from == no_node && err != asio::error::operation_aborted)
                        return refuse(c, midway ? "truncated frame"
                                                : "connection ended before a handshake (" +
                                                      err.message() + ")");
                    if (midway && err != asio::error::eof && err != asio::error::operation_aborted)
                        return refuse(c, "read failed: " + err.message());
                    return drop(c);  // a peer going away is not bad input
                }
                c->end += n;
                // What this read delivered is announced however the read ends (a frame
                // refused after good ones included).
                struct announce {
                    asio_tcp_transport& t;
                    std::uint64_t before;
                    ~announce() {
                        if (t.delivered_ &&
                            t.msgs_received_.load(std::memory_order_relaxed) != before)
                            t.delivered_();
                    }
                } announce_delivered{*this, msgs_received_.load(std::memory_order_relaxed)};
                while (c->end - c->begin >= 8) {
                    const char* at = c->buf.get() + c->begin;
                    const frame_header h = read_header(at);
                    if (h.length > opt_.max_frame_bytes)
                        return refuse(
                            c, "frame of " + std::to_string(h.length) + " bytes exceeds the " +
                                   std::to_string(opt_.max_frame_bytes) + "-byte maximum");
                    if (c->from == no_node &&
                        (h.length < min_handshake_size || h.length > max_handshake_size))
                        return refuse(c, "first frame of " + std::to_string(h.length) +
                                             " bytes is not a handshake");
                    if (c->end - c->begin < 8 + std::size_t{h.length}) break;
                    c->begin += 8 + std::size_t{h.length};
                    if (!on_frame(c, h, std::string_view(at + 8, h.length))) return;
                }
                read_more(c);
            });
    }

    /// Handles one whole frame; false when the connection was refused.
    bool on_frame(const std::shared_ptr<connection>& c, const frame_header& h,
                  std::string_view payload) {
        if (!payload_intact(h, payload)) return refuse(c, "frame fails its checksum"), false;
        if (c->from == no_node) {
            if (auto why = check_handshake(payload, c->from)) return refuse(c, *why, true), false;
            c->deadline.cancel();
            return true;
        }
        std::string why;
        // The decoded payloads share the read buffer: no copy.
        auto m = cereal_codec::decode(std::shared_ptr<const void>(c->buf), payload, &why);
        if (!m) return refuse(c, "undecodable message: " + why), false;
        if (m->from != c->from || m->to != opt_.id)
            return refuse(c, "message from " + std::to_string(m->from) + " to " +
                                 std::to_string(m->to) + " on the connection of node " +
                                 std::to_string(c->from)),
                   false;
        msgs_received_.fetch_add(1, std::memory_order_relaxed);
        bytes_received_.fetch_add(payload.size() + 8, std::memory_order_relaxed);
        if (handler_) handler_(std::move(*m));
        return true;
    }

    /// Why the handshake is refused, or nothing; sets `from` when accepted. A node of this
    /// cluster that is not among the peers (one added to the membership since this node
    /// last learned of it, which it learns only from that node if it leads) becomes one at
    /// the address it gives, so that it can be answered (I/O thread).
    std::optional<std::string> check_handshake(std::string_view h, node_id& from) {
        const auto f = parse_handshake(h);
        if (!f) return "not a craft handshake";
        if (f->version != cereal_codec::version)
            return "wire version " + std::to_string(f->version) + ", this node speaks " +
                   std::to_string(cereal_codec::version);
        const std::uint64_t cluster = f->cluster;
        const node_id sender = f->from, target = f->to;
        if (cluster != opt_.cluster_id)
            return "cluster id " + std::to_string(cluster) + ", this node belongs to cluster " +
                   std::to_string(opt_.cluster_id);
        if (target != opt_.id)
            return "handshake for node " + std::to_string(target) + ", this is node " +
                   std::to_string(opt_.id);
        if (sender == opt_.id || sender == no_node)
            return "handshake from node " + std::to_string(sender) + ", this is node " +
                   std::to_string(opt_.id);
        if (!find_peer(sender)) {
            std::string why;
            auto ep = tcp_endpoint::parse(f->address, &why);
            if (!ep)
                return "unknown node id " + std::to_string(sender) +
                       (f->address.empty() ? " (it gave no address)"
                                           : " (its address " + why + ")");
            if (!add_unlisted_peer(sender, *ep))
                return "unknown node id " + std::to_string(sender) + ": " +
                       std::to_string(opt_.max_unlisted_peers) +
                       " nodes not in the address book are answered already "
                       "(transport option max_unlisted_peers)";
            log(log_level::info, "node " + std::to_string(sender) + " (at " + ep->to_string() +
                                     ", not in the address book) connected: answering there");
        }
        from = sender;
        return std::nullopt;
    }

    /// Adds a peer that is not in the address book on the I/O thread (which must not take
    /// `e_mutex_`: stop() holds it while joining this thread); false when
    /// `max_unlisted_peers` are answered already.
    bool add_unlisted_peer(node_id id, const tcp_endpoint& ep) {
        peer* p = nullptr;
        {
            std::unique_lock lock(peers_mutex_);
            if (e_->peers.count(id)) return true;  // listed meanwhile (set_peer): keep its address
            if (unlisted_.size() >= opt_.max_unlisted_peers) return false;
            unlisted_.insert(id);
            opt_.peers.insert_or_assign(id, ep);
            p = emplace_peer(id, ep);
        }
        connect(*p);
        return true;
    }

    /// Makes the engine's peer `id` at `ep` (with `peers_mutex_` held, or `e_mutex_` owned).
    peer* emplace_peer(node_id id, const tcp_endpoint& ep) {
        return e_->peers.emplace(id, std::make_unique<peer>(e_->io, id, ep, dropped_[id]))
            .first->second.get();
    }

    /// One run of the transport, from start to stop.
    struct engine {
        asio::io_context io;
        std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
        asio::ip::tcp::acceptor acceptor{io};
        std::map<node_id, std::unique_ptr<peer>> peers;
        std::vector<std::shared_ptr<connection>> incoming;
        std::thread thread;
        ~engine() {
            incoming.clear();
            peers.clear();  // sockets and timers before the io_context
        }
    };

    options opt_;
    log_sink log_;
    std::unique_ptr<engine> e_;
    mutable std::shared_mutex e_mutex_;  // send() shares it; start() and stop() own it
    // Guards the engine's peers map and dropped_ against set_peer (never held while
    // waiting for anything else).
    mutable std::shared_mutex peers_mutex_;
    std::map<node_id, std::atomic<std::uint64_t>> dropped_;  // per peer, across runs
    std::set<node_id> unlisted_;    // peers added from their handshakes alone, across runs
    std::set<std::string> logged_;  // refusals already logged (I/O thread)
    std::function<void(message&&)> handler_;
    std::function<void(node_id)> unreachable_;  // set before start()
    std::function<void()> delivered_;           // set before start()
    std::atomic<bool> stopped_{true};
    std::atomic<std::uint64_t> rejected_{0};
    std::atomic<std::uint64_t> msgs_sent_{0}, bytes_sent_{0}, msgs_received_{0}, bytes_received_{0};
    std::atomic<std::uint64_t> read_buffer_bytes_{0};
    std::atomic<std::uint16_t> local_port_{0};
    std::string advertise_;  // set by start(), before the I/O thread runs
    std::minstd_rand rng_{std::random_device{}()};
};

static_assert(transport<asio_tcp_transport>);

}  // namespace craft
