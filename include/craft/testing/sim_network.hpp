#pragma once
/// @file
/// A deterministic simulated network: virtual time, a seeded PRNG, and faults (drops, delays,
/// duplicates, reordering, partitions). Nothing here touches a clock or a socket.

#include <cstdint>
#include <functional>
#include <map>
#include <queue>
#include <set>
#include <utility>
#include <vector>

#include "../concepts.hpp"
#include "../core/raft.hpp"  // splitmix64
#include "../core/types.hpp"

namespace craft::testing {

/// Virtual time in microseconds.
using sim_time = std::uint64_t;

/// How unreliable the simulated network is.
struct network_faults {
    double drop = 0.0;                  ///< Probability a message is lost.
    double duplicate = 0.0;             ///< Probability a message is delivered twice.
    sim_time delay_min = 100;           ///< Ordinary one-way latency, lower bound (us).
    sim_time delay_max = 1'000;         ///< Ordinary one-way latency, upper bound (us).
    double long_delay = 0.0;            ///< Probability of a long delay (reorders messages).
    sim_time long_delay_max = 200'000;  ///< Upper bound of a long delay (us).
};

/// The simulated network shared by every node of a simulated cluster.
class sim_network {
public:
    explicit sim_network(std::uint64_t seed) : rng_(seed) {}

    /// Replaces the fault profile (takes effect for messages sent from now on).
    void set_faults(const network_faults& f) { faults_ = f; }
    [[nodiscard]] const network_faults& faults() const noexcept { return faults_; }

    /// Cuts every link between a node of `a` and a node of `b` (both directions).
    void cut(const std::vector<node_id>& a, const std::vector<node_id>& b) {
        for (node_id x : a)
            for (node_id y : b)
                if (x != y) {
                    blocked_.insert({x, y});
                    blocked_.insert({y, x});
                }
    }
    /// Cuts `n` off from every node in `all`.
    void isolate(node_id n, const std::vector<node_id>& all) { cut({n}, all); }
    /// Restores every link.
    void heal() { blocked_.clear(); }
    /// True when `from` can currently reach `to`.
    [[nodiscard]] bool connected(node_id from, node_id to) const {
        return !blocked_.contains({from, to});
    }

    /// Called with each message lost to a drop or a partition, when set: a TCP runtime
    /// learns of such losses from its transport (a lost connection, a full send queue).
    std::function<void(const message&)> on_drop;

    /// Sends `m` at time `now`, applying the fault profile.
    void send(message m, sim_time now) {
        ++sent_;
        if (!connected(m.from, m.to) || chance(faults_.drop)) {
            lost(m);
            return;
        }
        if (chance(faults_.duplicate)) enqueue(m, now);
        enqueue(std::move(m), now);
    }

    /// Time of the next delivery, if any message is in flight.
    [[nodiscard]] std::optional<sim_time> next_delivery() const {
        if (queue_.empty()) return std::nullopt;
        return queue_.top().at;
    }

    /// Delivers, in time order, each message due by `now` whose link is still up.
    template <class Deliver>
    void deliver_due(sim_time now, Deliver&& deliver) {
        while (!queue_.empty() && queue_.top().at <= now) {
            message m = std::move(const_cast<in_flight&>(queue_.top()).msg);
            queue_.pop();
            if (!connected(m.from, m.to)) {
                lost(m);
                continue;
            }
            deliver(std::move(m));
        }
    }

    /// Messages handed to the network so far (including dropped ones).
    [[nodiscard]] std::uint64_t sent() const noexcept { return sent_; }
    /// Messages lost to drops and partitions so far.
    [[nodiscard]] std::uint64_t dropped() const noexcept { return dropped_; }
    /// Messages in flight.
    [[nodiscard]] std::size_t in_flight_count() const noexcept { return queue_.size(); }
    /// The network's PRNG, shared with the cluster so one seed drives everything.
    core::splitmix64& rng() noexcept { return rng_; }

    /// True with probability `p`.
    bool chance(double p) {
        if (p <= 0.0) return false;
        return static_cast<double>(rng_() >> 11) * 0x1.0p-53 < p;
    }
    /// Uniform in [lo, hi].
    sim_time uniform(sim_time lo, sim_time hi) {
        return hi <= lo ? lo : lo + rng_.below(hi - lo + 1);
    }

private:
    struct in_flight {
        sim_time at;
        std::uint64_t seq;
        message msg;
    };
    struct later {
        bool operator()(const in_flight& a, const in_flight& b) const {
            return a.at != b.at ? a.at > b.at : a.seq > b.seq;
        }
    };

    void lost(const message& m) {
        ++dropped_;
        if (on_drop) on_drop(m);
    }

    void enqueue(message m, sim_time now) {
        sim_time d = uniform(faults_.delay_min, faults_.delay_max);
        if (chance(faults_.long_delay)) d = uniform(faults_.delay_max, faults_.long_delay_max);
        queue_.push({now + d, seq_++, std::move(m)});
    }

    core::splitmix64 rng_;
    network_faults faults_;
    std::set<std::pair<node_id, node_id>> blocked_;
    std::priority_queue<in_flight, std::vector<in_flight>, later> queue_;
    std::uint64_t seq_ = 0;
    std::uint64_t sent_ = 0;
    std::uint64_t dropped_ = 0;
};

/// One node's endpoint on a `sim_network` (models `craft::transport`), for users who wire
/// their own runtime to the simulated network. Received messages are handed over when the
/// owner calls `sim_network::deliver_due` and routes them with `deliver`.
class sim_transport {
public:
    sim_transport(sim_network& net, const sim_time& clock) : net_(&net), clock_(&clock) {}
    void send(message&& m) {
        if (running_) net_->send(std::move(m), *clock_);
    }
    status start(std::function<void(message&&)> handler) {
        handler_ = std::move(handler);
        running_ = true;
        return {};
    }
    void stop() {
        running_ = false;
        handler_ = nullptr;
    }
    /// Hands a delivered message to the handler given to `start`.
    void deliver(message&& m) {
        if (running_ && handler_) handler_(std::move(m));
    }

private:
    sim_network* net_;
    const sim_time* clock_;
    std::function<void(message&&)> handler_;
    bool running_ = false;
};

static_assert(transport<sim_transport>);

}  // namespace craft::testing
