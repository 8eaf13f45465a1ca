#pragma once
/// @file
/// `memory_log_store`: a `log_store` in memory, for tests and simulations. Every write is
/// "durable" the moment it returns; the simulation models what a crash loses by holding
/// writes back until its virtual disk completes them. It is also the simulation's faulty
/// disk: each entry carries a CRC32C checked on every read, an entry can be corrupted on
/// purpose, and a write can be torn by a crash (see `write_torn` and `reopen`). Benchmarks
/// that measure everything but storage turn the checksums off (`memory_log_store(false)`):
/// a 4 KiB entry's CRC costs about as much as the core's whole work for it.

#include <algorithm>
#include <cassert>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "../concepts.hpp"
#include "../core/types.hpp"
#include "../detail/crc32c.hpp"

namespace craft::testing {

/// In-memory log store (models `craft::log_store`).
class memory_log_store {
public:
    /// Writes never block: a node writes this store on its core thread (see concepts.hpp).
    static constexpr bool inline_writes = true;

    /// An empty log: first index 1, last index 0. Without `checksums` nothing is computed or
    /// checked: a corrupted or torn entry reads back as it is (for benchmarks only).
    explicit memory_log_store(bool checksums = true) : ents_(1), crcs_(1), checksums_(checksums) {}

    // ---- log_reader ----
    [[nodiscard]] persistent_state initial_state() const { return {hard_, conf_}; }
    [[nodiscard]] index_t first_index() const { return offset() + 1; }
    [[nodiscard]] index_t last_index() const { return offset() + ents_.size() - 1; }
    [[nodiscard]] std::optional<term_t> term(index_t i) const {
        if (i < offset() || i > last_index()) return std::nullopt;
        if (i != offset() && !check(i)) return std::nullopt;
        return ents_[i - offset()].term;
    }
    void entries(index_t lo, index_t hi, std::size_t max_bytes, std::vector<entry>& out) const {
        assert(lo > offset() && hi <= last_index() + 1 && lo < hi);
        std::size_t bytes = 0;
        for (index_t i = lo; i < hi; ++i) {
            const entry& e = ents_[i - offset()];
            if (!check(i)) return;  // recorded in health()
            bytes += entry_cost(e);
            if (i != lo && bytes > max_bytes) break;
            out.push_back(e);
        }
    }
    [[nodiscard]] craft::snapshot_meta snapshot_meta() const { return snap_; }

    // ---- log_store ----
    status write(const log_write& w) {
        if (w.snap) {
            ents_.assign(1, entry{w.snap->term, w.snap->index, entry_type::normal, {}});
            crcs_.assign(1, 0);
            snap_ = *w.snap;
        }
        if (!w.entries.empty()) {
            const index_t first = w.entries.front().index;
            if (first <= offset())
                return status::error("memory_log_store: append below the compacted prefix");
            if (first > last_index() + 1)
                return status::error("memory_log_store: append leaves a gap in the log");
            ents_.resize(first - offset());
            crcs_.resize(first - offset());
            ents_.insert(ents_.end(), w.entries.begin(), w.entries.end());
            for (const auto& e : w.entries) crcs_.push_back(checksums_ ? checksum(e) : 0);
        }
        if (w.hard) hard_ = *w.hard;
        if (w.conf) conf_ = *w.conf;
        return {};
    }
    status compact(const craft::snapshot_meta& m) {
        if (m.index <= offset()) return {};
        if (m.index > last_index())
            return status::error("memory_log_store: compact beyond the last entry");
        const auto n = static_cast<std::ptrdiff_t>(m.index - offset());
        ents_.erase(ents_.begin(), ents_.begin() + n);
        crcs_.erase(crcs_.begin(), crcs_.begin() + n);
        ents_.front() = entry{m.term, m.index, entry_type::normal, {}};
        crcs_.front() = 0;
        snap_ = m;
        return {};
    }

    /// All stored entries (for invariant checks).
    [[nodiscard]] std::span<const entry> stored() const {
        return std::span<const entry>(ents_).subspan(1);
    }

    // ---- the faulty disk ----

    /// Ok, or the first entry that failed its checksum on a read. A node must stop rather
    /// than serve from a corrupt log.
    [[nodiscard]] const status& health() const noexcept { return health_; }
    /// Term of entry `i` if it is stored intact; no side effects (for invariant checkers).
    [[nodiscard]] std::optional<term_t> intact_term(index_t i) const {
        if (i == offset()) return ents_.front().term;
        if (i < offset() || i > last_index() || !intact(i)) return std::nullopt;
        return ents_[i - offset()].term;
    }
    /// Flips a byte of stored entry `i` (or, for an empty payload, its stored term), as a
    /// bad disk would; its checksum no longer matches. Returns false if `i` is not stored.
    bool corrupt_entry(index_t i) {
        if (i <= offset() || i > last_index()) return false;
        entry& e = ents_[i - offset()];
        if (e.data.empty()) {
            e.term ^= 0x40;
        } else {
            std::string bytes(e.data.str());
            bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 0x21);
            e.data = shared_bytes(bytes);
        }
        return true;
    }
    /// A crash in the middle of `w`: only its first `keep` entries reach the disk (none of
    /// its snapshot, hard state or configuration), and with `tear` the last of them is
    /// half-written (fails its checksum).
    void write_torn(const log_write& w, std::size_t keep, bool tear) {
        keep = std::min(keep, w.entries.size());
        if (w.snap || keep == 0) return;
        const index_t first = w.entries.front().index;
        if (first <= offset() || first > last_index() + 1) return;
        log_write part;
        part.entries = w.entries.first(keep);
        (void)write(part);
        if (tear) crcs_.back() ^= 0xdeadbeef;
    }
    /// What opening the store after a crash does: a torn tail (trailing entries that fail
    /// their checksum) was never acknowledged and is dropped; corruption before an intact
    /// entry stays and is reported when read.
    void reopen() {
        while (ents_.size() > 1 && !intact(last_index())) {
            ents_.pop_back();
            crcs_.pop_back();
        }
        health_ = {};
    }

private:
    [[nodiscard]] index_t offset() const { return ents_.front().index; }

    static std::uint32_t checksum(const entry& e) {
        std::uint32_t c = detail::crc32c(e.data.bytes());
        const std::uint64_t head[2] = {e.term, e.index};
        c = detail::crc32c(std::as_bytes(std::span<const std::uint64_t>(head)), c);
        return c ^ static_cast<std::uint32_t>(e.type);
    }
    [[nodiscard]] bool intact(index_t i) const {
        return !checksums_ || checksum(ents_[i - offset()]) == crcs_[i - offset()];
    }
    [[nodiscard]] bool check(index_t i) const {
        if (intact(i)) return true;
        if (health_.ok())
            health_ = status::error("memory_log_store: entry " + std::to_string(i) +
                                    " fails its checksum");
        return false;
    }

    std::vector<entry> ents_;          // ents_[0] is a dummy holding the snapshot's index and term
    std::vector<std::uint32_t> crcs_;  // one per entry of ents_ (0 without checksums)
    bool checksums_ = true;
    hard_state hard_;
    configuration conf_;
    craft::snapshot_meta snap_;
    mutable status health_;
};

static_assert(log_store<memory_log_store>);

}  // namespace craft::testing
