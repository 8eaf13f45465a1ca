// file_snapshot_store against the snapshot_store contract, on real files.

#include <doctest/doctest.h>

#include <craft/snapshot/file_snapshot_store.hpp>

#include <cstddef>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "temp_dir.hpp"

using namespace craft;
using craft::test::temp_dir;

namespace {

using file_list = std::vector<std::pair<std::string, std::string>>;

snapshot_meta meta_at(index_t index, term_t term) {
    snapshot_meta m;
    m.index = index;
    m.term = term;
    m.conf.voters = {1, 2, 3};
    m.conf.learners = {7};
    m.conf.index = index > 5 ? 5 : 0;
    return m;
}

/// Saves `files` into a new snapshot, writing each in pieces of `piece` bytes.
status save(file_snapshot_store& s, const snapshot_meta& m, const file_list& files,
            std::size_t piece = 7) {
    auto sink = s.begin(m);
    if (!sink) return s.last_error();
    for (const auto& [name, contents] : files) {
        if (auto st = sink->open_file(name); !st) return st;
        for (std::size_t at = 0; at < contents.size(); at += piece)
            if (auto st = sink->write(std::string_view(contents).substr(at, piece)); !st) return st;
    }
    return sink->commit();
}

status save(file_snapshot_store& s, index_t index, term_t term, const std::string& data) {
    return save(s, meta_at(index, term), {{"state", data}});
}

/// Reads file `name` of `r` in chunks of `chunk` bytes.
std::string read_chunks(snapshot_reader& r, std::string_view name, std::size_t chunk) {
    std::string out;
    for (;;) {
        const auto before = out.size();
        REQUIRE(r.read(name, before, chunk, out).ok());
        if (out.size() == before) return out;
        CHECK(out.size() - before <= chunk);
    }
}

std::uint32_t crc_of(std::string_view s) {
    return detail::crc32c(std::as_bytes(std::span<const char>(s.data(), s.size())));
}

void flip_byte(const std::filesystem::path& p, std::size_t at) {
    std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
    REQUIRE(f);
    f.seekg(static_cast<std::streamoff>(at));
    char c = 0;
    f.get(c);
    f.seekp(static_cast<std::streamoff>(at));
    f.put(static_cast<char>(c ^ 0x01));
}

std::filesystem::path dir_of(const temp_dir& d, index_t index, term_t term = 1) {
    std::string idx = std::to_string(index);
    return d.path /
           ("snap-" + std::string(20 - idx.size(), '0') + idx + "-" + std::to_string(term));
}

std::vector<std::string> entries(const std::filesystem::path& dir) {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(dir))
        out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
}

std::vector<index_t> indexes(const file_snapshot_store& s) {
    std::vector<index_t> out;
    for (const auto& m : s.list()) out.push_back(m.index);
    return out;
}

bool mentions(const std::vector<std::string>& lines, const std::string& what) {
    return std::any_of(lines.begin(), lines.end(),
                       [&](const std::string& l) { return l.find(what) != std::string::npos; });
}

}  // namespace

TEST_SUITE("storage") {

TEST_CASE(
    "file_snapshot_store: files written in pieces read back in chunks, also after reopening") {
    temp_dir d;
    std::string big(3 * (1 << 20) + 12345, '\0');  // spans several 1 MiB checking chunks
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 131) ^ (i >> 9));
    const std::string small = "the small file";
    {
        file_snapshot_store s(d.path);
        CHECK(s.list().empty());
        CHECK(s.open(20) == nullptr);
        REQUIRE(save(s, meta_at(20, 3), {{"big.bin", big}, {"small", small}, {"empty", ""}}, 100000)
                    .ok());
    }
    file_snapshot_store s(d.path);
    REQUIRE(s.list() == std::vector{meta_at(20, 3)});
    auto r = s.open(20);
    REQUIRE(r);
    CHECK(r->meta() == meta_at(20, 3));
    CHECK(r->files() == std::vector<snapshot_file>{{"big.bin", big.size(), crc_of(big)},
                                                   {"small", small.size(), crc_of(small)},
                                                   {"empty", 0, 0}});
    CHECK(read_chunks(*r, "big.bin", 65536) == big);
    CHECK(read_chunks(*r, "small", 3) == small);
    CHECK(read_chunks(*r, "empty", 3).empty());
    CHECK(r->read_file("small") == small);

    std::string out = "prefix:";
    REQUIRE(r->read("small", 4, 5, out).ok());
    CHECK(out == "prefix:small");
    REQUIRE(r->read("small", 1000, 5, out).ok());  // past the end: nothing
    CHECK(out == "prefix:small");
    CHECK_FALSE(r->read("missing", 0, 5, out).ok());
    CHECK_FALSE(r->read_file("missing"));
    CHECK(s.skipped().empty());
}

TEST_CASE("file_snapshot_store: list is newest first and keeps the newest K") {
    temp_dir d;
    file_snapshot_store s(d.path, 3);
    for (index_t i = 1; i <= 5; ++i) REQUIRE(save(s, i * 10, 1, std::to_string(i)).ok());
    CHECK(indexes(s) == std::vector<index_t>{50, 40, 30});
    CHECK(entries(d.path).size() == 3);
    CHECK(s.open(10) == nullptr);
    CHECK(s.last_error().message().find("no snapshot at index 10") != std::string::npos);
    auto r = s.open(30);
    REQUIRE(r);
    CHECK(r->read_file("state") == "3");
}

TEST_CASE("file_snapshot_store: a reader keeps reading a snapshot pruned meanwhile") {
    temp_dir d;
    file_snapshot_store s(d.path, 1);
    REQUIRE(save(s, 10, 1, "ten").ok());
    auto r = s.open(10);
    REQUIRE(r);
    REQUIRE(save(s, 20, 1, "twenty").ok());
    CHECK_FALSE(std::filesystem::exists(dir_of(d, 10)));
    CHECK(r->read_file("state") == "ten");
}

TEST_CASE("file_snapshot_store: a damaged data file makes open fail and is reported") {
    temp_dir d;
    {
        file_snapshot_store s(d.path, 3);
        REQUIRE(save(s, 10, 1, "good old state").ok());
        REQUIRE(save(s, meta_at(20, 1), {{"a", "first file"}, {"b", "newer state"}}).ok());
    }
    std::string what;
    SUBCASE("a flipped byte") {
        flip_byte(dir_of(d, 20) / "b", 3);
        what = "b fails its checksum";
    }
    SUBCASE("truncated") {
        std::filesystem::resize_file(dir_of(d, 20) / "a", 2);
        what = "a has 2 bytes";
    }
    SUBCASE("missing") {
        std::filesystem::remove(dir_of(d, 20) / "b");
        what = "cannot open file b";
    }
    file_snapshot_store s(d.path, 3);
    CHECK(indexes(s) == std::vector<index_t>{20, 10});  // list checks only the meta
    CHECK(s.open(20) == nullptr);
    CHECK(s.last_error().message().starts_with("file_snapshot_store: "));
    CHECK(s.last_error().message().find(what) != std::string::npos);
    REQUIRE(s.skipped().size() == 1);
    CHECK(s.skipped()[0].find(dir_of(d, 20).string()) != std::string::npos);
    CHECK(s.skipped()[0].find(what) != std::string::npos);
    auto r = s.open(10);
    REQUIRE(r);
    CHECK(r->read_file("state") == "good old state");
}

TEST_CASE("file_snapshot_store: a damaged meta is skipped by list") {
    temp_dir d;
    {
        file_snapshot_store s(d.path, 3);
        REQUIRE(save(s, 10, 1, "ten").ok());
        REQUIRE(save(s, 20, 1, "twenty").ok());
    }
    std::string what;
    SUBCASE("a flipped byte") {
        flip_byte(dir_of(d, 20) / std::string(file_snapshot_store::meta_file), 9);
        what = "fails its checksum";
    }
    SUBCASE("truncated") {
        std::filesystem::resize_file(dir_of(d, 20) / std::string(file_snapshot_store::meta_file),
                                     5);
        what = "truncated";
    }
    SUBCASE("missing") {
        std::filesystem::remove(dir_of(d, 20) / std::string(file_snapshot_store::meta_file));
        what = "cannot open";
    }
    SUBCASE("under another name") {
        std::filesystem::rename(dir_of(d, 20), dir_of(d, 30));
        std::filesystem::rename(dir_of(d, 10), dir_of(d, 20));  // plausible, still wrong
        what = "unlike the directory name";
    }
    file_snapshot_store s(d.path, 3);
    const auto listed = indexes(s);
    CHECK(listed.size() <= 1);
    CHECK(std::find(listed.begin(), listed.end(), 20) == listed.end());
    CHECK(s.open(20) == nullptr);
    CHECK(mentions(s.skipped(), what));
    CHECK(s.last_error().message().find(what) != std::string::npos);
}

TEST_CASE("file_snapshot_store: a sink dropped without commit leaves no directory") {
    temp_dir d;
    file_snapshot_store s(d.path);
    {
        auto sink = s.begin(meta_at(10, 1));
        REQUIRE(sink);
        REQUIRE(sink->add_file("state", "half a snapshot").ok());
        CHECK(entries(d.path).size() == 1);  // its temporary directory
    }
    CHECK(entries(d.path).empty());
    CHECK(s.list().empty());

    auto sink = s.begin(meta_at(10, 1));
    REQUIRE(sink);
    REQUIRE(sink->add_file("state", "whole").ok());
    REQUIRE(sink->commit().ok());
    CHECK_FALSE(sink->commit().ok());  // a sink commits once
    CHECK_FALSE(sink->write(std::string_view("more")).ok());
    sink.reset();
    CHECK(entries(d.path) == std::vector<std::string>{dir_of(d, 10).filename().string()});
}

TEST_CASE("file_snapshot_store: refuses a snapshot older than the newest intact one") {
    temp_dir d;
    file_snapshot_store s(d.path, 3);
    REQUIRE(save(s, 80, 1, "eighty").ok());
    REQUIRE(save(s, 100, 1, "hundred").ok());
    auto st = save(s, 90, 1, "ninety");
    CHECK_FALSE(st.ok());
    CHECK(st.message().starts_with("file_snapshot_store: "));
    CHECK(st.message().find("older") != std::string::npos);
    CHECK(s.last_error().message() == st.message());
    CHECK(indexes(s) == std::vector<index_t>{100, 80});
    CHECK(entries(d.path).size() == 2);  // the refused one left nothing

    // A damaged newer snapshot neither blocks a save nor fakes one.
    flip_byte(dir_of(d, 100) / "state", 2);
    file_snapshot_store again(d.path, 3);
    CHECK(again.open(100) == nullptr);
    REQUIRE(save(again, 90, 1, "ninety").ok());
    REQUIRE(again.open(90));
    REQUIRE(save(again, 100, 1, "hundred").ok());  // replaces the damaged one
    auto r = again.open(100);
    REQUIRE(r);
    CHECK(r->read_file("state") == "hundred");
    CHECK_FALSE(save(again, 100, 2, "other term").ok());
    CHECK(indexes(again) == std::vector<index_t>{100, 90, 80});
    for (const auto& e : entries(d.path)) CHECK_FALSE(e.starts_with("tmp-"));
}

TEST_CASE("file_snapshot_store: saving the same snapshot twice is fine") {
    temp_dir d;
    file_snapshot_store s(d.path);
    REQUIRE(save(s, 10, 2, "ten").ok());
    REQUIRE(save(s, 10, 2, "ten").ok());
    CHECK(entries(d.path) == std::vector<std::string>{dir_of(d, 10, 2).filename().string()});
    CHECK(indexes(s) == std::vector<index_t>{10});
    auto r = s.open(10);
    REQUIRE(r);
    CHECK(r->read_file("state") == "ten");
}

TEST_CASE("file_snapshot_store: the next commit removes a crash's leftovers, not an open sink's") {
    temp_dir d;
    file_snapshot_store s(d.path);
    REQUIRE(save(s, 10, 1, "ten").ok());
    // A crash mid-save leaves a temporary directory with partial files.
    const auto stale = d.path / "tmp-snap-00000000000000000020-1-99999-0";
    std::filesystem::create_directories(stale);
    std::ofstream(stale / "state") << "par";

    file_snapshot_store after(d.path);
    CHECK(indexes(after) == std::vector<index_t>{10});
    auto pending = after.begin(meta_at(40, 1));
    REQUIRE(pending);
    REQUIRE(pending->add_file("state", "forty").ok());
    REQUIRE(save(after, 30, 1, "thirty").ok());
    CHECK_FALSE(std::filesystem::exists(stale));
    CHECK(entries(d.path).size() == 3);  // 10, 30 and the open sink's directory
    REQUIRE(pending->commit().ok());
    pending.reset();
    CHECK(indexes(after) == std::vector<index_t>{40, 30});
    CHECK(entries(d.path).size() == 2);
}

TEST_CASE("file_snapshot_store: bad file names are refused") {
    temp_dir d;
    file_snapshot_store s(d.path);
    auto sink = s.begin(meta_at(10, 1));
    REQUIRE(sink);
    CHECK_FALSE(sink->write(std::string_view("before any file")).ok());
    for (const std::string& bad : std::vector<std::string>{"", ".meta", "..", "a/b", "../escape",
                                                           "x y", std::string(65, 'n')}) {
        CAPTURE(bad);
        auto st = sink->open_file(bad);
        CHECK_FALSE(st.ok());
        CHECK(st.message().starts_with("file_snapshot_store: "));
    }
    REQUIRE(sink->open_file(std::string(64, 'n')).ok());
    REQUIRE(sink->add_file("meta", "a state machine may call a file meta").ok());
    CHECK_FALSE(sink->open_file("meta").ok());  // used once
    REQUIRE(sink->commit().ok());
    auto r = s.open(10);
    REQUIRE(r);
    CHECK(r->files().size() == 2);
    CHECK(r->read_file("meta") == "a state machine may call a file meta");
    CHECK(entries(d.path / dir_of(d, 10).filename()).size() == 3);
}

TEST_CASE("file_snapshot_store: a snapshot in a newer format is skipped, kept and not replaced") {
    temp_dir d;
    {
        file_snapshot_store s(d.path, 1);
        REQUIRE(save(s, 10, 1, "ten").ok());
    }
    // Rewrite the meta as a newer craft would frame it: version first, CRC32C last.
    const auto mp = dir_of(d, 10) / std::string(file_snapshot_store::meta_file);
    std::string m;
    {
        std::ifstream in(mp, std::ios::binary);
        m.assign(std::istreambuf_iterator<char>(in), {});
    }
    REQUIRE(m.size() > 16);
    m.resize(m.size() - 8);
    m[0] = static_cast<char>(file_snapshot_store::format_version + 1);
    core::detail::put_u64(m, crc_of(m));
    std::ofstream(mp, std::ios::binary | std::ios::trunc) << m;

    const std::string version = "format " + std::to_string(file_snapshot_store::format_version + 1);
    file_snapshot_store s(d.path, 1);
    CHECK(s.list().empty());
    REQUIRE(s.skipped().size() == 1);
    CHECK(s.skipped()[0].find(version) != std::string::npos);
    CHECK(s.skipped()[0].find("newer") != std::string::npos);
    CHECK(s.open(10) == nullptr);
    CHECK_FALSE(save(s, 10, 1, "ten").ok());  // not overwritten
    REQUIRE(save(s, 20, 1, "twenty").ok());
    REQUIRE(save(s, 30, 1, "thirty").ok());
    CHECK(std::filesystem::exists(mp));  // never pruned
    CHECK(indexes(s) == std::vector<index_t>{30});
}

TEST_CASE("file_snapshot_store: a directory that cannot be created is a clear error") {
    temp_dir d;
    std::filesystem::create_directories(d.path);
    std::ofstream(d.path / "file") << "not a directory";
    file_snapshot_store s(d.path / "file" / "snapshots");
    CHECK(s.begin(meta_at(1, 1)) == nullptr);
    const auto msg = s.last_error().message();
    CHECK(msg.starts_with("file_snapshot_store: "));
    CHECK(msg.find((d.path / "file" / "snapshots").string()) != std::string::npos);
    CHECK(msg.find("Not a directory") != std::string::npos);
    CHECK(s.list().empty());
    CHECK(s.open(1) == nullptr);
}

}  // TEST_SUITE
