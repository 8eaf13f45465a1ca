#pragma once
/// @file
/// The Raft algorithm as a pure state machine: roles, elections, replication, commitment,
/// ReadIndex and configurations. Inputs are ticks, messages and proposals; outputs are
/// collected for the ready batch (see raw_node.hpp). No clocks, threads or I/O.

#include <algorithm>
#include <cassert>
#include <cstdint>
#include <iterator>  // back_inserter
#include <map>       // progress by node id, iterated in a deterministic order
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "conf_codec.hpp"
#include "log.hpp"
#include "log_reader.hpp"
#include "options.hpp"
#include "progress.hpp"
#include "quorum.hpp"
#include "read_only.hpp"
#include "types.hpp"

namespace craft::core {

/// A node's role.
enum class role : std::uint8_t { follower, pre_candidate, candidate, leader };

/// Name of a role, for status output.
[[nodiscard]] constexpr std::string_view to_string(role r) noexcept {
    switch (r) {
    case role::follower: return "follower";
    case role::pre_candidate: return "pre_candidate";
    case role::candidate: return "candidate";
    case role::leader: return "leader";
    }
    return "?";
}

/// splitmix64: a tiny, portable PRNG, so the same seed gives the same jitter everywhere.
class splitmix64 {
public:
    explicit splitmix64(std::uint64_t seed) : s_(seed) {}
    std::uint64_t operator()() {
        std::uint64_t z = (s_ += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
    }
    /// Uniform-enough integer in [0, n).
    std::uint64_t below(std::uint64_t n) { return n == 0 ? 0 : (*this)() % n; }

private:
    std::uint64_t s_;
};

/// One node's Raft state machine.
/// @tparam Storage the durable log it reads (a `log_reader`).
template <log_reader Storage>
class raft {
public:
    /// Restores from `storage`'s persisted state; a node with no stored configuration uses
    /// the bootstrap voters and learners of `o`. `o` must be valid (`o.validate()`).
    raft(const options& o, const Storage& storage)
        : opt_(o), log_(storage, o.max_apply_bytes), rng_(o.seed ^ (o.id * 0x2545f4914f6cdd1dULL)) {
        assert(!o.validate());
        const persistent_state ps = storage.initial_state();
        configuration conf = ps.conf;
        if (conf.empty()) {
            conf.voters = o.voters;
            conf.learners = o.learners;
            conf.normalize();
        }
        // A snapshot newer than the saved configuration carries the newer membership.
        const snapshot_meta sm = storage.snapshot_meta();
        if (sm.index > conf.index && !sm.conf.empty()) conf = sm.conf;
        set_configuration(conf);
        // What the state machine applied was committed, and a stored commit may lag it (a
        // runtime need not write a hard state that only moves the commit): the commit index
        // starts at the larger, so nothing applied is handed out again.
        if (const index_t c = std::max(ps.hard.commit, o.applied); c != 0)
            log_.commit_to(std::min(c, log_.last_index()));
        log_.set_applied(o.applied);
        term_ = ps.hard.term;
        vote_ = ps.hard.vote;
        become_follower(term_, no_node);
    }

    // ---- inputs -------------------------------------------------------------------------

    /// Advances logical time by one tick.
    void tick() {
        ++ticks_;
        if (role_ == role::leader) {
            tick_leader();
        } else {
            // Saturates: a learner or removed node may never campaign nor hear a leader.
            if (election_elapsed_ < max_elapsed) ++election_elapsed_;
            if (promotable() && election_elapsed_ >= randomized_timeout_) {
                election_elapsed_ = 0;
                hup();
            }
        }
    }

    /// Starts an election now (as if the election timer fired).
    /// Starts an election now, as a leadership transfer does: no pre-vote, and voters answer
    /// even while they hear from a leader (leader stickiness is waived for it).
    void campaign_now() {
        if (role_ == role::leader || !promotable() || config_change_unapplied()) return;
        campaign(message_type::vote, true);
    }

    /// On a leader: tells followers a newer commit index now (one-way notices) instead of
    /// with the next append or tick. A runtime calls it after each batch of input so that
    /// followers apply, and answer clients waiting there, without a tick's delay.
    void notify_commit() {
        if (role_ == role::leader) send_commit_notices();
    }
    /// As `notify_commit()`, for follower `to` alone; returns the commit index `to` has been
    /// told so far, or nothing when this node does not lead or `to` is no follower.
    std::optional<index_t> notify_commit(node_id to) {
        if (role_ != role::leader || to == id()) return std::nullopt;
        auto* pr = find_progress(to);
        if (!pr) return std::nullopt;
        send_commit_notice(to, *pr);
        return pr->commit_sent;
    }

    /// Handles a message from another node.
    void step(const message& m) {
        if (!well_formed(m)) return;  // never trust the network with our invariants
        if (m.term > term_) {
            const bool vote_request =
                m.type == message_type::vote || m.type == message_type::pre_vote;
            if (vote_request) {
                // Leader stickiness (dissertation 4.2.3): while we hear from a live leader, a
                // candidate is a partitioned or removed node, not a sign of leader failure.
                const bool in_lease = lead_ != no_node && election_elapsed_ < opt_.election_tick;
                if (in_lease && m.context != transfer_context) return;
            }
            if (m.type == message_type::pre_vote) {
                // A pre-vote never changes our term.
            } else if (m.type == message_type::pre_vote_response && !m.reject) {
                // We asked in term+1; the answer carries that term.
            } else if (from_leader(m.type)) {
                become_follower(m.term, m.from);
            } else {
                const int elapsed = election_elapsed_;
                become_follower(m.term, no_node);
                // Paper, Figure 2: only hearing a leader or granting a vote restarts the
                // election timer. Hopeless candidates (stale logs) taking turns must not keep
                // the up-to-date node from ever timing out and campaigning.
                if (m.type == message_type::vote) election_elapsed_ = elapsed;
            }
        } else if (m.term < term_) {
            if (from_leader(m.type)) {
                // Reject (paper 5.1): a stale leader, or one cut off in an old term, learns
                // our term and steps down; with pre-vote nothing else would tell it.
                send({.type = message_type::append_response, .to = m.from});
            } else if (m.type == message_type::pre_vote || m.type == message_type::vote) {
                // Reject (paper 5.1) with our term: a candidate that never hears of the newer
                // term could keep campaigning one term behind, forever.
                send({.type = m.type == message_type::vote ? message_type::vote_response
                                                           : message_type::pre_vote_response,
                      .to = m.from,
                      .term = term_,
                      .reject = true});
            }
            return;
        }

        switch (m.type) {
        case message_type::vote:
        case message_type::pre_vote: handle_vote_request(m); return;
        case message_type::vote_response:
        case message_type::pre_vote_response:
            // A voter knows entries up to `commit` are committed; if our log holds the same
            // entry there, so is our prefix (log matching). This lets a node stuck in a joint
            // configuration learn that it was left, when the only voter it needs was removed.
            if (m.commit > log_.committed() && log_.match_term(m.commit, m.log_term))
                log_.commit_to(m.commit);
            break;
        default: break;
        }
        switch (role_) {
        case role::leader: step_leader(m); break;
        case role::candidate:
        case role::pre_candidate: step_candidate(m); break;
        case role::follower: step_follower(m); break;
        }
    }

    /// Appends `batch` (terms and indexes are assigned here) if this node leads.
    propose_result propose(std::vector<entry> batch) {
        if (role_ != role::leader) return {.error = errc::not_leader, .leader = lead_};
        if (batch.empty()) return {.error = errc::ok, .term = term_, .leader = id()};
        std::size_t bytes = 0;
        for (const auto& e : batch) bytes += e.data.size();
        if (opt_.max_uncommitted_bytes != 0 && uncommitted_bytes_ != 0 &&
            uncommitted_bytes_ + bytes > opt_.max_uncommitted_bytes)
            return {.error = errc::proposal_dropped, .leader = id()};
        std::size_t changes = 0;
        for (const auto& e : batch) {
            if (e.type != entry_type::configuration) continue;
            // One change at a time: each is checked against the configuration in force, so a
            // second one in the same batch could skip the joint step.
            if (++changes > 1) return {.error = errc::config_invalid, .leader = id()};
            if (pending_conf_index_ > log_.applied())
                return {.error = errc::config_pending, .leader = id()};
            auto c = decode_configuration(e.data);
            if (!c || !legal_transition(conf_, *c))
                return {.error = errc::config_invalid, .leader = id()};
        }
        const index_t first = log_.last_index() + 1;
        index_t i = first;
        for (auto& e : batch) {
            e.term = term_;
            e.index = i++;
            if (e.type == entry_type::configuration) pending_conf_index_ = e.index;
        }
        uncommitted_bytes_ += bytes;
        log_.append(batch);
        broadcast_append();
        return {.error = errc::ok, .first = first, .last = i - 1, .term = term_, .leader = id()};
    }

    /// Proposes moving to a configuration with the voters and learners of `target`: one step
    /// when at most one voter changes, otherwise through a joint configuration that the
    /// leader leaves automatically once it is committed. Members keep the addresses in force
    /// unless `target` gives them new ones.
    propose_result propose_configuration(configuration target) {
        target.voters_outgoing.clear();
        target.normalize();
        configuration next = std::move(target);
        if (voter_difference(conf_.voters, next.voters) > 1) next.voters_outgoing = conf_.voters;
        for (const auto& [n, a] : conf_.addresses) next.addresses.try_emplace(n, a);
        next.normalize();
        if (conf_.joint()) return {.error = errc::config_pending, .leader = lead_};
        std::vector<entry> batch(1);
        batch[0].type = entry_type::configuration;
        batch[0].data = encode_configuration(next);
        return propose(std::move(batch));
    }

    /// Requests a linearizable read point tagged `context` (non-zero, unique per requester).
    /// The answer arrives as a `read_state` once a quorum confirmed this leadership.
    errc read_index(std::uint64_t context) {
        assert(context != 0);
        if (role_ == role::leader) {
            if (!committed_in_current_term()) {
                // The read point must be at least our own no-op (dissertation 6.4, step 1).
                waiting_reads_.push_back({context, id()});
            } else {
                handle_read(id(), context);
            }
            return errc::ok;
        }
        if (lead_ == no_node) return errc::no_leader;
        send({.type = message_type::read_index, .to = lead_, .context = context});
        return errc::ok;
    }

    /// The runtime could not reach `peer`: stop pipelining to it until it answers again.
    void report_unreachable(node_id peer) {
        if (role_ != role::leader) return;
        if (auto* pr = find_progress(peer); pr && pr->state == replication_state::replicate)
            pr->become_probe();
    }

    /// The runtime finished (or failed) sending a snapshot to `peer`.
    void report_snapshot(node_id peer, bool ok) {
        if (role_ != role::leader) return;
        auto* pr = find_progress(peer);
        if (!pr || pr->state != replication_state::snapshot) return;
        if (!ok) pr->pending_snapshot = 0;
        pr->become_probe();
        pr->probe_sent = true;  // wait for the follower's answer or the next heartbeat
    }

    // ---- hooks for raw_node -------------------------------------------------------------

    /// Entries up to (`i`, `t`) are durable on this node.
    void on_persisted(index_t i, term_t t) {
        log_.stable_to(i, t);
        if (role_ != role::leader || !log_.match_term(i, t)) return;
        // The leader counts itself toward the quorum only now, after its own sync.
        if (auto* pr = find_progress(id()); pr && pr->maybe_update(i)) maybe_commit();
    }

    /// The hard state `hs` is durable: a candidate that already won on its own vote leads.
    void on_hard_state_persisted(const hard_state& hs) {
        if (!self_win_pending_ || role_ != role::candidate || hs.term != term_ || hs.vote != id())
            return;
        self_win_pending_ = false;
        become_leader();
        broadcast_append();
    }

    /// The pending snapshot at `i` is durable and loaded into the state machine.
    void on_snapshot_persisted(index_t i) {
        log_.stable_snapshot_to(i);
        if (log_.applied() < i) log_.applied_to(i);
    }

    /// A committed configuration entry is handed out for applying: it takes effect now.
    /// False, with the reason in `why`, when its bytes cannot be decoded (validated at
    /// proposal, so another build's entry or damage the store did not catch): this node can
    /// no longer know its membership, and must stop rather than skip it.
    bool apply_configuration_entry(const entry& e, std::string& why) {
        if (e.index <= conf_.index) return true;  // already in force (re-applied after a restart)
        auto c = decode_configuration(e.data, &why);
        if (!c) return false;
        c->index = e.index;
        set_configuration(*c);
        if (role_ != role::leader) return true;
        maybe_commit();
        maybe_step_down_removed();
        return true;
    }

    /// Committed entries were handed out up to `i`.
    void on_applied(index_t i) {
        if (i > log_.applied()) log_.applied_to(i);
        maybe_leave_joint();
    }

    /// Moves out the messages to send at once (leader replication traffic).
    std::vector<message> take_messages() { return std::exchange(msgs_, {}); }
    /// Moves out the messages to send only after the ready batch is durable.
    std::vector<message> take_messages_after_persist() {
        return std::exchange(msgs_after_persist_, {});
    }
    /// Moves out confirmed read points.
    std::vector<read_state> take_read_states() { return std::exchange(read_states_, {}); }

    [[nodiscard]] bool has_messages() const noexcept {
        return !msgs_.empty() || !msgs_after_persist_.empty() || !read_states_.empty();
    }

    // ---- observers ----------------------------------------------------------------------

    [[nodiscard]] node_id id() const noexcept { return opt_.id; }
    [[nodiscard]] term_t term() const noexcept { return term_; }
    [[nodiscard]] node_id vote() const noexcept { return vote_; }
    [[nodiscard]] node_id leader() const noexcept { return lead_; }
    [[nodiscard]] enum role role() const noexcept { return role_; }
    [[nodiscard]] hard_state hard() const { return {term_, vote_, log_.committed()}; }
    [[nodiscard]] const configuration& conf() const noexcept { return conf_; }
    [[nodiscard]] std::uint64_t conf_version() const noexcept { return conf_version_; }
    [[nodiscard]] const raft_log<Storage>& log() const noexcept { return log_; }
    [[nodiscard]] raft_log<Storage>& log() noexcept { return log_; }
    [[nodiscard]] const std::map<node_id, progress>& progresses() const noexcept { return prs_; }
    [[nodiscard]] const options& opts() const noexcept { return opt_; }
    [[nodiscard]] std::uint64_t ticks() const noexcept { return ticks_; }

private:
    // ---- configuration ------------------------------------------------------------------

    static std::size_t voter_difference(const std::vector<node_id>& a,
                                        const std::vector<node_id>& b) {
        std::vector<node_id> diff;
        std::set_symmetric_difference(a.begin(), a.end(), b.begin(), b.end(),
                                      std::back_inserter(diff));
        return diff.size();
    }

    /// A single-voter change, entering joint from a simple configuration, or leaving joint.
    static bool legal_transition(const configuration& from, const configuration& to) {
        if (to.voters.empty()) return false;
        for (node_id l : to.learners)
            if (std::binary_search(to.voters.begin(), to.voters.end(), l) ||
                std::binary_search(to.voters_outgoing.begin(), to.voters_outgoing.end(), l))
                return false;
        if (!from.joint()) {
            if (!to.joint()) return voter_difference(from.voters, to.voters) <= 1;
            return to.voters_outgoing == from.voters;
        }
        return !to.joint() && to.voters == from.voters;
    }

    void set_configuration(const configuration& c) {
        conf_ = c;
        ++conf_version_;
        const index_t next = log_.last_index() + 1;
        for (auto it = prs_.begin(); it != prs_.end();) {
            if (!conf_.is_voter(it->first) && !conf_.is_learner(it->first)) {
                it = prs_.erase(it);
            } else {
                ++it;
            }
        }
        for (node_id m : conf_.members()) {
            auto [it, added] =
                prs_.try_emplace(m, next, opt_.max_inflight_messages, opt_.max_inflight_bytes);
            if (added) it->second.last_active = ticks_;
            it->second.learner = conf_.is_learner(m) && !conf_.is_voter(m);
        }
    }

    /// A leader removed from the configuration keeps replicating, without counting itself,
    /// until a quorum of the new configuration knows the change is committed; only then can
    /// they elect a leader without it. Stepping down earlier could leave them in a joint
    /// configuration that needs this node's vote, which it no longer casts for itself.
    void maybe_step_down_removed() {
        if (role_ != role::leader || conf_.joint() || conf_.is_voter(id())) return;
        const bool known = joint_vote(conf_, [&](node_id n) -> std::optional<bool> {
                               auto it = prs_.find(n);
                               return it != prs_.end() && it->second.commit_known >= conf_.index;
                           }) == vote_result::won;
        if (known) become_follower(term_, no_node);
    }

    /// A leader leaves a joint configuration as soon as no other change is pending: the
    /// one that entered it (dissertation 4.3), or a predecessor's if it was elected meanwhile.
    void maybe_leave_joint() {
        if (role_ != role::leader || !conf_.joint() || pending_conf_index_ > log_.applied()) return;
        configuration leave = conf_;
        leave.voters_outgoing.clear();
        leave.normalize();  // the outgoing voters' addresses go with them
        std::vector<entry> batch(1);
        batch[0].type = entry_type::configuration;
        batch[0].data = encode_configuration(leave);
        batch[0].term = term_;
        batch[0].index = log_.last_index() + 1;
        pending_conf_index_ = batch[0].index;
        log_.append(batch);
        broadcast_append();
    }

    [[nodiscard]] bool promotable() const {
        return conf_.is_voter(id()) && !log_.unstable().pending_snapshot();
    }

    progress* find_progress(node_id n) {
        auto it = prs_.find(n);
        return it == prs_.end() ? nullptr : &it->second;
    }

    // ---- roles --------------------------------------------------------------------------

    void reset(term_t t) {
        if (term_ != t) {
            term_ = t;
            vote_ = no_node;
        }
        lead_ = no_node;
        election_elapsed_ = 0;
        heartbeat_elapsed_ = 0;
        randomized_timeout_ =
            opt_.election_tick +
            static_cast<int>(rng_.below(static_cast<std::uint64_t>(opt_.election_tick)));
        votes_.clear();
        self_win_pending_ = false;
        const index_t next = log_.last_index() + 1;
        for (auto& [nid, pr] : prs_) {
            const bool learner = pr.learner;
            pr = progress(next, opt_.max_inflight_messages, opt_.max_inflight_bytes);
            pr.learner = learner;
            pr.last_active = ticks_;
        }
        uncommitted_bytes_ = 0;
        pending_conf_index_ = 0;
        read_only_.clear();
        waiting_reads_.clear();
    }

    void become_follower(term_t t, node_id leader) {
        reset(t);
        lead_ = leader;
        role_ = role::follower;
    }

    void become_pre_candidate() {
        // Changes no term and no vote: a pre-candidate that loses leaves no trace.
        votes_.clear();
        lead_ = no_node;
        role_ = role::pre_candidate;
    }

    void become_candidate() {
        reset(term_ + 1);
        vote_ = id();
        role_ = role::candidate;
    }

    void become_leader() {
        reset(term_);
        lead_ = id();
        role_ = role::leader;
        if (auto* pr = find_progress(id())) pr->become_replicate();
        // Conservatively, a configuration change may be pending anywhere in the log.
        pending_conf_index_ = log_.last_index();
        // A no-op of the new term lets the leader commit (and learn) everything before it.
        std::vector<entry> noop(1);
        noop[0].term = term_;
        noop[0].index = log_.last_index() + 1;
        log_.append(noop);
    }

    /// True when a committed configuration entry has not yet been handed out: campaigning
    /// under the old configuration could elect a leader the new one does not allow.
    [[nodiscard]] bool config_change_unapplied() const {
        if (log_.committed() <= log_.applied()) return false;
        if (log_.applied() + 1 < log_.first_index()) return false;
        std::vector<entry> ents;
        log_.slice(log_.applied() + 1, log_.committed() + 1, SIZE_MAX, ents);
        return std::any_of(ents.begin(), ents.end(),
                           [](const entry& e) { return e.type == entry_type::configuration; });
    }

    void hup() {
        if (role_ == role::leader || config_change_unapplied()) return;
        campaign(opt_.pre_vote ? message_type::pre_vote : message_type::vote);
    }

    void campaign(message_type kind, bool transfer = false) {
        term_t t = 0;
        if (kind == message_type::pre_vote) {
            become_pre_candidate();
            t = term_ + 1;  // the term we would run in; not adopted until the pre-vote is won
        } else {
            become_candidate();
            t = term_;
        }
        if (poll(id(), true) == vote_result::won) {
            // A single voter wins on its own vote, but may lead only once that vote and its
            // term are durable: a crash before that could let it vote again in the same term.
            if (kind == message_type::pre_vote) {
                campaign(message_type::vote);
            } else {
                self_win_pending_ = true;
            }
            return;
        }
        for (const auto& [nid, pr] : prs_) {
            if (nid == id() || !conf_.is_voter(nid)) continue;
            send({.type = kind,
                  .to = nid,
                  .term = t,
                  .log_term = log_.last_term(),
                  .index = log_.last_index(),
                  .context = transfer ? transfer_context : 0});
        }
    }

    vote_result poll(node_id from, bool granted) {
        votes_.try_emplace(from, granted);
        return joint_vote(conf_, [&](node_id n) -> std::optional<bool> {
            auto it = votes_.find(n);
            if (it == votes_.end()) return std::nullopt;
            return it->second;
        });
    }

    void handle_vote_request(const message& m) {
        const bool pre = m.type == message_type::pre_vote;
        const message_type resp =
            pre ? message_type::pre_vote_response : message_type::vote_response;
        const bool can_vote =
            vote_ == m.from || (vote_ == no_node && lead_ == no_node) || (pre && m.term > term_);
        // Either way, share how far the candidate's log is known committed (see step()).
        const index_t c = std::min(log_.committed(), m.index);
        const term_t ct = log_.term(c).value_or(0);
        if (can_vote && log_.is_up_to_date(m.index, m.log_term)) {
            send({.type = resp, .to = m.from, .term = m.term, .log_term = ct, .commit = c});
            if (!pre) {
                election_elapsed_ = 0;
                vote_ = m.from;
            }
        } else {
            send({.type = resp,
                  .to = m.from,
                  .term = term_,
                  .log_term = ct,
                  .commit = c,
                  .reject = true});
        }
    }

    // ---- leader -------------------------------------------------------------------------

    void tick_leader() {
        ++heartbeat_elapsed_;
        if (opt_.check_quorum && !quorum_active()) {
            // An isolated leader steps down within one election timeout.
            become_follower(term_, no_node);
            return;
        }
        if (heartbeat_elapsed_ >= opt_.heartbeat_tick) {
            heartbeat_elapsed_ = 0;
            broadcast_heartbeat(0);
        }
        send_commit_notices();
    }

    /// True when a quorum answered within the last election timeout.
    [[nodiscard]] bool quorum_active() const {
        const auto window = static_cast<std::uint64_t>(opt_.election_tick);
        return joint_vote(conf_, [&](node_id n) -> std::optional<bool> {
                   if (n == id()) return true;
                   auto it = prs_.find(n);
                   if (it == prs_.end()) return false;
                   return ticks_ - it->second.last_active < window;
               }) == vote_result::won;
    }

    [[nodiscard]] bool committed_in_current_term() const {
        return log_.term(log_.committed()) == term_;
    }

    bool maybe_commit() {
        const index_t ci = joint_committed(conf_, [&](node_id n) -> std::optional<index_t> {
            auto it = prs_.find(n);
            if (it == prs_.end()) return std::nullopt;
            return it->second.match;
        });
        const bool first_in_term = !committed_in_current_term();
        if (!log_.maybe_commit(ci, term_)) return false;
        uncommitted_bytes_ = 0;  // conservative reset: the budget only throttles bursts
        if (first_in_term && committed_in_current_term()) {
            for (const auto& [ctx, requester] : std::exchange(waiting_reads_, {}))
                handle_read(requester, ctx);
        }
        return true;
    }

    void broadcast_append() {
        for (auto& [nid, pr] : prs_) {
            if (nid == id()) continue;
            while (maybe_send_append(nid, pr, false)) {
                // Pipelining: keep sending until the follower's window is full.
            }
        }
    }

    void broadcast_heartbeat(std::uint64_t context) {
        for (auto& [nid, pr] : prs_) {
            if (nid == id()) continue;
            // A follower that got an append within the last interval already heard from us: it
            // goes at most two intervals without a message, still below the election timeout.
            if (context == 0 && pr.state == replication_state::replicate &&
                ticks_ - pr.last_sent <= static_cast<std::uint64_t>(opt_.heartbeat_tick) &&
                opt_.election_tick > 2 * opt_.heartbeat_tick)
                continue;
            const index_t commit = std::min(pr.match, log_.committed());
            pr.commit_sent = std::max(pr.commit_sent, commit);
            send(
                {.type = message_type::heartbeat, .to = nid, .commit = commit, .context = context});
        }
    }

    /// Followers learn the commit index from the next append; one that would otherwise wait
    /// for a heartbeat gets a one-way notice on the next tick.
    void send_commit_notices() {
        for (auto& [nid, pr] : prs_)
            if (nid != id()) send_commit_notice(nid, pr);
    }
    void send_commit_notice(node_id to, progress& pr) {
        if (pr.state != replication_state::replicate) return;
        const index_t c = std::min(pr.match, log_.committed());
        if (c <= pr.commit_sent) return;
        auto t = log_.term(c);
        if (!t) return;
        pr.commit_sent = c;
        send({.type = message_type::commit, .to = to, .log_term = *t, .index = c, .commit = c});
    }

    /// Sends entries (or a snapshot) to a follower unless its flow control pauses it.
    /// With `send_if_empty`, sends even when there is nothing new (a probe).
    bool maybe_send_append(node_id to, progress& pr, bool send_if_empty) {
        if (pr.paused()) return false;
        const index_t prev = pr.next - 1;
        const auto prev_term = log_.term(prev);
        std::optional<std::vector<entry>> ents;
        if (prev_term)
            ents = log_.entries_from(pr.next, opt_.max_bytes_per_message,
                                     opt_.max_entries_per_message);
        if (!ents) return send_snapshot(to, pr);
        if (ents->empty() && !send_if_empty) return false;
        std::size_t bytes = 0;
        for (const auto& e : *ents) bytes += entry_cost(e);
        const index_t last = ents->empty() ? prev : ents->back().index;
        if (!ents->empty() && pr.state == replication_state::replicate) {
            pr.optimistic_update(last);
            pr.window.add(last, bytes);
        } else if (pr.state == replication_state::probe) {
            pr.probe_sent = true;
        }
        pr.last_sent = ticks_;
        pr.commit_sent = std::max(pr.commit_sent, std::min(log_.committed(), last));
        send({.type = message_type::append,
              .to = to,
              .log_term = *prev_term,
              .index = prev,
              .commit = log_.committed(),
              .entries = std::move(*ents)});
        return true;
    }

    bool send_snapshot(node_id to, progress& pr) {
        if (ticks_ - pr.last_active >= static_cast<std::uint64_t>(opt_.election_tick)) return false;
        snapshot_meta meta = log_.snapshot_for_follower();
        if (meta.index == 0) return false;
        pr.become_snapshot(meta.index);
        pr.last_sent = ticks_;
        send({.type = message_type::snapshot, .to = to, .snap = std::move(meta)});
        return true;
    }

    void handle_read(node_id requester, std::uint64_t context) {
        const bool alone =
            conf_.voters.size() == 1 && conf_.voters.front() == id() && !conf_.joint();
        if (alone) {
            deliver_read({{log_.committed(), context}, requester});
            return;
        }
        const std::uint64_t ctx = ++read_seq_;
        read_only_.add(log_.committed(), context, requester, id(), ctx);
        broadcast_heartbeat(ctx);
    }

    void deliver_read(const ready_read& r) {
        if (r.requester == id()) {
            read_states_.push_back(r.state);
        } else {
            send({.type = message_type::read_index_response,
                  .to = r.requester,
                  .index = r.state.index,
                  .context = r.state.context});
        }
    }

    void step_leader(const message& m) {
        progress* pr = find_progress(m.from);
        switch (m.type) {
        case message_type::read_index:
            if (!committed_in_current_term()) {
                waiting_reads_.push_back({m.context, m.from});
            } else {
                handle_read(m.from, m.context);
            }
            return;
        case message_type::append_response:
            if (!pr) return;
            pr->last_active = ticks_;
            pr->commit_known = std::max(pr->commit_known, m.commit);
            maybe_step_down_removed();
            if (role_ != role::leader) return;
            if (m.reject) {
                index_t next_probe = m.reject_hint;
                if (m.log_term > 0)
                    next_probe = log_.find_conflict_by_term(m.reject_hint, m.log_term).first;
                if (pr->maybe_decrease_to(m.index, next_probe)) {
                    if (pr->state == replication_state::replicate) pr->become_probe();
                    maybe_send_append(m.from, *pr, true);
                }
                return;
            }
            if (pr->maybe_update(m.index)) {
                if (pr->state == replication_state::probe) {
                    pr->become_replicate();
                } else if (pr->state == replication_state::snapshot &&
                           pr->match + 1 >= log_.first_index()) {
                    pr->become_probe();
                    pr->become_replicate();
                } else if (pr->state == replication_state::replicate) {
                    pr->window.free_le(m.index);
                }
                maybe_commit();
                // Keep the pipeline full.
                while (maybe_send_append(m.from, *pr, false)) {
                }
            }
            return;
        case message_type::heartbeat_response:
            if (!pr) return;
            pr->last_active = ticks_;
            pr->commit_known = std::max(pr->commit_known, m.commit);
            maybe_step_down_removed();
            if (role_ != role::leader) return;
            pr->probe_sent = false;
            if (pr->state == replication_state::replicate && pr->window.full())
                pr->window.free_first_one();
            // Behind: send what is missing, or at least a probe, which exposes entries the
            // follower lost (a crash) while we had optimistically moved past them.
            if (pr->match < log_.last_index()) maybe_send_append(m.from, *pr, true);
            if (m.context != 0) {
                std::vector<ready_read> done;
                read_only_.acknowledge(m.from, m.context, conf_, done);
                for (const auto& r : done) deliver_read(r);
            }
            return;
        default: return;  // stale responses from an earlier role
        }
    }

    // ---- follower and candidates --------------------------------------------------------

    /// Rejects messages no correct peer sends: from ourselves or nobody, or carrying entries
    /// that are not contiguous after (`index`, `log_term`) with terms between `log_term` and
    /// the message's term.
    [[nodiscard]] bool well_formed(const message& m) const {
        if (m.from == no_node || m.from == id() || (m.to != id() && m.to != no_node)) return false;
        if (m.type >= message_type::snapshot_ack) return false;  // between runtimes only
        if (m.type == message_type::snapshot && (m.snap.index == 0 || m.snap.term > m.term))
            return false;
        if (m.entries.empty()) return true;
        if (m.type != message_type::append) return false;
        index_t expect = m.index + 1;
        term_t prev = m.log_term;
        for (const auto& e : m.entries) {
            if (e.index != expect++ || e.term < prev || e.term > m.term) return false;
            prev = e.term;
        }
        return true;
    }

    static bool from_leader(message_type t) {
        return t == message_type::append || t == message_type::heartbeat ||
               t == message_type::commit || t == message_type::snapshot;
    }

    void step_candidate(const message& m) {
        if (from_leader(m.type)) {
            become_follower(m.term, m.from);  // a leader of our term exists
            step_follower(m);
            return;
        }
        const message_type expected = role_ == role::pre_candidate ? message_type::pre_vote_response
                                                                   : message_type::vote_response;
        if (m.type != expected) return;
        switch (poll(m.from, !m.reject)) {
        case vote_result::won:
            if (role_ == role::pre_candidate) {
                campaign(message_type::vote);
            } else {
                become_leader();
                broadcast_append();
            }
            break;
        case vote_result::lost: become_follower(term_, no_node); break;
        case vote_result::pending: break;
        }
    }

    void step_follower(const message& m) {
        switch (m.type) {
        case message_type::append:
            election_elapsed_ = 0;
            lead_ = m.from;
            handle_append(m);
            break;
        case message_type::heartbeat:
            election_elapsed_ = 0;
            lead_ = m.from;
            log_.commit_to(std::min(m.commit, log_.last_index()));
            send({.type = message_type::heartbeat_response, .to = m.from, .context = m.context});
            break;
        case message_type::commit:
            election_elapsed_ = 0;
            lead_ = m.from;
            if (log_.match_term(m.index, m.log_term)) log_.commit_to(std::min(m.commit, m.index));
            break;
        case message_type::snapshot:
            election_elapsed_ = 0;
            lead_ = m.from;
            // A chunk in transit only shows the leader is alive; the runtime steps the whole
            // snapshot in once it holds it durably.
            if (!m.snap_partial) handle_snapshot(m);
            break;
        case message_type::read_index_response: read_states_.push_back({m.index, m.context}); break;
        default: break;
        }
    }

    void handle_append(const message& m) {
        if (m.index < log_.committed()) {
            send({.type = message_type::append_response, .to = m.from, .index = log_.committed()});
            return;
        }
        if (auto last_new = log_.maybe_append(m.index, m.log_term, m.commit, m.entries)) {
            send({.type = message_type::append_response, .to = m.from, .index = *last_new});
            return;
        }
        // Reject with a hint: the last index at or below the probe whose term is at or below
        // the leader's term there. The leader jumps back a whole term per round trip.
        const auto [hint, hint_term] =
            log_.find_conflict_by_term(std::min(m.index, log_.last_index()), m.log_term);
        send({.type = message_type::append_response,
              .to = m.from,
              .log_term = hint_term,
              .index = m.index,
              .reject_hint = hint,
              .reject = true});
    }

    void handle_snapshot(const message& m) {
        const snapshot_meta& s = m.snap;
        if (s.index <= log_.committed()) {
            send({.type = message_type::append_response, .to = m.from, .index = log_.committed()});
            return;
        }
        if (log_.match_term(s.index, s.term)) {
            // Our log already holds the snapshot's last entry: keep the suffix, but vouch
            // only for what is committed; the tail beyond it is unverified.
            log_.commit_to(s.index);
            send({.type = message_type::append_response, .to = m.from, .index = log_.committed()});
            return;
        } else {
            log_.restore(s);
            configuration c = s.conf;
            c.index = s.index;
            if (!c.empty()) set_configuration(c);
        }
        send({.type = message_type::append_response, .to = m.from, .index = log_.last_index()});
    }

    // ---- output -------------------------------------------------------------------------

    void send(message m) {
        m.from = id();
        const bool sets_own_term =
            m.type == message_type::vote || m.type == message_type::pre_vote ||
            m.type == message_type::vote_response || m.type == message_type::pre_vote_response;
        if (!sets_own_term) m.term = term_;
        // Answers tell the leader how far we know the log is committed.
        if (m.type == message_type::append_response || m.type == message_type::heartbeat_response)
            m.commit = log_.committed();
        // A leader's replication traffic goes out at once, in parallel with its own sync.
        // Everything else reflects state that must be durable first (votes, acknowledgements).
        const bool now = m.type == message_type::append || m.type == message_type::heartbeat ||
                         m.type == message_type::commit || m.type == message_type::snapshot ||
                         m.type == message_type::read_index_response;
        if (now) return msgs_.push_back(std::move(m));
        // Acknowledgements wait for the sync; several appends answered during one write need
        // only one answer: acceptances are cumulative within a term (a leader's log only
        // grows, so a match through a higher index implies the lower one). Coalescing only
        // into the last queued message keeps every other message in order. A busy follower
        // takes several appends per write: it sends about a third as many answers.
        if (!msgs_after_persist_.empty()) {
            auto& last = msgs_after_persist_.back();
            if (accepts_append(m) && accepts_append(last) && last.to == m.to &&
                last.term == m.term) {
                last.index = std::max(last.index, m.index);
                last.commit = std::max(last.commit, m.commit);
                return;
            }
        }
        msgs_after_persist_.push_back(std::move(m));
    }

    static bool accepts_append(const message& m) noexcept {
        return m.type == message_type::append_response && !m.reject;
    }

    options opt_;
    raft_log<Storage> log_;
    splitmix64 rng_;
    term_t term_ = 0;
    node_id vote_ = no_node;
    node_id lead_ = no_node;
    enum role role_ = role::follower;
    configuration conf_;
    std::uint64_t conf_version_ = 0;
    std::map<node_id, progress> prs_;
    std::map<node_id, bool> votes_;
    bool self_win_pending_ = false;
    std::uint64_t ticks_ = 0;
    static constexpr int max_elapsed = 1 << 30;
    /// Marks the vote requests of a forced election (`campaign_now`).
    static constexpr std::uint64_t transfer_context = 1;
    int election_elapsed_ = 0;
    int heartbeat_elapsed_ = 0;
    int randomized_timeout_ = 0;
    std::size_t uncommitted_bytes_ = 0;
    index_t pending_conf_index_ = 0;
    read_only_queue read_only_;
    std::uint64_t read_seq_ = 0;
    std::vector<std::pair<std::uint64_t, node_id>> waiting_reads_;
    std::vector<message> msgs_;
    std::vector<message> msgs_after_persist_;
    std::vector<read_state> read_states_;
};

}  // namespace craft::core
