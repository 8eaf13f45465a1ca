#pragma once
// What the example servers share: flags (CLI11), a craft node over the default policies, the
// RESP server and the HTTP admin endpoint, proposals and reads retried while the cluster has
// no leader (bounded by --command-timeout-ms), the commands every server answers (PING, INFO,
// ...), and a clean stop on SIGINT/SIGTERM.

#include <craft/node.hpp>

#include <CLI/CLI.hpp>
#include <asio.hpp>

#include <chrono>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "admin.hpp"
#include "resp_server.hpp"

namespace craft::examples {

/// The flags of every example server.
struct service_flags {
    node_id id = 0;
    std::map<node_id, tcp_endpoint> peers;
    std::vector<node_id> initial_voters;  ///< Empty: every peer.
    std::string data_dir;
    std::string host = "127.0.0.1";  ///< Where clients and the HTTP endpoint are served.
    std::uint16_t client_port = 0;
    std::uint16_t http_port = 0;
    std::uint64_t cluster_id = 1;
    int tick_ms = 10;
    int heartbeat_ms = 100;
    int election_timeout_ms = 1000;
    int command_timeout_ms = 5000;
    std::size_t max_bulk_bytes = 1 << 20;
    std::size_t max_args = 1 << 20;
    bool no_sync = false;
    bool no_forward = false;
    std::uint64_t snapshot_entries = 100'000;
    std::string log_level = "info";
};

/// Parses "1=127.0.0.1:7001,2=127.0.0.1:7002"; throws CLI::ValidationError naming the item.
inline std::map<node_id, tcp_endpoint> parse_peers(const std::string& s) {
    std::string why;
    auto out = parse_peer_list(s, &why);
    if (!out)
        throw CLI::ValidationError("--peers", why + (why.find("id=host:port") == std::string::npos
                                                         ? "; --peers is id=host:port,..."
                                                         : ""));
    if (out->empty()) throw CLI::ValidationError("--peers", "no peers given");
    return *out;
}

/// Adds the shared flags to `app`.
inline void add_service_flags(CLI::App& app, service_flags& f) {
    app.add_option("--id", f.id, "this node's id (as in --peers)")->required();
    app.add_option_function<std::string>(
           "--peers", [&f](const std::string& s) { f.peers = parse_peers(s); },
           "every node's Raft address, this one included: 1=127.0.0.1:7001,2=...")
        ->required();
    app.add_option("--initial-voters", f.initial_voters,
                   "voters of a new cluster, e.g. 1,2,3 (default: every peer); a node not "
                   "among them waits to be added (craftctl add-learner / add-voter); the "
                   "log's membership rules once it has one")
        ->delimiter(',');
    app.add_option("--data-dir", f.data_dir, "where this node keeps its log and snapshots")
        ->required();
    app.add_option("--client-port", f.client_port, "port for Redis-protocol clients")->required();
    app.add_option("--http-port", f.http_port, "port for /status, /metrics and craftctl")
        ->required();
    app.add_option("--host", f.host, "address clients and HTTP are served on (an IP address)")
        ->check(
            [](const std::string& h) {
                std::error_code ec;
                asio::ip::make_address(h, ec);
                return ec ? "'" + h + "' is not an IP address (names are not resolved)"
                          : std::string();
            },
            "IP")
        ->capture_default_str();
    app.add_option("--cluster-id", f.cluster_id, "refuse peers and data of other clusters")
        ->capture_default_str();
    app.add_option("--tick-ms", f.tick_ms, "resolution of Raft's timers")
        ->check(CLI::Range(1, 1000))
        ->capture_default_str();
    app.add_option("--heartbeat-ms", f.heartbeat_ms, "leader heartbeat interval")
        ->check(CLI::Range(1, 60000))
        ->capture_default_str();
    app.add_option("--election-timeout-ms", f.election_timeout_ms,
                   "election timeout (randomized in [t, 2t))")
        ->check(CLI::Range(2, 600000))
        ->capture_default_str();
    app.add_option("--command-timeout-ms", f.command_timeout_ms,
                   "a command not answered by then (e.g. no leader) gets an error reply")
        ->check(CLI::Range(10, 600000))
        ->capture_default_str();
    app.add_option("--max-bulk-bytes", f.max_bulk_bytes, "largest argument a client may send")
        ->check(CLI::Range(std::size_t{1}, node_options{}.max_entry_bytes))
        ->capture_default_str();
    app.add_option("--max-args", f.max_args, "most arguments in one command")
        ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 24))
        ->capture_default_str();
    app.add_option("--snapshot-entries", f.snapshot_entries,
                   "take a snapshot after this many applied entries (0: never by count)")
        ->capture_default_str();
    app.add_flag("--no-sync", f.no_sync, "do not sync the log (fast; may lose acknowledged data)");
    app.add_flag("--no-forward", f.no_forward,
                 "followers refuse writes instead of forwarding them to the leader");
    app.add_option("--log-level", f.log_level, "debug, info, warn, error or off")
        ->check(CLI::IsMember({"debug", "info", "warn", "error", "off"}))
        ->capture_default_str();
}

/// Parses argv with the shared flags plus `extra`; returns an exit code when main should
/// return at once (help, or a wrong flag: usage printed, non-zero).
inline std::optional<int> parse_flags(CLI::App& app, int argc, char** argv, service_flags& f) {
    app.failure_message(CLI::FailureMessage::help);  // a wrong flag prints the usage
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }
    if (!f.peers.count(f.id)) {
        std::cerr << "--peers must include this node (--id " << f.id << ")\n" << app.help();
        return 2;
    }
    for (node_id v : f.initial_voters)
        if (!f.peers.count(v)) {
            std::cerr << "--initial-voters: node " << v << " is not in --peers\n";
            return 2;
        }
    return std::nullopt;
}

/// A craft node serving Redis-protocol clients and the HTTP admin endpoint.
template <class StateMachine>
class service {
public:
    using node_type = craft::node<StateMachine>;
    using proposal_outcome = typename node_type::proposal_outcome;
    using reply_fn = resp::server::reply_fn;
    using clock = std::chrono::steady_clock;

    service(const service_flags& f, StateMachine& sm)
        : flags_(f), node_(options(f), sm, logger(f)) {}

    node_type& node() { return node_; }
    asio::io_context& io() { return io_; }

    /// Proposes `command`; while it is known not to be applied (no leader yet, leadership
    /// moving) it is retried until the command timeout. `done` runs on any thread.
    void write(shared_bytes command, std::function<void(proposal_outcome)> done) {
        if (const auto limit = node_.options().max_entry_bytes; command.size() > limit) {
            proposal_outcome o;  // refused for good: not retried
            o.error = status::error("command of " + std::to_string(command.size()) +
                                    " bytes (encoded) is over the " + std::to_string(limit) +
                                    "-byte limit of one log entry");
            return done(std::move(o));
        }
        attempt_write(std::move(command), std::move(done), deadline());
    }

    /// A linearizable read of `f(state machine)`, retried like `write`.
    template <class F>
    void read(F f,
              std::function<void(outcome<std::invoke_result_t<F&, const StateMachine&>>)> done) {
        attempt_read(std::move(f), std::move(done), deadline());
    }

    /// Proposes `command` and answers the client with the state machine's reply (`apply`
    /// returns the RESP reply of each command), or with why it failed.
    void write_reply(shared_bytes command, reply_fn reply) {
        write(std::move(command), [this, reply](proposal_outcome o) {
            reply(o.ok() ? std::move(o.value) : failure_reply(o.error, o.not_applied));
        });
    }
    /// Runs `f` (returning a RESP reply) as a linearizable read and answers the client.
    template <class F>
    void read_reply(F f, reply_fn reply) {
        read(std::move(f), [this, reply](outcome<std::string> o) {
            reply(o.ok() ? std::move(o.value) : failure_reply(o.error, true));
        });
    }

    /// The error reply for a failed outcome: TRYAGAIN when the command surely did not take
    /// effect and no leader could be found in time, ERR otherwise.
    std::string failure_reply(const status& error, bool not_applied) const {
        if (not_applied && node_.leader() == no_node)
            return resp::error("TRYAGAIN no leader: " + error.message());
        return resp::error("ERR " + error.message());
    }

    /// Answers the commands every server knows; false when `args[0]` is not one of them.
    bool common_command(std::vector<std::string>& args, const reply_fn& reply) {
        const auto cmd = resp::lower(args[0]);
        if (cmd == "ping") {
            if (args.size() > 2) return reply(arity(cmd)), true;
            reply(args.size() == 2 ? resp::bulk(args[1]) : resp::simple("PONG"));
        } else if (cmd == "echo") {
            if (args.size() != 2) return reply(arity(cmd)), true;
            reply(resp::bulk(args[1]));
        } else if (cmd == "info") {
            reply(resp::bulk(info()));
        } else if (cmd == "command" || cmd == "config") {
            // redis-cli and redis-benchmark ask these at start; we have nothing to say.
            reply(resp::array_header(0));
        } else if (cmd == "select") {
            reply(args.size() == 2 && args[1] == "0" ? resp::ok()
                                                     : resp::error("ERR only database 0 exists"));
        } else if (cmd == "client") {
            reply(resp::ok());
        } else {
            return false;
        }
        return true;
    }

    static std::string arity(const std::string& cmd) {
        return resp::error("ERR wrong number of arguments for '" + cmd + "' command");
    }
    static std::string unknown(const std::vector<std::string>& args) {
        return resp::error("ERR unknown command '" + args[0].substr(0, 64) + "'");
    }

    /// INFO's text: the server and its Raft state.
    std::string info() const {
        const auto j = status_json(node_);
        std::ostringstream o;
        o << "# Server\r\ncraft_version:" << craft::version_string << "\r\nnode_id:" << flags_.id
          << "\r\ntcp_port:" << flags_.client_port << "\r\nhttp_port:" << flags_.http_port
          << "\r\n\r\n# Raft\r\n";
        for (const char* k :
             {"state", "term", "leader", "leader_address", "commit_index", "applied_index",
              "first_index", "last_index", "snapshot_index", "snapshot_term"}) {
            if (!j.contains(k)) continue;
            const auto& v = j[k];
            o << (std::string(k) == "state" ? "role" : k) << ":"
              << (v.is_string() ? v.template get<std::string>() : v.dump()) << "\r\n";
        }
        return o.str();
    }

    /// Starts the node, the client server and HTTP; serves until SIGINT/SIGTERM; stops.
    int run(resp::server::handler handler, resp::server::classifier is_write = {}) {
        if (auto st = node_.start(); !st) {
            std::cerr << st.message() << "\n";
            return 1;
        }
        resp::server::options so;
        so.host = flags_.host;
        so.port = flags_.client_port;
        so.limits.max_bulk_bytes = flags_.max_bulk_bytes;
        so.limits.max_args = flags_.max_args;
        // A request becomes one log entry: no larger than the node takes (its encoding adds a
        // little; the node refuses what still passes, with an error naming both sizes).
        so.limits.max_request_bytes = node_.options().max_entry_bytes;
        so.command_timeout = std::chrono::milliseconds(flags_.command_timeout_ms) +
                             std::chrono::milliseconds(500);  // our own retries end first
        resp::server clients(io_, so, std::move(handler), std::move(is_write));
        admin_http<node_type> http(node_, flags_.host, flags_.http_port);
        try {
            clients.start();
            http.start();
        } catch (const std::exception& e) {
            std::cerr << e.what() << "\n";
            node_.stop();
            return 1;
        }
        asio::signal_set signals(io_, SIGINT, SIGTERM);
        signals.async_wait([&](std::error_code ec, int sig) {
            if (ec) return;
            std::cerr << "craft: node " << flags_.id << " stopping (signal " << sig << ")\n";
            clients.stop();
            io_.stop();
        });
        std::cerr << "craft: node " << flags_.id << " serving clients on " << flags_.host << ":"
                  << clients.port() << ", HTTP on " << flags_.host << ":" << flags_.http_port
                  << "\n";
        io_.run();
        http.stop();
        node_.stop();
        return 0;
    }

private:
    static node_options options(const service_flags& f) {
        node_options o;
        o.id = f.id;
        o.cluster_id = f.cluster_id;
        o.peers = f.peers;
        o.initial_voters = f.initial_voters;
        o.data_dir = f.data_dir;
        o.tick = std::chrono::milliseconds(f.tick_ms);
        o.heartbeat_interval = std::chrono::milliseconds(f.heartbeat_ms);
        o.election_timeout = std::chrono::milliseconds(f.election_timeout_ms);
        o.read_timeout = std::chrono::milliseconds(f.command_timeout_ms);
        o.sync = !f.no_sync;
        o.forward_proposals = !f.no_forward;
        o.snapshots.entries = f.snapshot_entries;
        return o;
    }
    static stderr_logger logger(const service_flags& f) {
        static const std::map<std::string, log_level> levels = {{"debug", log_level::debug},
                                                                {"info", log_level::info},
                                                                {"warn", log_level::warn},
                                                                {"error", log_level::error},
                                                                {"off", log_level::off}};
        return stderr_logger{levels.at(f.log_level)};
    }

    clock::time_point deadline() const {
        return clock::now() + std::chrono::milliseconds(flags_.command_timeout_ms);
    }
    static constexpr auto retry_delay = std::chrono::milliseconds(50);

    /// Runs `again` after the retry delay on the I/O thread.
    void later(std::function<void()> again) {
        auto t = std::make_shared<asio::steady_timer>(io_, retry_delay);
        t->async_wait([t, again = std::move(again)](std::error_code ec) {
            if (!ec) again();
        });
    }

    void attempt_write(shared_bytes command, std::function<void(proposal_outcome)> done,
                       clock::time_point until) {
        node_.propose(command, [this, command, done, until](proposal_outcome o) mutable {
            if (!o.ok() && o.not_applied && clock::now() + retry_delay < until) {
                asio::post(io_, [this, command, done, until]() mutable {
                    later([this, command, done, until] { attempt_write(command, done, until); });
                });
                return;
            }
            done(std::move(o));
        });
    }

    template <class F>
    void attempt_read(
        F f, std::function<void(outcome<std::invoke_result_t<F&, const StateMachine&>>)> done,
        clock::time_point until) {
        using R = std::invoke_result_t<F&, const StateMachine&>;
        node_.read(f, [this, f, done, until](outcome<R> o) mutable {
            if (!o.ok() && clock::now() + retry_delay < until) {
                asio::post(io_, [this, f, done, until]() mutable {
                    later([this, f, done, until] { attempt_read(f, done, until); });
                });
                return;
            }
            done(std::move(o));
        });
    }

    service_flags flags_;
    asio::io_context io_;  // before node_: the node's late callbacks may post to it
    node_type node_;
};

/// The commands (lower case) that change state, as the RESP server's classifier.
inline resp::server::classifier writes_are(std::set<std::string> names) {
    return [names = std::move(names)](const std::vector<std::string>& args) {
        return !args.empty() && names.count(resp::lower(args[0])) > 0;
    };
}

/// The whole `main` of an example server: parses the flags, builds the state machine and
/// the service, and answers each command with `handle(service, args, reply)` until SIGINT or
/// SIGTERM.
template <class StateMachine, class Handle>
int serve(int argc, char** argv, const std::string& description, Handle handle,
          resp::server::classifier is_write) {
    CLI::App app{description};
    service_flags flags;
    add_service_flags(app, flags);
    if (auto code = parse_flags(app, argc, argv, flags)) return *code;
    StateMachine sm;
    service<StateMachine> svc(flags, sm);
    return svc.run([&svc, &handle](std::vector<std::string>& args,
                                   resp::server::reply_fn reply) { handle(svc, args, reply); },
                   std::move(is_write));
}

}  // namespace craft::examples
