// Three craft_test_node processes on loopback: they elect a leader and replicate 10,000
// proposals; `kill -9` of the leader is followed by a new leader within 2 seconds; the killed
// node restarts from its data directory and catches up; all three end with the same state.

#include <doctest/doctest.h>

#include <signal.h>    // kill
#include <spawn.h>     // posix_spawn
#include <sys/wait.h>  // waitpid

#include <chrono>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../storage/temp_dir.hpp"
#include "support.hpp"

extern char** environ;

namespace {

using namespace std::chrono_literals;

struct status_line {
    bool leader = false;
    std::uint64_t term = 0;
    std::uint64_t applied = 0;
    long total = -1;
};

struct process_cluster {
    craft::test::temp_dir dir;
    std::string peers;
    std::map<int, pid_t> pids;

    process_cluster() {
        for (int id = 1; id <= 3; ++id) {
            if (id > 1) peers += ",";
            peers += std::to_string(id) + "=127.0.0.1:" + std::to_string(craft::test::free_port());
        }
    }
    ~process_cluster() {
        for (auto& [id, pid] : pids) kill_node(id, SIGKILL);
    }
    std::string status_path(int id) const {
        return (dir.path / ("status-" + std::to_string(id))).string();
    }
    void start(int id) {
        std::filesystem::create_directories(dir.path);
        const std::string exe = CRAFT_TEST_NODE_PATH;
        std::vector<std::string> args = {exe,
                                         "--id",
                                         std::to_string(id),
                                         "--peers",
                                         peers,
                                         "--data-dir",
                                         (dir.path / ("node-" + std::to_string(id))).string(),
                                         "--status-file",
                                         status_path(id),
                                         "--target",
                                         "10000"};
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        const std::string log = (dir.path / ("log-" + std::to_string(id))).string();
        posix_spawn_file_actions_addopen(&fa, 2, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        pid_t pid = 0;
        REQUIRE(posix_spawn(&pid, exe.c_str(), &fa, nullptr, argv.data(), environ) == 0);
        posix_spawn_file_actions_destroy(&fa);
        pids[id] = pid;
    }
    int kill_node(int id, int sig) {
        auto it = pids.find(id);
        if (it == pids.end()) return -1;
        ::kill(it->second, sig);
        int st = 0;
        ::waitpid(it->second, &st, 0);
        pids.erase(it);
        return st;
    }
    std::optional<status_line> status(int id) const {
        std::ifstream in(status_path(id));
        std::string role;
        status_line s;
        std::uint64_t leader = 0;
        if (!(in >> role >> s.term >> leader >> s.applied >> s.total)) return std::nullopt;
        s.leader = role == "leader";
        return s;
    }
    std::optional<int> leader(int except = 0) const {
        std::optional<int> best;
        std::uint64_t term = 0;
        for (int id = 1; id <= 3; ++id) {
            if (id == except || !pids.count(id)) continue;
            auto s = status(id);
            if (s && s->leader && s->term >= term) {
                best = id;
                term = s->term;
            }
        }
        return best;
    }
};

}  // namespace

TEST_SUITE("runtime") {

TEST_CASE("processes: kill -9 of the leader, a new one within 2 s, the old one catches up") {
    process_cluster c;
    for (int id = 1; id <= 3; ++id) c.start(id);
    std::optional<int> l;
    REQUIRE(craft::test::eventually([&] { return (l = c.leader()).has_value(); }, 15s));
    // Let replication get going, then kill the leader in the middle of it.
    REQUIRE(craft::test::eventually(
        [&] {
            auto s = c.status(*l);
            return s && s->total >= 3'000;
        },
        30s));
    const auto old_term = c.status(*l)->term;
    c.kill_node(*l, SIGKILL);
    const auto killed_at = std::chrono::steady_clock::now();
    std::optional<int> next;
    REQUIRE(craft::test::eventually(
        [&] {
            next = c.leader(*l);
            return next && c.status(*next)->term > old_term;
        },
        10s));
    const auto took = std::chrono::steady_clock::now() - killed_at;
    MESSAGE("new leader " << *next << " after "
                          << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                          << " ms");
    CHECK(took < 2s);
    c.start(*l);  // from its data directory
    // Everyone reaches the target and agrees.
    const bool agreed = craft::test::eventually(
        [&] {
            std::optional<status_line> s[4];
            for (int id = 1; id <= 3; ++id)
                if (!(s[id] = c.status(id)) || s[id]->total < 10'000) return false;
            return s[1]->total == s[2]->total && s[2]->total == s[3]->total &&
                   s[1]->applied == s[2]->applied && s[2]->applied == s[3]->applied;
        },
        60s);
    for (int id = 1; id <= 3; ++id) {
        auto s = c.status(id);
        INFO("node " << id << ": applied " << (s ? s->applied : 0) << " total "
                     << (s ? s->total : -1));
        CHECK(s.has_value());
    }
    CHECK(agreed);
    for (int id = 1; id <= 3; ++id) {
        const int st = c.kill_node(id, SIGTERM);
        CHECK(WIFEXITED(st));
        CHECK(WEXITSTATUS(st) == 0);
    }
}

}  // TEST_SUITE
