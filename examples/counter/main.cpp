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
        std::ostringstream os(std::ios::binary);
        {
            cereal::PortableBinaryOutputArchive ar(os);
            ar(values);
        }
        return w.add_file("counters", os.str());
    }
    status load_snapshot(snapshot_reader& r) {
        auto bytes = r.read_file("counters");
        if (!bytes) return status::error("craft-counter: snapshot has no 'counters' file");
        try {
            std::istringstream is(*bytes, std::ios::binary);
            cereal::PortableBinaryInputArchive ar(is);
            std::map<std::string, long long> m;
            ar(m);
            values = std::move(m);
        } catch (const std::exception& e) {
            return status::error(std::string("craft-counter: unreadable snapshot: ") + e.what());
        }
        return {};
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
        svc.write(
            craft::encode(add{std::move(args[1]), d}), [&svc, reply](service::proposal_outcome o) {
                reply(o.ok() ? std::move(o.value) : svc.failure_reply(o.error, o.not_applied));
            });
    } else if (cmd == "get") {
        if (args.size() != 2) return reply(service::arity(cmd));
        svc.read(
            [k = std::move(args[1])](const counters& c) {
                auto it = c.values.find(k);
                return it == c.values.end() ? resp::null_bulk()
                                            : resp::bulk(std::to_string(it->second));
            },
            [&svc, reply](outcome<std::string> o) {
                reply(o.ok() ? std::move(o.value) : svc.failure_reply(o.error, true));
            });
    } else {
        reply(service::unknown(args));
    }
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"craft-counter: replicated counters over the Redis protocol (RESP2)"};
    craft::examples::service_flags flags;
    craft::examples::add_service_flags(app, flags);
    if (auto code = craft::examples::parse_flags(app, argc, argv, flags)) return *code;
    counters state;
    service svc(flags, state);
    return svc.run([&svc](std::vector<std::string>& args,
                          service::reply_fn reply) { handle(svc, args, reply); },
                   [](const std::vector<std::string>& args) {
                       if (args.empty()) return false;
                       const auto c = resp::lower(args[0]);
                       return c == "incr" || c == "decr" || c == "incrby" || c == "decrby";
                   });
}
