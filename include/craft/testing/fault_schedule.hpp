#pragma once
/// @file
/// Random fault schedules over a simulated cluster: crashes, restarts, partitions, drops,
/// duplicates and reordering while a client proposes; then the faults stop and the cluster
/// must elect a leader, commit every pending proposal and converge within a bounded time.
/// Everything is derived from one seed, so a failure replays exactly (`craft_sim`).

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "cluster.hpp"

namespace craft::testing {

/// Parameters of one random schedule.
struct schedule_options {
    std::uint64_t seed = 1;
    std::size_t nodes = 0;               ///< 0: 3 or 5, chosen by the seed.
    sim_time fault_time = 6'000'000;     ///< Faulty phase (virtual us).
    sim_time settle_limit = 20'000'000;  ///< Liveness bound once faults stop (virtual us).
    bool verbose = false;                ///< Narrate events to `log`.
    bool trace = false;                  ///< Also log every delivery and write (very long).
};

/// Outcome of one schedule.
struct schedule_result {
    bool passed = false;
    std::string failure;  ///< Invariant or liveness failure ("" when passed).
    std::uint64_t proposals = 0;
    std::uint64_t reads = 0;
    index_t committed = 0;
    std::uint64_t messages = 0;
    std::vector<std::string> log;  ///< Narration, when verbose.
};

/// Runs one random schedule and checks safety at every step and liveness at the end.
inline schedule_result run_schedule(const schedule_options& so) {
    schedule_result res;
    core::splitmix64 rng(so.seed * 0x9e3779b97f4a7c15ULL + 12345);
    auto pick = [&](std::uint64_t n) { return rng.below(n); };
    auto chance = [&](unsigned percent) { return rng.below(100) < percent; };

    cluster_options co;
    co.seed = so.seed;
    co.nodes = so.nodes != 0 ? so.nodes : (so.seed % 2 == 0 ? 3 : 5);
    co.snapshot_every = std::vector<std::size_t>{0, 0, 7, 40}[pick(4)];
    co.snapshots.keep_entries = std::vector<std::uint64_t>{0, 3, 20}[pick(3)];
    co.snapshots.chunk_bytes = std::vector<std::size_t>{512, 4096, 1 << 20}[pick(3)];
    co.prepared_snapshots = chance(50);
    co.torn_writes = std::vector<double>{0, 0.5, 1}[pick(3)];
    co.max_entries_per_message = std::vector<std::size_t>{1, 3, 64}[pick(3)];
    co.max_inflight_messages = std::vector<std::size_t>{1, 4, 64}[pick(3)];
    co.disk_max = std::vector<sim_time>{100, 500, 20'000}[pick(3)];
    co.pre_vote = !chance(20);
    co.check_quorum = !chance(20);
    co.report_unreachable = (so.seed / 2) % 2 == 0;  // from the seed: the draws stay as they were
    cluster c(co);

    network_faults nf;
    nf.drop = static_cast<double>(pick(16)) / 100.0;
    nf.duplicate = static_cast<double>(pick(6)) / 100.0;
    nf.long_delay = static_cast<double>(pick(11)) / 100.0;
    c.network().set_faults(nf);

    auto say = [&](const std::string& s) {
        if (so.verbose) res.log.push_back("t=" + std::to_string(c.now()) + "us " + s);
    };
    if (so.trace) c.trace = say;
    say("nodes=" + std::to_string(co.nodes) + " snapshot_every=" +
        std::to_string(co.snapshot_every) + " keep=" + std::to_string(co.snapshots.keep_entries) +
        " chunk=" + std::to_string(co.snapshots.chunk_bytes) + " prepared=" +
        std::to_string(co.prepared_snapshots) + " torn=" + std::to_string(co.torn_writes) +
        " max_entries=" + std::to_string(co.max_entries_per_message) + " max_inflight=" +
        std::to_string(co.max_inflight_messages) + " disk_max=" + std::to_string(co.disk_max) +
        "us" + " pre_vote=" + std::to_string(co.pre_vote) +
        " check_quorum=" + std::to_string(co.check_quorum) + " report_unreachable=" +
        std::to_string(co.report_unreachable) + " drop=" + std::to_string(nf.drop) +
        " dup=" + std::to_string(nf.duplicate) + " long_delay=" + std::to_string(nf.long_delay));

    // Proposed but not yet seen committed, with when each was last proposed.
    std::map<std::string, sim_time> pending;
    std::uint64_t next_value = 0;
    std::set<node_id> down;
    std::uint64_t read_context = 0;

    auto client_step = [&](bool add_new) {
        // A client keeps retrying its values until it sees them committed.
        for (auto it = pending.begin(); it != pending.end();) {
            if (c.committed(it->first)) {
                it = pending.erase(it);
            } else {
                ++it;
            }
        }
        if (add_new && pending.size() < 8)
            pending.emplace("v" + std::to_string(next_value++), ~sim_time{0});
        for (auto& [v, last] : pending) {
            // Retry with a one-second back-off, as a real client would: retrying every step
            // only piles up duplicates in the leader's log while commits are slow.
            if (last != ~sim_time{0} && c.now() < last + 1'000'000) continue;
            last = c.now();
            ++res.proposals;
            if (!c.propose(v).ok()) break;
        }
        // A linearizable read on a random node; the cluster checks its read point.
        const node_id r = c.ids()[pick(c.ids().size())];
        if (c.at(r).up) {
            c.read_index(r, ++read_context);
            ++res.reads;
        }
    };

    const sim_time step = 100'000;  // 100 ms between client steps and fault decisions
    while (c.ok() && c.now() < so.fault_time) {
        client_step(true);
        switch (pick(12)) {
        case 0: {
            const node_id n = c.ids()[pick(c.ids().size())];
            if (!down.contains(n)) {
                c.crash(n);
                down.insert(n);
                say("crash " + std::to_string(n));
            }
            break;
        }
        case 1:
        case 2:
            if (!down.empty()) {
                auto it = down.begin();
                std::advance(it, static_cast<std::ptrdiff_t>(pick(down.size())));
                const node_id n = *it;
                down.erase(it);
                c.restart(n);
                say("restart " + std::to_string(n));
            }
            break;
        case 3: {
            std::vector<node_id> side;
            for (node_id id : c.ids())
                if (chance(50)) side.push_back(id);
            c.heal();
            c.partition(side);
            say("partition " + std::to_string(side.size()) + " nodes off");
            break;
        }
        case 4:
            if (auto l = c.leader()) {
                c.isolate(*l);
                say("isolate leader " + std::to_string(*l));
            }
            break;
        case 5:
            c.heal();
            say("heal");
            break;
        case 7: {
            // Membership change to a random non-empty subset (through a joint configuration
            // when more than one voter changes).
            configuration target;
            for (node_id id : c.ids())
                if (chance(60)) target.voters.push_back(id);
            if (target.voters.empty()) target.voters.push_back(c.ids()[pick(c.ids().size())]);
            const auto r = c.change_configuration(target);
            say("change voters to " + std::to_string(target.voters.size()) +
                " nodes: " + std::string(core::to_string(r.error)));
            break;
        }
        case 6:
            // Figure 8 of the paper: leaders crash soon after replicating part of their log.
            if (auto l = c.leader()) {
                c.crash(*l);
                down.insert(*l);
                say("crash leader " + std::to_string(*l));
            }
            if (c.ids().size() - down.size() < c.ids().size() / 2 + 1) {
                const node_id n = *down.begin();
                down.erase(down.begin());
                c.restart(n);
                say("restart " + std::to_string(n));
            }
            break;
        default: break;
        }
        c.run_for(1 + rng.below(step));
    }

    // Faults stop: a reliable network, every node up.
    c.heal();
    c.network().set_faults({});
    for (node_id n : down) c.restart(n);
    down.clear();
    say("faults stop");
    const sim_time deadline = c.now() + so.settle_limit;
    bool live = false;
    configuration everyone;
    everyone.voters = c.ids();
    while (c.ok() && c.now() < deadline) {
        client_step(false);
        // Bring every node back as a voter, so that all must converge.
        if (auto l = c.leader()) {
            const auto& conf = c.at(*l).raft->raft_state().conf();
            if (conf.joint() || conf.voters != everyone.voters) c.change_configuration(everyone);
        }
        c.run_for(step);
        bool converged = pending.empty() && c.leader().has_value() &&
                         c.at(*c.leader()).raft->raft_state().conf().voters == everyone.voters &&
                         !c.at(*c.leader()).raft->raft_state().conf().joint();
        for (node_id id : c.ids()) converged = converged && c.at(id).applied == c.max_committed();
        if (converged) {
            live = true;
            break;
        }
    }
    res.committed = c.max_committed();
    res.messages = c.network().sent();
    if (c.ok()) c.verify_durability();
    if (!c.ok()) {
        res.failure = c.violation();
    } else if (!c.failures().empty()) {
        res.failure = c.failures().front().second + " (no corruption was injected)";
    } else if (!live) {
        res.failure = "liveness: after faults stopped, " + std::to_string(pending.size()) +
                      " proposals still pending or nodes not converged within " +
                      std::to_string(so.settle_limit / 1000) + "ms" +
                      (c.leader() ? "" : " (no leader)") + "; max committed " +
                      std::to_string(c.max_committed());
        for (node_id id : c.ids()) {
            if (!c.at(id).up) continue;
            const auto st = c.at(id).raft->status();
            res.failure +=
                "; node " + std::to_string(id) + ": " + std::string(core::to_string(st.soft.role)) +
                " term " + std::to_string(st.hard.term) + " commit " +
                std::to_string(st.hard.commit) + " applied " + std::to_string(c.at(id).applied) +
                " last " + std::to_string(st.last_index) + " voters";
            for (node_id v : st.conf.voters) res.failure += " " + std::to_string(v);
            if (st.conf.joint()) {
                res.failure += " (joint with";
                for (node_id v : st.conf.voters_outgoing) res.failure += " " + std::to_string(v);
                res.failure += ")";
            }
            res.failure += " conf@" + std::to_string(st.conf.index);
        }
    }
    res.passed = res.failure.empty();
    say(res.passed ? "converged" : res.failure);
    return res;
}

}  // namespace craft::testing
