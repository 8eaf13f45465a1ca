// craftctl: the admin CLI of a craft cluster (like braft_cli). It talks to each node's HTTP
// admin endpoint (--http-port of craft-kv / craft-counter).
//
//   craftctl status   --node 127.0.0.1:8001             one node's /status (JSON)
//   craftctl cluster  --nodes 127.0.0.1:8001,...        one line per node, leader marked
//   craftctl snapshot --node 127.0.0.1:8001             take a snapshot now
//   craftctl transfer-leader --nodes ... --to 2         hand leadership to node 2
//   craftctl metrics  --node 127.0.0.1:8001             the Prometheus text
//   craftctl add-learner --nodes ... --id 4 --address 127.0.0.1:7004
//                                                         node 4 receives the log, no vote
//   craftctl add-voter   --nodes ... --id 4              node 4 votes (a learner promoted)
//   craftctl remove      --nodes ... --id 4              node 4 leaves the cluster
//   craftctl membership  --nodes ... --voters 1,2,3 [--learners 4]   set it whole
//
// Membership commands ask the leader among --nodes. A new node's Raft address (--address)
// is recorded in the configuration, so every member learns it from the log; it may be left
// out only when the members' --peers already list the node. add-learner, add-voter and
// remove change one node's role in the membership in force when the leader takes them (two
// operators at once never undo each other's change: one is told to retry). membership sets
// voters and learners whole; changing several voters at once, the leader goes through a
// joint configuration and leaves it on its own.

#include <httplib.h>
#include <CLI/CLI.hpp>
#include <craft/transport/asio_tcp_transport.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct target {
    std::string host;
    int port = 0;
    std::string text;
};

target parse_address(const std::string& s) {
    const auto colon = s.rfind(':');
    if (colon == std::string::npos) throw CLI::ValidationError("address", s + ": not host:port");
    try {
        std::size_t used = 0;
        const int port = std::stoi(s.substr(colon + 1), &used);
        if (used != s.size() - colon - 1 || port <= 0 || port > 65535) throw std::out_of_range(s);
        return {s.substr(0, colon), port, s};
    } catch (const std::logic_error&) {
        throw CLI::ValidationError("address", s + ": bad port");
    }
}

std::vector<target> parse_list(const std::string& s) {
    std::vector<target> out;
    std::stringstream in(s);
    std::string item;
    while (std::getline(in, item, ','))
        if (!item.empty()) out.push_back(parse_address(item));
    if (out.empty()) throw CLI::ValidationError("--nodes", "no addresses given");
    return out;
}

/// GET or POST `path` on `t`; the body, or nothing with a message on stderr.
std::optional<std::string> call(const target& t, const std::string& method, const std::string& path,
                                int* code = nullptr) {
    httplib::Client cli(t.host, t.port);
    cli.set_connection_timeout(2, 0);
    cli.set_read_timeout(60, 0);
    auto res = method == "POST" ? cli.Post(path) : cli.Get(path);
    if (!res) {
        std::cerr << "craftctl: " << t.text << ": " << httplib::to_string(res.error()) << "\n";
        return std::nullopt;
    }
    if (code) *code = res->status;
    return res->body;
}

std::optional<nlohmann::json> status_of(const target& t) {
    auto body = call(t, "GET", "/status");
    if (!body) return std::nullopt;
    try {
        return nlohmann::json::parse(*body);
    } catch (const std::exception& e) {
        std::cerr << "craftctl: " << t.text << ": not a craft status page: " << e.what() << "\n";
        return std::nullopt;
    }
}

int print_cluster(const std::vector<target>& nodes) {
    std::printf("%-22s %4s %-10s %6s %6s %8s %8s %8s %8s\n", "node", "id", "state", "term",
                "leader", "commit", "applied", "last", "snapshot");
    int down = 0;
    for (const auto& t : nodes) {
        auto j = status_of(t);
        if (!j) {
            std::printf("%-22s %4s %-10s\n", t.text.c_str(), "-", "unreachable");
            ++down;
            continue;
        }
        const auto u = [&](const char* k) { return j->value(k, std::uint64_t{0}); };
        std::printf("%-22s %4llu %-10s %6llu %6llu %8llu %8llu %8llu %8llu\n", t.text.c_str(),
                    static_cast<unsigned long long>(u("id")),
                    j->value("state", std::string("?")).c_str(),
                    static_cast<unsigned long long>(u("term")),
                    static_cast<unsigned long long>(u("leader")),
                    static_cast<unsigned long long>(u("commit_index")),
                    static_cast<unsigned long long>(u("applied_index")),
                    static_cast<unsigned long long>(u("last_index")),
                    static_cast<unsigned long long>(u("snapshot_index")));
        if (j->value("state", std::string()) == "leader")
            for (const auto& p : (*j)["peers"])
                if (p.contains("match_index"))
                    std::printf("    peer %llu  %-21s match %llu, lag %llu (%s)\n",
                                static_cast<unsigned long long>(p.value("id", 0ull)),
                                p.value("address", std::string()).c_str(),
                                static_cast<unsigned long long>(p.value("match_index", 0ull)),
                                static_cast<unsigned long long>(p.value("lag", 0ull)),
                                p.value("replication", std::string()).c_str());
    }
    return down ? 1 : 0;
}

/// The node that leads among `nodes` and its status, or nothing (said on stderr).
std::optional<std::pair<target, nlohmann::json>> find_leader(const std::vector<target>& nodes) {
    for (const auto& t : nodes) {
        auto j = status_of(t);
        if (j && j->value("state", std::string()) == "leader") return std::pair{t, *j};
    }
    std::cerr << "craftctl: none of the nodes leads right now; try again\n";
    return std::nullopt;
}

std::string join(const std::vector<unsigned long long>& ids) {
    std::string s;
    for (auto id : ids) s += (s.empty() ? "" : ",") + std::to_string(id);
    return s;
}

/// Prints a POST's JSON answer; exit 0 when it says ok.
int post(const target& t, const std::string& path) {
    int code = 0;
    auto body = call(t, "POST", path, &code);
    if (!body) return 1;
    std::cout << *body;
    try {
        return nlohmann::json::parse(*body).value("ok", false) ? 0 : 1;
    } catch (const std::exception&) {
        return 1;
    }
}

}  // namespace

/// A node id as typed: digits only, not 0, in range (CLI11 alone takes "-5" as 2^64 - 5).
const CLI::Validator node_id_check(
    [](std::string& s) -> std::string {
        unsigned long long v = 0;
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec != std::errc{} || p != s.data() + s.size() || v == 0)
            return "'" + s + "' is not a node id (a whole number from 1)";
        return {};
    },
    "ID");

int main(int argc, char** argv) {
    CLI::App app{"craftctl: administer a craft cluster through its nodes' HTTP endpoints"};
    app.require_subcommand(1);
    std::string node, nodes;
    unsigned long long to = 0;

    auto* st = app.add_subcommand("status", "one node's status as JSON");
    st->add_option("--node", node, "host:port of the node's HTTP endpoint")->required();
    auto* cl = app.add_subcommand("cluster", "every node's role, term and indexes");
    cl->add_option("--nodes", nodes, "host:port,... of the nodes' HTTP endpoints")->required();
    auto* sn = app.add_subcommand("snapshot", "take a snapshot on a node now");
    sn->add_option("--node", node, "host:port of the node's HTTP endpoint")->required();
    auto* me = app.add_subcommand("metrics", "a node's metrics (Prometheus text)");
    me->add_option("--node", node, "host:port of the node's HTTP endpoint")->required();
    const std::string leader_nodes =
        "host:port,... of the nodes' HTTP endpoints (the leader among them is asked)";
    auto* tl = app.add_subcommand("transfer-leader", "hand leadership to another node");
    tl->add_option("--nodes", nodes, leader_nodes)->required();
    tl->add_option("--to", to, "id of the node to lead")->required()->check(node_id_check);
    unsigned long long id = 0;
    auto* al = app.add_subcommand("add-learner", "add a node as a learner (it gets the log)");
    auto* av = app.add_subcommand("add-voter", "make a node a voter (a learner is promoted)");
    auto* rm = app.add_subcommand("remove", "remove a node, voter or learner");
    for (auto* c : {al, av, rm}) {
        c->add_option("--nodes", nodes, leader_nodes)->required();
        c->add_option("--id", id, "the node's id")->required()->check(node_id_check);
    }
    std::string raft_address;
    for (auto* c : {al, av})
        c->add_option("--address", raft_address,
                      "host:port of the node's Raft port (its --peers entry), recorded in the "
                      "configuration for every member; needed unless the members' --peers list it")
            ->check([](const std::string& a) {  // the rule the node applies
                std::string why;
                return craft::tcp_endpoint::parse(a, &why) ? std::string() : why;
            });
    std::vector<unsigned long long> voters, learners;
    auto* mb = app.add_subcommand("membership", "set the voters and learners whole");
    mb->add_option("--nodes", nodes, leader_nodes)->required();
    mb->add_option("--voters", voters, "ids of the voters: 1,2,3")
        ->delimiter(',')
        ->required()
        ->check(node_id_check);
    mb->add_option("--learners", learners, "ids of the learners")
        ->delimiter(',')
        ->check(node_id_check);

    try {
        app.parse(argc, argv);
        if (st->parsed()) {
            auto j = status_of(parse_address(node));
            if (!j) return 1;
            std::cout << j->dump(2) << "\n";
            return 0;
        }
        if (cl->parsed()) return print_cluster(parse_list(nodes));
        if (sn->parsed()) return post(parse_address(node), "/snapshot");
        if (me->parsed()) {
            auto body = call(parse_address(node), "GET", "/metrics");
            if (!body) return 1;
            std::cout << *body;
            return 0;
        }
        if (tl->parsed()) {
            auto l = find_leader(parse_list(nodes));
            return l ? post(l->first, "/transfer-leader?to=" + std::to_string(to)) : 1;
        }
        if (mb->parsed() || al->parsed() || av->parsed() || rm->parsed()) {
            auto l = find_leader(parse_list(nodes));
            if (!l) return 1;
            if (mb->parsed())
                return post(l->first,
                            "/membership?voters=" + join(voters) + "&learners=" + join(learners));
            // One node's edit: the leader makes it to the membership in force when it takes it.
            const char* what = al->parsed() ? "add-learner" : av->parsed() ? "add-voter" : "remove";
            return post(
                l->first,
                std::string("/membership/") + what + "?id=" + std::to_string(id) +
                    (raft_address.empty()
                         ? ""
                         : "&address=" + httplib::detail::encode_query_param(raft_address)));
        }
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }
    return 0;
}
