#pragma once
/// @file
/// `leveldb_log_store`: the default `log_store`. Entries, hard state, configuration and the
/// compaction point live in one LevelDB database (Snappy on); the entries of one ready batch
/// are written in one WriteBatch with one sync. Every entry carries a CRC32C over its index,
/// term, type and payload, checked on every read from disk. A bounded cache of the recent
/// tail serves replication without touching LevelDB.

#include <leveldb/cache.h>
#include <leveldb/db.h>
#include <leveldb/write_batch.h>

#include <cstdint>
#include <cstring>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>  // concurrent readers
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "../concepts.hpp"
#include "../core/conf_codec.hpp"
#include "../core/types.hpp"
#include "../detail/crc32c.hpp"
#include "../detail/fsync.hpp"
#include "../detail/leveldb_prefilled_env.hpp"

namespace craft {

/// A durable log store on LevelDB (models `craft::log_store`).
class leveldb_log_store {
public:
    /// On-disk format version written by this build.
    static constexpr std::uint32_t format_version = 1;

    /// Where and how to store the log.
    struct options {
        std::filesystem::path dir;     ///< Created if missing.
        std::uint64_t cluster_id = 0;  ///< The data directory must belong to this cluster...
        node_id id = no_node;          ///< ...and to this node.
        bool sync = true;  ///< Sync every write (turning it off risks acknowledged data).
        std::size_t cache_entries = 8192;     ///< Recent tail kept in memory, by count...
        std::size_t cache_bytes = 64u << 20;  ///< ...and by bytes.
        /// Compacted entries deleted from LevelDB along with each write, at most. Compaction
        /// itself only moves the start of the log (one small synced write), so it never
        /// stalls the log thread; the dead keys go a few hundred at a time with later writes.
        std::size_t trim_per_write = 512;
        /// LevelDB's memtable size (`leveldb::Options::write_buffer_size`; LevelDB's own
        /// default is 4 MiB). Every entry goes to LevelDB's log and again to a table file when
        /// the memtable fills; a larger memtable flushes and compacts less often, disturbing
        /// fewer of the log's syncs (benchmarks/README.md: +15-25 % ops/s at 256 B and
        /// +35-60 % at 4 KiB over 4 MiB; 32 MiB was no faster, with a higher p99.9). A node
        /// holds up to two memtables (one being flushed), and a restart replays up to one
        /// memtable's worth of LevelDB's log.
        std::size_t write_buffer_bytes = 16u << 20;
        /// Write LevelDB's own log over zeros laid down ahead of time (with `sync` only): a
        /// thread of the store fills a spare file of about `write_buffer_bytes`
        /// (`craft-spare-log` in the directory) once the current log is a quarter full, and
        /// LevelDB's next log is that file, renamed. A synced write then overwrites blocks
        /// instead of growing the file, which spares the file system a second write per sync
        /// (detail/leveldb_prefilled_env.hpp; benchmarks/README.md: LevelDB, 64 clients,
        /// +25 % ops/s). The log LevelDB opens with is a spare too: one left from before, or
        /// one made at open (a memtable's size of zeros and a sync: tens of milliseconds, and
        /// one client's p50 -9 % with LevelDB over the first memtable). A crash leaves such a file
        /// ending in zeros, maybe with a torn last record: when LevelDB opens it to replay it, it
        /// is first cut back to its last whole record (whatever this option says now); damage with
        /// records after it is refused.
        bool prefill_log = true;
    };

    /// Opens (or creates) the store; on failure `store` is null and `error` says why.
    struct open_result {
        std::unique_ptr<leveldb_log_store> store;
        status error;
    };

    /// Opens the store in `o.dir`, refusing a directory of another cluster or node, or of a
    /// newer format, with a message naming the problem.
    static open_result open(const options& o) {
        open_result r;
        if (o.id == no_node) {
            r.error = status::error("leveldb_log_store: options.id must not be 0");
            return r;
        }
        std::error_code ec;
        const bool created = std::filesystem::create_directories(o.dir, ec);
        if (ec) {
            r.error = status::error("leveldb_log_store: cannot create data directory " +
                                    o.dir.string() + ": " + ec.message());
            return r;
        }
        // A new directory must survive a power loss along with what is written in it.
        if (created) {
            if (auto st = detail::sync_directory(std::filesystem::absolute(o.dir).parent_path());
                !st) {
                r.error = st;
                return r;
            }
        }
        std::unique_ptr<leveldb_log_store> s(new leveldb_log_store(o));
        if (auto st = s->load(); !st) {
            r.error = st;
            return r;
        }
        r.store = std::move(s);
        return r;
    }

    // ---- log_reader ----------------------------------------------------------------------

    /// Reads may run on any thread while one thread writes: a write's sync holds no lock
    /// unless it deletes entries (a replaced suffix, an installed snapshot, a compaction).
    static constexpr bool concurrent_reads = true;

    [[nodiscard]] persistent_state initial_state() const {
        std::shared_lock l(mu_);
        return {hard_, conf_};
    }
    [[nodiscard]] index_t first_index() const {
        std::shared_lock l(mu_);
        return snap_.index + 1;
    }
    [[nodiscard]] index_t last_index() const {
        std::shared_lock l(mu_);
        return last_;
    }
    [[nodiscard]] std::optional<term_t> term(index_t i) const {
        std::shared_lock l(mu_);
        if (i == snap_.index) return snap_.term;
        if (i < snap_.index + 1 || i > last_) return std::nullopt;
        if (const entry* e = cached(i)) return e->term;
        auto e = read(i);
        if (!e) return std::nullopt;
        return e->term;
    }
    void entries(index_t lo, index_t hi, std::size_t max_bytes, std::vector<entry>& out) const {
        std::shared_lock l(mu_);
        if (lo < snap_.index + 1 || hi > last_ + 1) return;  // outside the contract: nothing
        std::size_t bytes = 0;
        for (index_t i = lo; i < hi; ++i) {
            std::optional<entry> loaded;
            const entry* e = cached(i);
            if (!e) {
                loaded = read(i);
                if (!loaded) return;  // corruption: recorded in health()
                e = &*loaded;
            }
            bytes += entry_cost(*e);
            if (i != lo && bytes > max_bytes) return;
            out.push_back(*e);
        }
    }
    [[nodiscard]] craft::snapshot_meta snapshot_meta() const {
        std::shared_lock l(mu_);
        return snap_;
    }

    // ---- log_store -----------------------------------------------------------------------

    status write(const log_write& w) {
        leveldb::WriteBatch batch;
        index_t last = last_;
        if (w.snap) {
            delete_entries(batch, snap_.index + 1, last_);
            batch.Put(snap_key, encode_snapshot_meta(*w.snap));
            // The snapshot's membership is the configuration from now on, unless the same
            // write carries a newer one.
            if (!w.conf && !w.snap->conf.empty()) batch.Put(conf_key, encode_conf(w.snap->conf));
            last = w.snap->index;
        }
        for (std::size_t k = 1; k < w.entries.size(); ++k)
            if (w.entries[k].index != w.entries[k - 1].index + 1)
                return status::error("leveldb_log_store: entries of one write must be consecutive");
        if (!w.entries.empty()) {
            const index_t first = w.entries.front().index;
            const index_t floor = w.snap ? w.snap->index : snap_.index;
            if (first <= floor)
                return status::error("leveldb_log_store: append at " + std::to_string(first) +
                                     " is below the compacted prefix");
            if (first > last + 1)
                return status::error("leveldb_log_store: append at " + std::to_string(first) +
                                     " leaves a gap after " + std::to_string(last));
            if (!w.snap) delete_entries(batch, first, last_);  // replaced suffix
            // One key and one value buffer for the whole batch: Put copies them into the batch.
            char key[9];
            for (const auto& e : w.entries) {
                encode_entry(e, scratch_);
                put_entry_key(key, e.index);
                batch.Put(leveldb::Slice(key, sizeof key), scratch_);
            }
            last = w.entries.back().index;
        }
        if (w.hard) batch.Put(hard_key, encode_hard_state(*w.hard));
        if (w.conf) batch.Put(conf_key, encode_conf(*w.conf));
        // Some compacted entries' keys go with this write (never read again: below the start).
        const index_t trim_to =
            std::min<index_t>(snap_.index, trimmed_ + static_cast<index_t>(opt_.trim_per_write));
        if (trim_to > trimmed_) delete_entries(batch, trimmed_ + 1, trim_to);
        leveldb::WriteOptions wo;
        wo.sync = opt_.sync;
        // Only this thread changes the store, so it read the state above without a lock. A
        // plain append syncs without one too; a write that deletes entries a reader may be
        // fetching excludes readers for its duration.
        std::unique_lock l(mu_, std::defer_lock);
        if (w.snap || (!w.entries.empty() && w.entries.front().index <= last_)) l.lock();
        if (auto st = db_->Write(wo, &batch); !st.ok())
            return status::error("leveldb_log_store: write failed in " + opt_.dir.string() + ": " +
                                 st.ToString());
        if (!l.owns_lock()) l.lock();
        // Durable: now the in-memory view follows.
        if (w.snap) {
            snap_ = *w.snap;
            cache_.clear();
            cache_bytes_ = 0;
            if (!w.conf && !w.snap->conf.empty()) conf_ = w.snap->conf;
        }
        if (!w.entries.empty()) cache_append(w.entries);
        trimmed_ = std::max(trimmed_, trim_to);
        last_ = last;
        if (w.hard) hard_ = *w.hard;
        if (w.conf) conf_ = *w.conf;
        return {};
    }

    status compact(const craft::snapshot_meta& m) {
        std::unique_lock l(mu_);
        if (m.index <= snap_.index) return {};
        if (m.index > last_)
            return status::error("leveldb_log_store: compact to " + std::to_string(m.index) +
                                 " beyond the last entry " + std::to_string(last_));
        // The entries up to m.index are dead from now on (reads refuse them); later writes
        // delete their keys a few at a time (see options::trim_per_write).
        leveldb::WriteOptions wo;
        wo.sync = opt_.sync;
        if (auto st = db_->Put(wo, snap_key, encode_snapshot_meta(m)); !st.ok())
            return status::error("leveldb_log_store: compaction failed: " + st.ToString());
        snap_ = m;
        while (!cache_.empty() && cache_.front().index <= m.index) pop_cache_front();
        return {};
    }

    /// Ok, or the first corruption found by a read (an entry whose checksum or decoding
    /// failed). A node must stop rather than serve from a corrupt log.
    [[nodiscard]] status health() const {
        std::lock_guard l(health_mu_);
        return health_;
    }

    /// The LevelDB key of entry `i` (big-endian, so keys sort by index); for tests that
    /// corrupt a stored entry on purpose.
    [[nodiscard]] static std::string entry_key(index_t i) {
        char k[9];
        put_entry_key(k, i);
        return std::string(k, sizeof k);
    }
    /// Direct access for tests that inject corruption.
    [[nodiscard]] leveldb::DB& db() noexcept { return *db_; }

private:
    static constexpr const char* meta_key = "m";
    static constexpr const char* hard_key = "h";
    static constexpr const char* conf_key = "c";
    static constexpr const char* snap_key = "s";

    explicit leveldb_log_store(options o) : opt_(std::move(o)) {}

    status load() {
        leveldb::Options lo;
        lo.create_if_missing = true;
        lo.paranoid_checks = true;  // a damaged LevelDB log is an error, never skipped silently
        lo.compression = leveldb::kSnappyCompression;
        lo.write_buffer_size = opt_.write_buffer_bytes;
        block_cache_.reset(leveldb::NewLRUCache(8u << 20));
        lo.block_cache = block_cache_.get();
        env_ = std::make_unique<detail::leveldb_prefilled_env>(opt_.dir, opt_.write_buffer_bytes,
                                                               opt_.prefill_log && opt_.sync);
        lo.env = env_.get();
        leveldb::DB* raw = nullptr;
        if (auto st = leveldb::DB::Open(lo, opt_.dir.string(), &raw); !st.ok())
            return status::error("leveldb_log_store: cannot open " + opt_.dir.string() + ": " +
                                 st.ToString());
        db_.reset(raw);
        std::string v;
        auto st = db_->Get({}, meta_key, &v);
        if (st.IsNotFound()) {
            std::unique_ptr<leveldb::Iterator> any(db_->NewIterator({}));
            any->SeekToFirst();
            if (any->Valid() || !any->status().ok())
                return status::error("leveldb_log_store: " + opt_.dir.string() +
                                     " holds data but no craft identity record; it is not a "
                                     "craft log (or it is damaged)");
            std::string meta;
            core::detail::put_u64(meta, format_version);
            core::detail::put_u64(meta, opt_.cluster_id);
            core::detail::put_u64(meta, opt_.id);
            leveldb::WriteOptions wo;
            wo.sync = true;
            if (auto ws = db_->Put(wo, meta_key, meta); !ws.ok())
                return status::error("leveldb_log_store: cannot initialise " + opt_.dir.string() +
                                     ": " + ws.ToString());
        } else if (!st.ok()) {
            return status::error("leveldb_log_store: cannot read " + opt_.dir.string() + ": " +
                                 st.ToString());
        } else {
            std::string_view in = v;
            std::uint64_t version = 0, cluster = 0, node = 0;
            if (!core::detail::get_u64(in, version) || !core::detail::get_u64(in, cluster) ||
                !core::detail::get_u64(in, node))
                return status::error("leveldb_log_store: " + opt_.dir.string() +
                                     " has an unreadable identity record; it is not a craft log");
            if (version > format_version)
                return status::error("leveldb_log_store: " + opt_.dir.string() +
                                     " was written by a newer craft (format " +
                                     std::to_string(version) + "; this build reads up to " +
                                     std::to_string(format_version) + ")");
            if (cluster != opt_.cluster_id)
                return status::error("leveldb_log_store: " + opt_.dir.string() +
                                     " belongs to cluster " + std::to_string(cluster) +
                                     ", not cluster " + std::to_string(opt_.cluster_id));
            if (node != opt_.id)
                return status::error("leveldb_log_store: " + opt_.dir.string() +
                                     " belongs to node " + std::to_string(node) + ", not node " +
                                     std::to_string(opt_.id));
        }
        if (auto e = load_record(
                hard_key, "hard state", [&] { return decode_hard_state(v, hard_); }, v);
            !e)
            return e;
        if (auto e = load_record(
                conf_key, "configuration", [&] { return decode_conf(v, conf_); }, v);
            !e)
            return e;
        if (auto e = load_record(
                snap_key, "snapshot metadata", [&] { return decode_snapshot_meta(v, snap_); }, v);
            !e)
            return e;
        // The last entry is the last key of the 'e' range.
        std::unique_ptr<leveldb::Iterator> it(db_->NewIterator({}));
        it->Seek(entry_key(~index_t{0}));
        if (it->Valid())
            it->Prev();
        else
            it->SeekToLast();
        while (it->Valid() && (it->key().size() != 9 || it->key()[0] != 'e')) it->Prev();
        if (!it->status().ok()) return corrupt("entry index (" + it->status().ToString() + ")");
        last_ = snap_.index;
        if (it->Valid()) last_ = std::max(last_, entry_index(it->key()));
        // Keys of compacted entries that a crash left undeleted go with the next writes.
        it->Seek(entry_key(0));
        trimmed_ = snap_.index;
        if (it->Valid() && it->key().size() == 9 && it->key()[0] == 'e')
            trimmed_ = std::min(trimmed_, entry_index(it->key()) - 1);
        if (!it->status().ok()) return corrupt("entry index (" + it->status().ToString() + ")");
        return {};
    }

    /// Reads record `key` into `v` and decodes it; absent is fine, unreadable is not.
    template <class Decode>
    status load_record(const char* key, const char* what, Decode decode, std::string& v) {
        auto st = db_->Get({}, key, &v);
        if (st.IsNotFound()) return {};
        if (!st.ok()) return corrupt(std::string(what) + " (" + st.ToString() + ")");
        if (!decode()) return corrupt(what);
        return {};
    }

    status corrupt(const std::string& what) const {
        return status::error("leveldb_log_store: corrupt " + what + " in " + opt_.dir.string() +
                             "; the node must not start on it (restore this node from its peers)");
    }

    // ---- encoding ------------------------------------------------------------------------

    static void put_entry_key(char (&key)[9], index_t i) {
        key[0] = 'e';
        for (int b = 0; b < 8; ++b) key[1 + b] = static_cast<char>((i >> (56 - 8 * b)) & 0xff);
    }

    /// crc32c(4) | term(8) | type(1) | payload into `v`; the checksum also covers the index.
    static void encode_entry(const entry& e, std::string& v) {
        v.clear();
        v.resize(4);
        core::detail::put_u64(v, e.term);
        v.push_back(static_cast<char>(e.type));
        v.append(e.data.str());
        const std::uint32_t crc = entry_crc(e.index, std::string_view(v).substr(4));
        for (int i = 0; i < 4; ++i)
            v[static_cast<std::size_t>(i)] = static_cast<char>((crc >> (8 * i)) & 0xff);
    }
    static std::uint32_t entry_crc(index_t index, std::string_view body) {
        char idx[8];
        for (int i = 0; i < 8; ++i) idx[i] = static_cast<char>((index >> (8 * i)) & 0xff);
        const auto c = detail::crc32c(std::as_bytes(std::span<const char>(idx, sizeof idx)));
        return detail::crc32c(std::as_bytes(std::span<const char>(body.data(), body.size())), c);
    }
    static std::optional<entry> decode_entry(index_t index, std::string_view v) {
        if (v.size() < 4 + 8 + 1) return std::nullopt;
        std::uint32_t crc = 0;
        for (int i = 0; i < 4; ++i)
            crc |= static_cast<std::uint32_t>(
                       static_cast<unsigned char>(v[static_cast<std::size_t>(i)]))
                   << (8 * i);
        std::string_view body = v.substr(4);
        if (entry_crc(index, body) != crc) return std::nullopt;
        entry e;
        e.index = index;
        if (!core::detail::get_u64(body, e.term)) return std::nullopt;
        const auto type = static_cast<std::uint8_t>(body.front());
        if (type > static_cast<std::uint8_t>(entry_type::configuration)) return std::nullopt;
        e.type = static_cast<entry_type>(type);
        body.remove_prefix(1);
        e.data = shared_bytes(body);
        return e;
    }
    static std::string encode_hard_state(const hard_state& h) {
        std::string v;
        core::detail::put_u64(v, h.term);
        core::detail::put_u64(v, h.vote);
        core::detail::put_u64(v, h.commit);
        return v;
    }
    static bool decode_hard_state(std::string_view v, hard_state& h) {
        return core::detail::get_u64(v, h.term) && core::detail::get_u64(v, h.vote) &&
               core::detail::get_u64(v, h.commit) && v.empty();
    }
    static std::string encode_conf(const configuration& c) {
        std::string v;
        core::detail::put_u64(v, c.index);
        v.append(core::encode_configuration(c).str());
        return v;
    }
    static bool decode_conf(std::string_view v, configuration& c) {
        index_t index = 0;
        if (!core::detail::get_u64(v, index)) return false;
        auto d = core::decode_configuration(shared_bytes(v));
        if (!d) return false;
        c = *d;
        c.index = index;
        return true;
    }
    static std::string encode_snapshot_meta(const craft::snapshot_meta& m) {
        std::string v;
        core::detail::put_u64(v, m.index);
        core::detail::put_u64(v, m.term);
        v.append(encode_conf(m.conf));
        return v;
    }
    static bool decode_snapshot_meta(std::string_view v, craft::snapshot_meta& m) {
        return core::detail::get_u64(v, m.index) && core::detail::get_u64(v, m.term) &&
               decode_conf(v, m.conf);
    }

    // ---- reads and the tail cache --------------------------------------------------------

    std::optional<entry> read(index_t i) const {
        std::string v;
        auto st = db_->Get({}, entry_key(i), &v);
        auto e = st.ok() ? decode_entry(i, v) : std::nullopt;
        std::lock_guard l(health_mu_);
        if (!e && health_.ok())
            health_ = status::error(
                "leveldb_log_store: entry " + std::to_string(i) + " in " + opt_.dir.string() +
                (st.ok() ? " fails its checksum" : " is missing: " + st.ToString()) +
                "; the node must stop (restore it from its peers)");
        return e;
    }

    const entry* cached(index_t i) const {
        if (cache_.empty() || i < cache_.front().index || i > cache_.back().index) return nullptr;
        return &cache_[i - cache_.front().index];
    }

    void cache_append(std::span<const entry> ents) {
        const index_t first = ents.front().index;
        while (!cache_.empty() && cache_.back().index >= first) {
            cache_bytes_ -= entry_cost(cache_.back());
            cache_.pop_back();
        }
        if (!cache_.empty() && cache_.back().index + 1 != first) {
            cache_.clear();
            cache_bytes_ = 0;
        }
        for (const auto& e : ents) {
            cache_.push_back(e);
            cache_bytes_ += entry_cost(e);
        }
        while (!cache_.empty() &&
               (cache_.size() > opt_.cache_entries || cache_bytes_ > opt_.cache_bytes))
            pop_cache_front();
    }
    void pop_cache_front() {
        cache_bytes_ -= entry_cost(cache_.front());
        cache_.pop_front();
    }

    static index_t entry_index(const leveldb::Slice& key) {
        index_t i = 0;
        for (int b = 1; b <= 8; ++b) i = (i << 8) | static_cast<unsigned char>(key[b]);
        return i;
    }
    static void delete_entries(leveldb::WriteBatch& batch, index_t from, index_t to) {
        for (index_t i = from; i <= to && from != 0; ++i) batch.Delete(entry_key(i));
    }

    options opt_;
    std::unique_ptr<leveldb::Cache> block_cache_;
    std::unique_ptr<detail::leveldb_prefilled_env> env_;  // outlives db_
    std::unique_ptr<leveldb::DB> db_;
    hard_state hard_;
    configuration conf_;
    craft::snapshot_meta snap_;
    index_t last_ = 0;
    index_t trimmed_ = 0;  // keys of entries up to here are deleted (the rest up to snap_ dead)
    std::deque<entry> cache_;
    std::string scratch_;  // encoding buffer reused across writes
    std::size_t cache_bytes_ = 0;
    mutable std::shared_mutex mu_;  // readers share; a writer updating the view excludes them
    mutable std::mutex health_mu_;
    mutable status health_;
};

static_assert(log_store<leveldb_log_store>);

}  // namespace craft
