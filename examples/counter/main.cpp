// craft-counter: replicated counters, the service TAF libraft's documentation builds
// (a count per key, changed by INCRBY/DECRBY, read by GET), served over the Redis protocol.
//
//   craft-counter --id 1 --peers 1=127.0.0.1:7101,2=127.0.0.1:7102,3=127.0.0.1:7103
//                 --data-dir /tmp/c1 --client-port 6501 --http-port 8101   (one line)
//   redis-cli -p 6501 INCRBY visits 5
//
// This is the smallest complete craft service: a state machine of ~40 lines (apply in
// batches, snapshot save/load) and a command table; everything else (forwarding to the
// leader, retries while there is no leader, /status, /metrics, signals) is shared with
// craft-kv in examples/common.

#include <cereal/types/map.hpp>
#include <cereal/types/string.hpp>

#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "../common/service.hpp"
#include "../common/snapshot_file.hpp"

namespace {

using namespace craft;
namespace resp = craft::examples::resp;

/// INCRBY key delta, as it travels through the log.
struct add {
    std::string key;
    long long delta = 0;
    template <class Ar>
    void serialize(Ar& ar) {
        ar(key, delta);
    }
};

struct counters {
    std::map<std::string, long long> values;

    /// One reply per command: the new value, or an overflow error.
    std::vector<std::string> apply(std::span<const entry> batch) {
        std::vector<std::string> out;
        out.reserve(batch.size());
        for (const auto& e : batch) {
            auto c = decode<add>(e);
            if (!c) {
                out.push_back(resp::error("ERR undecodable command in the log"));
                continue;
            }
            long long& v = values[c->key];
            long long next = 0;
            if (__builtin_add_overflow(v, c->delta, &next)) {
                out.push_back(resp::error("ERR increment or decrement would overflow"));
                continue;
            }
            v = next;
            out.push_back(resp::integer(v));
        }
        return out;
    }
    status save_snapshot(snapshot_writer& w) const {
        return craft::examples::save_file(w, "counters", values);
    }
    status load_snapshot(snapshot_reader& r) {
        return craft::examples::load_file(r, "counters", values);
    }
};

using service = craft::examples::service<counters>;

void handle(service& svc, std::vector<std::string>& args, const service::reply_fn& reply) {
    if (args.empty()) return reply(resp::error("ERR empty command"));
    if (svc.common_command(args, reply)) return;
    const auto cmd = resp::lower(args[0]);
    if (cmd == "incrby" || cmd == "decrby" || cmd == "incr" || cmd == "decr") {
        const bool by = cmd.ends_with("by");
        if (args.size() != (by ? 3u : 2u)) return reply(service::arity(cmd));
        auto delta = by ? resp::to_int(args[2]) : std::optional<long long>(1);
        if (!delta || *delta == LLONG_MIN)
            return reply(resp::error("ERR value is not an integer or out of range"));
        const long long d = cmd.starts_with("decr") ? -*delta : *delta;
        svc.write_reply(craft::encode(add{std::move(args[1]), d}), reply);
    } else if (cmd == "get") {
        if (args.size() != 2) return reply(service::arity(cmd));
        svc.read_reply(
            [k = std::move(args[1])](const counters& c) {
                auto it = c.values.find(k);
                return it == c.values.end() ? resp::null_bulk()
                                            : resp::bulk(std::to_string(it->second));
            },
            reply);
    } else {
        reply(service::unknown(args));
    }
}

}  // namespace

int main(int argc, char** argv) {
    return craft::examples::serve<counters>(
        argc, argv, "craft-counter: replicated counters over the Redis protocol (RESP2)", handle,
        craft::examples::writes_are({"incr", "decr", "incrby", "decrby"}));
}
