// leveldb_log_store against the log_store contract, on real LevelDB in temporary directories.

#include <doctest/doctest.h>

#include <craft/core/raw_node.hpp>
#include <craft/storage/leveldb_log_store.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "temp_dir.hpp"

using namespace craft;
using craft::test::temp_dir;

namespace {

leveldb_log_store::options opts(const temp_dir& d, std::uint64_t cluster = 7, node_id id = 1) {
    leveldb_log_store::options o;
    o.dir = d.path;
    o.cluster_id = cluster;
    o.id = id;
    return o;
}

std::unique_ptr<leveldb_log_store> open_ok(const leveldb_log_store::options& o) {
    auto r = leveldb_log_store::open(o);
    INFO(r.error.message());
    REQUIRE(r.store);
    return std::move(r.store);
}

std::vector<entry> make(index_t from, index_t to, term_t t, const std::string& tag = "v") {
    std::vector<entry> out;
    for (index_t i = from; i <= to; ++i)
        out.push_back({t, i, entry_type::normal, shared_bytes(tag + std::to_string(i))});
    return out;
}

status append(leveldb_log_store& s, const std::vector<entry>& ents) {
    log_write w;
    w.entries = ents;
    return s.write(w);
}

std::vector<entry> read_all(const leveldb_log_store& s) {
    std::vector<entry> out;
    if (s.last_index() >= s.first_index())
        s.entries(s.first_index(), s.last_index() + 1, SIZE_MAX, out);
    return out;
}

}  // namespace

TEST_SUITE("storage") {

TEST_CASE("leveldb_log_store: entries, hard state and configuration survive a reopen") {
    temp_dir d;
    hard_state hs{3, 2, 5};
    configuration conf;
    conf.voters = {1, 2, 3};
    conf.index = 4;
    {
        auto s = open_ok(opts(d));
        CHECK(s->first_index() == 1);
        CHECK(s->last_index() == 0);
        log_write w;
        auto ents = make(1, 10, 3);
        w.entries = ents;
        w.hard = &hs;
        w.conf = &conf;
        REQUIRE(s->write(w).ok());
    }
    auto s = open_ok(opts(d));
    CHECK(s->initial_state().hard == hs);
    CHECK(s->initial_state().conf == conf);
    CHECK(s->first_index() == 1);
    CHECK(s->last_index() == 10);
    CHECK(s->term(0) == 0);
    CHECK(s->term(10) == 3);
    CHECK_FALSE(s->term(11));
    CHECK(read_all(*s) == make(1, 10, 3));
    CHECK(s->health().ok());
}

TEST_CASE("leveldb_log_store: an append replaces the conflicting suffix, also on disk") {
    temp_dir d;
    {
        auto s = open_ok(opts(d));
        REQUIRE(append(*s, make(1, 10, 1)).ok());
        REQUIRE(append(*s, make(6, 8, 2, "w")).ok());
        CHECK(s->last_index() == 8);
        CHECK(s->term(6) == 2);
        CHECK(s->term(5) == 1);
        CHECK_FALSE(append(*s, make(12, 12, 2)).ok());  // a gap is refused
    }
    auto s = open_ok(opts(d));
    CHECK(s->last_index() == 8);
    auto all = read_all(*s);
    REQUIRE(all.size() == 8);
    CHECK(all[5].data.str() == "w6");
}

TEST_CASE("leveldb_log_store: compaction drops the prefix and remembers the snapshot point") {
    temp_dir d;
    snapshot_meta m{6, 1, {}};
    m.conf.voters = {1, 2, 3};
    {
        auto s = open_ok(opts(d));
        REQUIRE(append(*s, make(1, 10, 1)).ok());
        REQUIRE(s->compact(m).ok());
        CHECK(s->first_index() == 7);
        CHECK(s->term(6) == 1);
        CHECK_FALSE(s->term(5));
        CHECK_FALSE(s->compact({20, 1, {}}).ok());  // beyond the log
    }
    auto s = open_ok(opts(d));
    CHECK(s->first_index() == 7);
    CHECK(s->last_index() == 10);
    CHECK(s->snapshot_meta().index == 6);
    CHECK(read_all(*s) == make(7, 10, 1));
}

TEST_CASE("leveldb_log_store: compacted entries' keys go a few at a time with later writes") {
    temp_dir d;
    auto o = opts(d);
    o.trim_per_write = 3;
    auto stored = [](leveldb_log_store& s, index_t i) {
        std::string v;
        return s.db().Get({}, leveldb_log_store::entry_key(i), &v).ok();
    };
    {
        auto s = open_ok(o);
        REQUIRE(append(*s, make(1, 10, 1)).ok());
        REQUIRE(s->compact({8, 1, {}}).ok());  // one small write: the keys stay for now
        CHECK(s->first_index() == 9);
        CHECK(stored(*s, 1));
        CHECK(stored(*s, 8));
        REQUIRE(append(*s, make(11, 11, 1)).ok());
        CHECK_FALSE(stored(*s, 3));
        CHECK(stored(*s, 4));
    }
    auto s = open_ok(o);  // a restart picks up where trimming stopped
    CHECK(s->first_index() == 9);
    REQUIRE(append(*s, make(12, 12, 1)).ok());
    CHECK_FALSE(stored(*s, 6));
    CHECK(stored(*s, 7));
    REQUIRE(append(*s, make(13, 13, 1)).ok());
    CHECK_FALSE(stored(*s, 8));
    CHECK(stored(*s, 9));
    CHECK(read_all(*s) == make(9, 13, 1));
}

TEST_CASE("leveldb_log_store: an installed snapshot replaces the whole log") {
    temp_dir d;
    auto s = open_ok(opts(d));
    REQUIRE(append(*s, make(1, 5, 1)).ok());
    snapshot_meta m{20, 3, {}};
    m.conf.voters = {1, 2};
    log_write w;
    w.snap = &m;
    auto tail = make(21, 22, 3);
    w.entries = tail;
    REQUIRE(s->write(w).ok());
    CHECK(s->first_index() == 21);
    CHECK(s->last_index() == 22);
    CHECK(s->term(20) == 3);
    CHECK_FALSE(s->term(5));
    CHECK(s->initial_state().conf.voters == std::vector<node_id>{1, 2});
}

TEST_CASE("leveldb_log_store: reads beyond the tail cache come from LevelDB") {
    temp_dir d;
    auto o = opts(d);
    o.cache_entries = 4;
    auto s = open_ok(o);
    REQUIRE(append(*s, make(1, 100, 2)).ok());
    CHECK(s->term(1) == 2);
    std::vector<entry> out;
    s->entries(10, 20, SIZE_MAX, out);
    CHECK(out == make(10, 19, 2));
    out.clear();
    s->entries(1, 100, 100, out);  // bounded by bytes, but at least one entry
    CHECK(out.size() >= 1);
    CHECK(out.size() < 10);
}

TEST_CASE("leveldb_log_store: the memtable is bounded by options.write_buffer_bytes") {
    // 2,000 entries of 1 KiB, 100 per write: with a 64 KiB memtable LevelDB flushes them into
    // table files as it goes (a full memtable and one being flushed, ~100 KiB each, stay in
    // memory); with the default (or LevelDB's own 4 MiB) all ~2 MiB stay in the memtable. Either
    // way every entry reads back after a reopen.
    const std::string payload(1024, 'x');
    auto memtable_bytes = [&](std::size_t buffer) {
        temp_dir d;
        auto o = opts(d);
        o.write_buffer_bytes = buffer;
        o.cache_entries = 1;  // reads below come from LevelDB, not the tail cache
        std::uint64_t usage = 0;
        {
            auto s = open_ok(o);
            for (index_t i = 1; i <= 2000; i += 100)
                REQUIRE(append(*s, make(i, i + 99, 3, payload)).ok());
            std::string v;
            REQUIRE(s->db().GetProperty("leveldb.approximate-memory-usage", &v));
            usage = std::stoull(v);
        }
        auto s = open_ok(o);
        CHECK(s->last_index() == 2000);
        CHECK(read_all(*s) == make(1, 2000, 3, payload));
        return usage;
    };
    CHECK(leveldb_log_store::options{}.write_buffer_bytes == (16u << 20));
    CHECK(memtable_bytes(64u << 10) < (256u << 10));
    CHECK(memtable_bytes(leveldb_log_store::options{}.write_buffer_bytes) > (1u << 20));
}

TEST_CASE(
    "leveldb_log_store: a data directory of another cluster, node or newer format is refused") {
    temp_dir d;
    { auto s = open_ok(opts(d, 7, 1)); }
    auto other_cluster = leveldb_log_store::open(opts(d, 8, 1));
    CHECK_FALSE(other_cluster.store);
    CHECK(other_cluster.error.message().find("belongs to cluster 7, not cluster 8") !=
          std::string::npos);
    auto other_node = leveldb_log_store::open(opts(d, 7, 2));
    CHECK_FALSE(other_node.store);
    CHECK(other_node.error.message().find("belongs to node 1, not node 2") != std::string::npos);
    {
        auto s = open_ok(opts(d, 7, 1));
        std::string meta;
        for (std::uint64_t v : {std::uint64_t{99}, std::uint64_t{7}, std::uint64_t{1}})
            for (int i = 0; i < 8; ++i) meta.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
        REQUIRE(s->db().Put({}, "m", meta).ok());
    }
    auto newer = leveldb_log_store::open(opts(d, 7, 1));
    CHECK_FALSE(newer.store);
    CHECK(newer.error.message().find("newer craft (format 99") != std::string::npos);
}

TEST_CASE("leveldb_log_store: an unwritable directory is a clear error") {
    leveldb_log_store::options o;
    o.dir = "/proc/craft-cannot-exist/log";
    o.id = 1;
    auto r = leveldb_log_store::open(o);
    CHECK_FALSE(r.store);
    CHECK(r.error.message().find("/proc/craft-cannot-exist/log") != std::string::npos);
}

TEST_CASE("leveldb_log_store: a corrupted entry is detected by its checksum, never returned") {
    temp_dir d;
    auto o = opts(d);
    o.cache_entries = 1;  // force reads from disk
    {
        auto s = open_ok(o);
        REQUIRE(append(*s, make(1, 10, 1)).ok());
        std::string v;
        REQUIRE(s->db().Get({}, leveldb_log_store::entry_key(4), &v).ok());
        v.back() = static_cast<char>(v.back() ^ 0x20);  // flip one payload bit
        REQUIRE(s->db().Put({}, leveldb_log_store::entry_key(4), v).ok());
    }
    auto s = open_ok(o);
    std::vector<entry> out;
    s->entries(1, 11, SIZE_MAX, out);
    CHECK(out.size() == 3);  // stops before the corrupt entry
    CHECK_FALSE(s->term(4));
    CHECK_FALSE(s->health().ok());
    CHECK(s->health().message().find("entry 4") != std::string::npos);
    CHECK(s->health().message().find("checksum") != std::string::npos);
}

TEST_CASE("leveldb_log_store: a single-node core restarts from it with its log and term") {
    temp_dir d;
    core::options ro;
    ro.id = 1;
    ro.voters = {1};
    auto persist = [](core::raw_node<leveldb_log_store>& n, leveldb_log_store& s) {
        while (n.has_ready()) {
            auto rd = n.get_ready();
            log_write w;
            w.entries = rd.entries;
            if (rd.hard) w.hard = &*rd.hard;
            if (rd.conf) w.conf = &*rd.conf;
            REQUIRE(s.write(w).ok());
            n.advance();
        }
    };
    term_t term = 0;
    {
        auto s = open_ok(opts(d));
        core::raw_node<leveldb_log_store> n(ro, *s);
        n.campaign();
        persist(n, *s);
        REQUIRE(n.raft_state().role() == core::role::leader);
        std::vector<entry> b(5);
        for (auto& e : b) e.data = shared_bytes(std::string("cmd"));
        REQUIRE(n.propose(std::move(b)).ok());
        persist(n, *s);
        CHECK(n.raft_state().log().committed() == 6);
        term = n.raft_state().term();
    }
    auto s = open_ok(opts(d));
    core::raw_node<leveldb_log_store> n(ro, *s);
    CHECK(n.raft_state().term() == term);
    CHECK(n.raft_state().log().committed() == 6);
    CHECK(n.raft_state().log().last_index() == 6);
    auto rd = n.get_ready();
    CHECK(rd.committed.size() == 6);  // re-applied from the log: the state machine kept nothing
}

TEST_CASE("leveldb_log_store: a damaged LevelDB log is refused at open, not skipped") {
    temp_dir d;
    {
        auto s = open_ok(opts(d));
        for (term_t t = 1; t <= 5; ++t) {
            log_write w;
            auto ents = make(t, t, t);
            hard_state hs{t, 1, 0};
            w.entries = ents;
            w.hard = &hs;
            REQUIRE(s->write(w).ok());
        }
    }
    // Flip a byte inside the last record of LevelDB's write-ahead log.
    std::filesystem::path wal;
    for (const auto& e : std::filesystem::directory_iterator(d.path))
        if (e.path().extension() == ".log") wal = e.path();
    REQUIRE(!wal.empty());
    const auto size = std::filesystem::file_size(wal);
    REQUIRE(size > 20);
    {
        std::fstream f(wal, std::ios::in | std::ios::out | std::ios::binary);
        f.seekg(static_cast<std::streamoff>(size - 10));
        char c = 0;
        f.get(c);
        f.seekp(static_cast<std::streamoff>(size - 10));
        f.put(static_cast<char>(c ^ 0x40));
    }
    auto r = leveldb_log_store::open(opts(d));
    CHECK_FALSE(r.store);
    CHECK(r.error.message().find(d.path.string()) != std::string::npos);
}

TEST_CASE("leveldb_log_store: an installed snapshot's configuration survives a reopen") {
    temp_dir d;
    snapshot_meta m{20, 3, {}};
    m.conf.voters = {1, 2};
    m.conf.index = 15;
    {
        auto s = open_ok(opts(d));
        log_write w;
        w.snap = &m;
        REQUIRE(s->write(w).ok());
    }
    auto s = open_ok(opts(d));
    CHECK(s->initial_state().conf == m.conf);
}

/// LevelDB's newest log file in `dir`.
std::filesystem::path newest_log(const std::filesystem::path& dir) {
    std::filesystem::path newest;
    for (const auto& e : std::filesystem::directory_iterator(dir))
        if (e.path().extension() == ".log" && e.path().filename() > newest.filename())
            newest = e.path();
    return newest;
}

/// True for a file the size of a spare log (whole MiB): a log written over zeros, not cut yet.
bool spare_sized(const std::filesystem::path& f) {
    const auto size = std::filesystem::file_size(f);
    return size >= (1u << 20) && size % (1u << 20) == 0;
}

TEST_CASE("leveldb_log_store: LevelDB's log written over a spare reads back after a crash") {
    // A 64 KiB memtable switches LevelDB's log every ~64 KiB: the store fills a spare of zeros
    // once a log is a quarter full, and a later switch writes the new log over it.
    temp_dir d;
    auto o = opts(d);
    o.write_buffer_bytes = 64u << 10;
    const std::string payload(1000, 'p');
    index_t last = 0;
    const hard_state hs{2, 1, 3};  // small integers: the record ends in zero bytes
    temp_dir crash, torn, hole, first_only, damaged;
    {
        auto s = open_ok(o);
        const auto first = newest_log(d.path);  // LevelDB's log at open (a spare made then)
        auto switched = [&] {
            const auto now = newest_log(d.path);
            return now != first && spare_sized(now);
        };
        for (int i = 0; i < 20'000 && !switched(); ++i, last += 4)
            REQUIRE(append(*s, make(last + 1, last + 4, 2, payload)).ok());
        REQUIRE(switched());  // the current log is the filler's spare
        for (int i = 0; i < 3; ++i, ++last)
            REQUIRE(append(*s, make(last + 1, last + 1, 2, payload)).ok());
        // The last write, ~51 KB: one record in fragments over two or three 32 KiB blocks.
        auto big = make(last + 1, last + 50, 2, payload);
        log_write w;
        w.entries = big;
        w.hard = &hs;
        REQUIRE(s->write(w).ok());
        last += 50;
        // A second open of the live directory is refused and leaves the live log alone.
        CHECK_FALSE(leveldb_log_store::open(o).store);
        REQUIRE(spare_sized(newest_log(d.path)));
        // Crash images: the files as a power loss right now would leave them (LevelDB's
        // compaction may delete a file meanwhile; it was no longer needed).
        for (const auto* img : {&crash, &torn, &hole, &first_only, &damaged}) {
            std::filesystem::create_directories(img->path);
            for (const auto& e : std::filesystem::directory_iterator(d.path)) {
                std::error_code ec;
                std::filesystem::copy_file(e.path(), img->path / e.path().filename(), ec);
            }
        }
    }
    const auto all = make(1, last, 2, payload);
    const auto before_big = make(1, last - 50, 2, payload);
    auto reopen = [&](const temp_dir& img, bool prefill = true) {
        auto c = o;
        c.dir = img.path;
        c.prefill_log = prefill;
        return leveldb_log_store::open(c);
    };
    // The spare's zeros begin right after the last record (but for its own last zero bytes).
    auto data_end = [](const std::string& data) { return data.find_last_not_of('\0') + 1; };
    auto rewrite = [](const std::filesystem::path& f, auto&& change) {
        std::string data;
        {
            std::ifstream in(f, std::ios::binary);
            data.assign(std::istreambuf_iterator<char>(in), {});
        }
        change(data);
        std::ofstream out(f, std::ios::binary | std::ios::trunc);
        out.write(data.data(), static_cast<std::streamsize>(data.size()));
    };
    auto zero = [](std::string& data, std::size_t from, std::size_t to) {
        std::fill(data.begin() + static_cast<std::ptrdiff_t>(from),
                  data.begin() + static_cast<std::ptrdiff_t>(to), '\0');
    };
    constexpr std::size_t block = 32768;
    SUBCASE("a clean close cuts the zeros") {
        CHECK_FALSE(spare_sized(newest_log(d.path)));
        auto s = open_ok(o);
        CHECK(read_all(*s) == all);
        CHECK(s->initial_state().hard == hs);
    }
    SUBCASE("after a crash every write reads back") {
        REQUIRE(spare_sized(newest_log(crash.path)));
        auto r = reopen(crash);
        REQUIRE_MESSAGE(r.store, r.error.message());
        CHECK(read_all(*r.store) == all);
        CHECK(r.store->initial_state().hard == hs);
    }
    SUBCASE("a record whose end the crash lost is cut (also with prefill_log off)") {
        rewrite(newest_log(torn.path),
                [&](std::string& data) { zero(data, data_end(data) - 300, data_end(data)); });
        auto r = reopen(torn, false);
        REQUIRE_MESSAGE(r.store, r.error.message());
        CHECK(read_all(*r.store) == before_big);  // only the torn write is lost
        CHECK(r.store->initial_state().hard == hard_state{});
        CHECK(r.store->health().ok());
    }
    SUBCASE("a record with a hole in its middle is cut") {
        rewrite(newest_log(hole.path), [&](std::string& data) {
            const auto last_block = data_end(data) / block * block;  // its last fragment's
            zero(data, last_block - 8192, last_block - 4096);        // a page of an earlier one
        });
        auto r = reopen(hole);
        REQUIRE_MESSAGE(r.store, r.error.message());
        CHECK(read_all(*r.store) == before_big);
    }
    SUBCASE("a record of which only the first fragments reached the disk is cut") {
        rewrite(newest_log(first_only.path), [&](std::string& data) {
            zero(data, data_end(data) / block * block, data.size());
        });
        auto r = reopen(first_only);
        REQUIRE_MESSAGE(r.store, r.error.message());
        CHECK(read_all(*r.store) == before_big);
    }
    SUBCASE("damage with records after it is refused at open, not cut") {
        rewrite(newest_log(damaged.path), [&](std::string& data) {
            data[100] = static_cast<char>(data[100] ^ 0x40);  // in the log's first write
        });
        auto r = reopen(damaged);
        CHECK_FALSE(r.store);
        CHECK(r.error.message().find(damaged.path.string()) != std::string::npos);
    }
}

TEST_CASE("leveldb_log_store: the next spare is made once the new log is a quarter full") {
    // Not as the old log closes at a switch: filling then would add its writes to the disk
    // just as LevelDB writes the full memtable out.
    temp_dir d;
    auto o = opts(d);
    o.write_buffer_bytes = 64u << 10;  // a 2 MiB spare, asked for past 16 KiB of a log
    const std::string payload(1000, 'p');
    const auto spare = d.path / "craft-spare-log";
    auto s = open_ok(o);
    const auto first = newest_log(d.path);
    index_t last = 0;
    auto write4 = [&] {  // four entries, ~4 KB of log
        REQUIRE(append(*s, make(last + 1, last + 4, 2, payload)).ok());
        last += 4;
    };
    for (int i = 0; i < 20'000 && (newest_log(d.path) == first || !spare_sized(newest_log(d.path)));
         ++i)
        write4();
    const auto current = newest_log(d.path);
    REQUIRE(current != first);
    REQUIRE(spare_sized(current));  // switched to a spare; the write after the switch is in it
    // The old log's close asked for nothing: no spare appears while the new log stays short
    // (the filler makes a 2 MiB spare in milliseconds when asked).
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    CHECK_FALSE(std::filesystem::exists(spare));
    CHECK_FALSE(std::filesystem::exists(d.path / "craft-spare-log.tmp"));
    // Past a quarter of the memtable's size, the filler makes the next one.
    for (int i = 0; i < 5; ++i) write4();
    REQUIRE(newest_log(d.path) == current);
    bool made = false;
    for (int i = 0; i < 1000 && !made; ++i) {
        made = std::filesystem::exists(spare) && std::filesystem::file_size(spare) == (2u << 20);
        if (!made) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    CHECK(made);
}

TEST_CASE("leveldb_log_store: the log LevelDB opens with is written over a spare") {
    temp_dir d;
    auto o = opts(d);
    o.write_buffer_bytes = 64u << 10;
    auto logs = [&] {
        std::vector<std::uintmax_t> sizes;  // of each LevelDB log in the directory
        for (const auto& e : std::filesystem::directory_iterator(d.path))
            if (e.path().extension() == ".log") sizes.push_back(std::filesystem::file_size(e));
        return sizes;
    };
    const auto spare = detail::prefill_bytes(o.write_buffer_bytes);
    for (int run = 0; run < 2; ++run) {  // a new directory, then a reopen (no spare left)
        REQUIRE_FALSE(std::filesystem::exists(d.path / "craft-spare-log"));  // made at open
        auto s = open_ok(o);
        CHECK(logs() == std::vector<std::uintmax_t>{spare});
        REQUIRE(append(*s, make(3 * run + 1, 3 * run + 3, 1)).ok());
        CHECK(logs() == std::vector<std::uintmax_t>{spare});  // overwritten, not grown
        s.reset();
        auto after = logs();  // a clean close cuts the zeros
        REQUIRE(after.size() == 1);
        CHECK(after[0] < spare);
    }
    CHECK(read_all(*open_ok(o)) == make(1, 6, 1));
    for (auto change : {+[](leveldb_log_store::options& c) { c.prefill_log = false; },
                        +[](leveldb_log_store::options& c) { c.sync = false; }}) {
        temp_dir plain;
        auto c = opts(plain);
        change(c);
        auto s = open_ok(c);
        for (const auto& e : std::filesystem::directory_iterator(plain.path))
            if (e.path().extension() == ".log") CHECK(std::filesystem::file_size(e) < spare);
    }
}

TEST_CASE("leveldb_log_store: a request outside the stored range is not mistaken for corruption") {
    temp_dir d;
    auto s = open_ok(opts(d));
    REQUIRE(append(*s, make(1, 10, 1)).ok());
    REQUIRE(s->compact({5, 1, {}}).ok());
    std::vector<entry> out;
    s->entries(3, 8, SIZE_MAX, out);
    CHECK(out.empty());
    CHECK(s->health().ok());
    CHECK_FALSE(append(*s, {make(11, 11, 1)[0], make(13, 13, 1)[0]}).ok());  // not consecutive
}

}  // TEST_SUITE

TEST_SUITE("core") {

TEST_CASE("crc32c: known values, and the fast path agrees with the table") {
    auto crc = [](std::string_view s) {
        return craft::detail::crc32c(std::as_bytes(std::span<const char>(s.data(), s.size())));
    };
    CHECK(crc("") == 0u);
    CHECK(crc("123456789") == 0xe3069283u);  // the standard check value of CRC32C
    std::string big(10'000, '\0');
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 131 + 7);
    const auto bytes = std::as_bytes(std::span<const char>(big.data(), big.size()));
    CHECK(craft::detail::crc32c(bytes) == ~craft::detail::crc32c_portable(bytes, ~0u));
    // Continuing over two halves equals one pass.
    CHECK(craft::detail::crc32c(bytes.subspan(5000), craft::detail::crc32c(bytes.first(5000))) ==
          craft::detail::crc32c(bytes));
}

}  // TEST_SUITE
