#pragma once
// What a node tells operators: `/status` as JSON (the fields braft's raft_stat shows),
// `/metrics` in the Prometheus text format, and the admin actions craftctl calls
// (POST /snapshot, POST /transfer-leader?to=N, POST /membership?voters=..&learners=..,
// POST /membership/{add-learner,add-voter,remove}?id=N[&address=host:port]).
// Served with cpp-httplib on its own thread.

#include <craft/node.hpp>
#include <craft/version.hpp>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace craft::examples {

/// The node's state as JSON: role, term, leader, indexes, snapshot, and (on the leader) each
/// peer's match index and lag.
template <class Node>
nlohmann::json status_json(const Node& node) {
    const auto st = node.status();
    const auto& o = node.options();
    const auto& r = st.raft;
    const auto book = node.address_book();  // --peers, and the addresses the log records
    nlohmann::json j;
    j["id"] = o.id;
    j["cluster_id"] = o.cluster_id;
    j["version"] = std::string(craft::version_string);
    j["running"] = st.running;
    if (!st.failure.ok()) j["failure"] = st.failure.message();
    j["state"] = st.running ? std::string(core::to_string(r.soft.role)) : "stopped";
    j["term"] = r.hard.term;
    j["vote"] = r.hard.vote;
    j["leader"] = r.soft.leader;
    if (auto it = book.find(r.soft.leader); it != book.end())
        j["leader_address"] = it->second.to_string();
    j["commit_index"] = r.hard.commit;
    j["applied_index"] = st.applied;
    j["first_index"] = r.first_index;
    j["last_index"] = r.last_index;
    j["snapshot_index"] = st.snapshot_index;
    j["snapshot_term"] = st.snapshot_term;
    j["voters"] = r.conf.voters;
    j["learners"] = r.conf.learners;
    auto peers = nlohmann::json::array();
    for (const auto& [id, ep] : book) {
        nlohmann::json p;
        p["id"] = id;
        p["address"] = ep.to_string();
        for (const auto& [fid, pr] : r.followers) {
            if (fid != id) continue;
            p["match_index"] = pr.match;
            p["next_index"] = pr.next;
            p["lag"] = r.last_index > pr.match ? r.last_index - pr.match : 0;
            p["replication"] = std::string(core::to_string(pr.state));
        }
        peers.push_back(std::move(p));
    }
    j["peers"] = std::move(peers);
    return j;
}

/// The Prometheus text exposition of the node's counters and gauges.
template <class Node>
std::string prometheus_text(const Node& node) {
    const auto m = node.metrics();
    const auto st = node.status();
    std::ostringstream o;
    auto counter = [&](const char* name, const char* help, std::uint64_t v) {
        o << "# HELP craft_" << name << " " << help << "\n# TYPE craft_" << name
          << " counter\ncraft_" << name << " " << v << "\n";
    };
    auto gauge = [&](const char* name, const char* help, std::uint64_t v) {
        o << "# HELP craft_" << name << " " << help << "\n# TYPE craft_" << name << " gauge\ncraft_"
          << name << " " << v << "\n";
    };
    counter("proposals_total", "Commands appended by this node as leader.", m.proposals);
    counter("proposals_forwarded_total", "Commands this node passed on to the leader.",
            m.proposals_forwarded);
    counter("proposals_refused_total", "Commands refused at once (no leader, ...).",
            m.proposals_refused);
    counter("entries_committed_total", "Log entries this node learned were committed.",
            m.entries_committed);
    counter("entries_applied_total", "Log entries handed to the state machine.", m.entries_applied);
    counter("reads_total", "Linearizable reads served.", m.reads);
    counter("elections_total", "Elections this node started.", m.elections);
    counter("leader_changes_total", "Leaders this node has seen.", m.leader_changes);
    counter("snapshots_taken_total", "Snapshots saved by this node.", m.snapshots_taken);
    counter("snapshots_installed_total", "Snapshots received from a leader.",
            m.snapshots_installed);
    counter("unreachable_reports_total",
            "Times the transport lost messages to a peer (connection lost, queue full).",
            m.unreachable_reports);
    counter("messages_sent_total", "Raft messages sent.", m.messages_sent);
    counter("messages_received_total", "Raft messages received.", m.messages_received);
    counter("bytes_sent_total", "Bytes sent to peers.", m.bytes_sent);
    counter("bytes_received_total", "Bytes received from peers.", m.bytes_received);
    gauge("term", "Current term.", st.raft.hard.term);
    gauge("is_leader", "1 when this node leads.",
          st.running && st.raft.soft.role == core::role::leader ? 1 : 0);
    gauge("leader_id", "The leader this node knows (0: none).", st.raft.soft.leader);
    gauge("commit_index", "Highest committed index.", st.raft.hard.commit);
    gauge("applied_index", "Highest applied index.", st.applied);
    gauge("first_index", "First index in the log.", st.raft.first_index);
    gauge("last_index", "Last index in the log.", st.raft.last_index);
    gauge("snapshot_index", "Index of the newest snapshot.", st.snapshot_index);

    const auto& h = m.log_write_latency;
    o << "# HELP craft_log_write_seconds Write and sync of one batch to the log.\n"
         "# TYPE craft_log_write_seconds histogram\n";
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < h.buckets.size(); ++i) {
        cumulative += h.buckets[i];
        o << "craft_log_write_seconds_bucket{le=\"";
        if (i < latency_histogram::bounds_us.size())
            o << static_cast<double>(latency_histogram::bounds_us[i]) / 1e6;
        else
            o << "+Inf";
        o << "\"} " << cumulative << "\n";
    }
    o << "craft_log_write_seconds_sum " << static_cast<double>(h.sum_us) / 1e6 << "\n"
      << "craft_log_write_seconds_count " << h.count << "\n";
    return o.str();
}

/// The HTTP admin endpoint of one node.
template <class Node>
class admin_http {
public:
    admin_http(Node& node, std::string host, std::uint16_t port)
        : node_(node), host_(std::move(host)), port_(port) {
        // What httplib refuses itself (no such path, a POST without Content-Length) gets a
        // JSON answer naming the problem too, not an empty body.
        srv_.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
            if (!res.body.empty()) return;
            std::string why =
                "HTTP " + std::to_string(res.status) + " for " + req.method + " " + req.path;
            if (res.status == 404) why += ": no such endpoint (GET / lists them)";
            if (res.status == 400 && req.method == "POST")
                why += ": a POST needs a Content-Length header (curl -X POST -d '' ...)";
            reply(res, craft::status::error(why), {}, res.status);
        });
        srv_.Get("/", [](const httplib::Request&, httplib::Response& res) {
            res.set_content(
                "craft admin endpoint\n"
                "GET  /status                 JSON: role, term, leader, indexes, peers\n"
                "GET  /metrics                Prometheus text format\n"
                "POST /snapshot               take a snapshot now\n"
                "POST /transfer-leader?to=N   hand leadership to node N\n"
                "POST /membership/add-learner?id=4[&address=host:port]\n"
                "POST /membership/add-voter?id=4[&address=host:port]\n"
                "POST /membership/remove?id=4\n"
                "                             change one node's role in the membership in force\n"
                "                             (on the leader); an address is recorded for every\n"
                "                             member to reach that node\n"
                "POST /membership?voters=1,2,3&learners=4[&addresses=4%3Dhost:port,...]\n"
                "                             set the membership whole (the value URL-encoded)\n",
                "text/plain");
        });
        srv_.Get("/status", [this](const httplib::Request&, httplib::Response& res) {
            res.set_content(status_json(node_).dump(2) + "\n", "application/json");
        });
        srv_.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
            res.set_content(prometheus_text(node_), "text/plain; version=0.0.4");
        });
        srv_.Post("/snapshot", [this](const httplib::Request&, httplib::Response& res) {
            auto f = node_.snapshot_now();
            if (f.wait_for(std::chrono::minutes(5)) != std::future_status::ready)
                return reply(res, craft::status::error("snapshot still running after 5 min"));
            reply(res, f.get(), {{"snapshot_index", node_.status().snapshot_index}});
        });
        srv_.Post("/transfer-leader", [this](const httplib::Request& req, httplib::Response& res) {
            std::vector<node_id> to;
            if (parse_ids(req.get_param_value("to"), to) || to.size() != 1)
                return reply(res, craft::status::error("missing or bad parameter 'to' (a node id)"),
                             {}, 400);
            auto f = node_.transfer_leadership(to[0]);
            f.wait();
            reply(res, f.get(), {{"leader", node_.leader()}});
        });
        srv_.Post("/membership", [this](const httplib::Request& req, httplib::Response& res) {
            std::vector<node_id> voters, learners;
            for (auto [name, ids] : {std::pair{"voters", &voters}, {"learners", &learners}}) {
                if (auto bad = parse_ids(req.get_param_value(name), *ids))
                    return reply(res,
                                 craft::status::error(std::string("bad parameter '") + name +
                                                      "': " + *bad + " (expected 1,2,3)"),
                                 {}, 400);
            }
            std::string why;
            const auto addresses = parse_peer_list(req.get_param_value("addresses"), &why);
            if (!addresses)
                return reply(res, craft::status::error("bad parameter 'addresses': " + why), {},
                             400);
            membership_reply(res, node_.change_membership(voters, learners, *addresses));
        });
        // One node's edit, made by the leader to the membership in force (no lost updates).
        for (auto [path, what] : {std::pair{"/membership/add-learner", edit::add_learner},
                                  {"/membership/add-voter", edit::add_voter},
                                  {"/membership/remove", edit::remove}}) {
            srv_.Post(path, [this, what](const httplib::Request& req, httplib::Response& res) {
                std::vector<node_id> ids;
                if (parse_ids(req.get_param_value("id"), ids) || ids.size() != 1)
                    return reply(res,
                                 craft::status::error("missing or bad parameter 'id' (a node id)"),
                                 {}, 400);
                std::optional<tcp_endpoint> address;
                if (req.has_param("address")) {
                    std::string why;
                    address = tcp_endpoint::parse(req.get_param_value("address"), &why);
                    if (what == edit::remove || !address)
                        return reply(res,
                                     craft::status::error(
                                         "bad parameter 'address': " +
                                         (address ? "a node being removed needs none" : why)),
                                     {}, 400);
                }
                // Said in the answer: an edit already made (a non-member removed, say) is done
                // at once, with nothing changed.
                const auto before = node_.status().raft.conf;
                membership_reply(res, node_.edit_membership({what, ids[0], address}), &before);
            });
        }
    }
    ~admin_http() { stop(); }

    /// Binds and serves on a thread; throws naming the address when it cannot bind.
    void start() {
        if (!srv_.bind_to_port(host_.c_str(), port_))
            throw std::runtime_error("cannot listen for HTTP on " + host_ + ":" +
                                     std::to_string(port_));
        thread_ = std::thread([this] { srv_.listen_after_bind(); });
    }
    void stop() {
        srv_.stop();
        if (thread_.joinable()) thread_.join();
    }

private:
    /// Parses "1,2,3" (empty: none); the problem, or nothing.
    static std::optional<std::string> parse_ids(const std::string& s, std::vector<node_id>& out) {
        std::size_t at = 0;
        while (at < s.size()) {
            auto comma = s.find(',', at);
            if (comma == std::string::npos) comma = s.size();
            const std::string_view item(s.data() + at, comma - at);
            node_id id = 0;
            auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), id);
            if (ec != std::errc{} || p != item.data() + item.size() || id == no_node)
                return "'" + std::string(item) + "' is not a node id";
            out.push_back(id);
            at = comma + 1;
        }
        return std::nullopt;
    }

    using edit = craft::membership_edit::kind;

    /// Waits for a membership change; on success answers with the membership in force.
    /// With `before`, the answer also says whether the membership changed.
    void membership_reply(httplib::Response& res, std::future<craft::status> f,
                          const craft::configuration* before = nullptr) {
        const auto st = f.get();
        if (!st.ok()) return reply(res, st);
        const auto conf = node_.status().raft.conf;  // published before the future was set
        nlohmann::json extra{{"voters", conf.voters}, {"learners", conf.learners}};
        if (before) extra["changed"] = !(*before == conf);  // a new entry has a new index
        reply(res, st, extra);
    }

    static void reply(httplib::Response& res, const craft::status& st, nlohmann::json extra = {},
                      int error_code = 409) {
        nlohmann::json j = extra.is_object() ? std::move(extra) : nlohmann::json::object();
        j["ok"] = st.ok();
        if (!st.ok()) {
            j["error"] = st.message();
            res.status = error_code;
        }
        res.set_content(j.dump() + "\n", "application/json");
    }

    Node& node_;
    std::string host_;
    std::uint16_t port_;
    httplib::Server srv_;
    std::thread thread_;
};

}  // namespace craft::examples
