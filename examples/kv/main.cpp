// craft-kv: a replicated key-value store that speaks the Redis protocol (RESP2).
//
//   craft-kv --id 1 --peers 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003
//            --data-dir /tmp/kv1 --client-port 6401 --http-port 8001   (one command line)
//
// Writes (SET, DEL, INCR, INCRBY, DECR, DECRBY, MSET) go through the Raft log; reads (GET,
// EXISTS, MGET, DBSIZE) are linearizable (ReadIndex through the leader). Any node takes any
// command: a follower forwards writes to the leader and asks it for the read point. The state
// is an in-memory hash map, rebuilt at start from the newest snapshot plus the log (see
// README.md for why).

#include <cereal/types/string.hpp>
#include <cereal/types/unordered_map.hpp>
#include <cereal/types/vector.hpp>

#include <cstdint>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "../common/service.hpp"
#include "../common/snapshot_file.hpp"

namespace {

using namespace craft;
namespace resp = craft::examples::resp;

/// A write, as it travels through the log.
struct kv_command {
    enum op : std::uint8_t { set, del, incrby, mset };
    std::uint8_t code = set;
    std::vector<std::string> args;  ///< set: key value; del: keys; incrby: key n; mset: k v...

    template <class Ar>
    void serialize(Ar& ar) {
        ar(code, args);
    }
};

using map_type = std::unordered_map<std::string, std::string>;

/// The largest reply a read builds (MGET); a GET's reply is bounded by the largest command.
constexpr std::size_t max_reply_bytes = 64u << 20;

/// The state machine: apply returns each command's RESP reply, computed on every node (so a
/// follower that forwarded a write answers its client from its own apply).
struct kv_store {
    map_type data;

    std::vector<std::string> apply(std::span<const entry> batch) {
        std::vector<std::string> out;
        out.reserve(batch.size());
        for (const auto& e : batch) out.push_back(apply_one(e));
        return out;
    }

    std::string apply_one(const entry& e) {
        auto c = decode<kv_command>(e);
        if (!c) return resp::error("ERR undecodable command in the log");
        auto& a = c->args;
        switch (c->code) {
        case kv_command::set:
            if (a.size() != 2) break;
            data.insert_or_assign(std::move(a[0]), std::move(a[1]));
            return resp::ok();
        case kv_command::del: {
            long long n = 0;
            for (const auto& k : a) n += static_cast<long long>(data.erase(k));
            return resp::integer(n);
        }
        case kv_command::incrby: {
            if (a.size() != 2) break;
            const auto by = resp::to_int(a[1]);
            auto it = data.find(a[0]);
            const auto cur =
                it == data.end() ? std::optional<long long>(0) : resp::to_int(it->second);
            if (!by || !cur) return resp::error("ERR value is not an integer or out of range");
            long long next = 0;
            if (__builtin_add_overflow(*cur, *by, &next))
                return resp::error("ERR increment or decrement would overflow");
            data.insert_or_assign(a[0], std::to_string(next));
            return resp::integer(next);
        }
        case kv_command::mset:
            if (a.empty() || a.size() % 2) break;
            for (std::size_t i = 0; i + 1 < a.size(); i += 2)
                data.insert_or_assign(std::move(a[i]), std::move(a[i + 1]));
            return resp::ok();
        default: break;
        }
        return resp::error("ERR malformed command in the log");
    }

    status save_snapshot(snapshot_writer& w) const {
        return craft::examples::save_file(w, "data", data);
    }
    /// A copy of the map, saved while applying goes on.
    auto prepare_snapshot() const {
        return [copy = data](snapshot_writer& w) {
            return craft::examples::save_file(w, "data", copy);
        };
    }
    status load_snapshot(snapshot_reader& r) { return craft::examples::load_file(r, "data", data); }
};

using service = craft::examples::service<kv_store>;

/// Answers one client command.
void handle(service& svc, std::vector<std::string>& args, const service::reply_fn& reply) {
    if (args.empty()) return reply(resp::error("ERR empty command"));
    if (svc.common_command(args, reply)) return;
    const auto cmd = resp::lower(args[0]);
    const auto n = args.size();

    auto write = [&](std::uint8_t code, std::size_t first) {
        kv_command c{code,
                     {std::make_move_iterator(args.begin() + static_cast<long>(first)),
                      std::make_move_iterator(args.end())}};
        svc.write_reply(craft::encode(c), reply);
    };
    auto read = [&](auto f) { svc.read_reply(std::move(f), reply); };

    if (cmd == "set") {
        if (n != 3) return reply(resp::error("ERR syntax error (SET key value; no options)"));
        write(kv_command::set, 1);
    } else if (cmd == "del") {
        if (n < 2) return reply(service::arity(cmd));
        write(kv_command::del, 1);
    } else if (cmd == "incr" || cmd == "decr") {
        if (n != 2) return reply(service::arity(cmd));
        args.push_back(cmd == "incr" ? "1" : "-1");
        write(kv_command::incrby, 1);
    } else if (cmd == "incrby" || cmd == "decrby") {
        if (n != 3) return reply(service::arity(cmd));
        auto by = resp::to_int(args[2]);
        if (!by || (cmd == "decrby" && *by == LLONG_MIN))
            return reply(resp::error("ERR value is not an integer or out of range"));
        if (cmd == "decrby") args[2] = std::to_string(-*by);
        write(kv_command::incrby, 1);
    } else if (cmd == "mset") {
        if (n < 3 || n % 2 == 0) return reply(service::arity(cmd));
        write(kv_command::mset, 1);
    } else if (cmd == "get") {
        if (n != 2) return reply(service::arity(cmd));
        read([k = std::move(args[1])](const kv_store& s) {
            auto it = s.data.find(k);
            return it == s.data.end() ? resp::null_bulk() : resp::bulk(it->second);
        });
    } else if (cmd == "exists") {
        if (n < 2) return reply(service::arity(cmd));
        read([keys = std::vector<std::string>(args.begin() + 1, args.end())](const kv_store& s) {
            long long c = 0;
            for (const auto& k : keys) c += static_cast<long long>(s.data.count(k));
            return resp::integer(c);
        });
    } else if (cmd == "mget") {
        if (n < 2) return reply(service::arity(cmd));
        read([keys = std::vector<std::string>(args.begin() + 1, args.end())](const kv_store& s) {
            // Sized before it is built: a short request naming one large value many times
            // must not make a reply of gigabytes on the apply thread.
            std::size_t bytes = 0;
            for (const auto& k : keys) {
                auto it = s.data.find(k);
                bytes += 32 + (it == s.data.end() ? 0 : it->second.size());
            }
            if (bytes > max_reply_bytes)
                return resp::error("ERR MGET reply of about " + std::to_string(bytes) +
                                   " bytes is over the " + std::to_string(max_reply_bytes) +
                                   "-byte limit; ask for fewer keys");
            std::string r = resp::array_header(keys.size());
            r.reserve(bytes);
            for (const auto& k : keys) {
                auto it = s.data.find(k);
                r += it == s.data.end() ? resp::null_bulk() : resp::bulk(it->second);
            }
            return r;
        });
    } else if (cmd == "dbsize") {
        if (n != 1) return reply(service::arity(cmd));
        read(
            [](const kv_store& s) { return resp::integer(static_cast<long long>(s.data.size())); });
    } else {
        reply(service::unknown(args));
    }
}

}  // namespace

int main(int argc, char** argv) {
    return craft::examples::serve<kv_store>(
        argc, argv, "craft-kv: a replicated key-value store speaking the Redis protocol (RESP2)",
        handle,
        craft::examples::writes_are({"set", "del", "incr", "decr", "incrby", "decrby", "mset"}));
}
