// file_snapshot_store against the snapshot_store contract, on real files.

#include <doctest/doctest.h>

#include <craft/snapshot/file_snapshot_store.hpp>

#include <filesystem>
#include <fstream>
#include <string>

#include "temp_dir.hpp"

using namespace craft;
using craft::test::temp_dir;

namespace {

snapshot make(index_t index, term_t term, const std::string& data) {
    snapshot s;
    s.meta.index = index;
    s.meta.term = term;
    s.meta.conf.voters = {1, 2, 3};
    s.meta.conf.index = index > 5 ? 5 : 0;
    s.data = shared_bytes(data);
    return s;
}

void flip_byte(const std::filesystem::path& p, std::size_t at) {
    std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(at));
    char c = 0;
    f.get(c);
    f.seekp(static_cast<std::streamoff>(at));
    f.put(static_cast<char>(c ^ 0x01));
}

std::filesystem::path dir_of(const temp_dir& d, index_t index) {
    for (const auto& e : std::filesystem::directory_iterator(d.path))
        if (e.path().filename().string().find(std::to_string(index) + "-") != std::string::npos)
            return e.path();
    return {};
}

}  // namespace

TEST_SUITE("storage") {

TEST_CASE("file_snapshot_store: a saved snapshot is the latest, also after reopening") {
    temp_dir d;
    {
        file_snapshot_store s(d.path);
        CHECK_FALSE(s.latest());
        REQUIRE(s.save(make(10, 2, "state at 10")).ok());
        REQUIRE(s.save(make(20, 3, "state at 20")).ok());
        auto l = s.latest();
        REQUIRE(l);
        CHECK(l->meta.index == 20);
    }
    file_snapshot_store again(d.path);
    auto l = again.latest();
    REQUIRE(l);
    CHECK(l->meta == make(20, 3, "").meta);
    CHECK(l->data.str() == "state at 20");
}

TEST_CASE("file_snapshot_store: keeps the newest K and refuses an older snapshot") {
    temp_dir d;
    file_snapshot_store s(d.path, 2);
    for (index_t i = 1; i <= 5; ++i) REQUIRE(s.save(make(i * 10, 1, std::to_string(i))).ok());
    std::size_t dirs = 0;
    for (const auto& e : std::filesystem::directory_iterator(d.path)) {
        (void)e;
        ++dirs;
    }
    CHECK(dirs == 2);
    auto st = s.save(make(15, 1, "old"));
    CHECK_FALSE(st.ok());
    CHECK(st.message().find("older") != std::string::npos);
}

TEST_CASE("file_snapshot_store: a corrupt snapshot is skipped and reported, never loaded") {
    temp_dir d;
    {
        file_snapshot_store s(d.path, 3);
        REQUIRE(s.save(make(10, 1, "good old state")).ok());
        REQUIRE(s.save(make(20, 1, "newer state")).ok());
    }
    SUBCASE("data") {
        flip_byte(dir_of(d, 20) / "data", 3);
    }
    SUBCASE("meta") {
        flip_byte(dir_of(d, 20) / "meta", 9);
    }
    SUBCASE("truncated data") {
        std::filesystem::resize_file(dir_of(d, 20) / "data", 2);
    }
    file_snapshot_store s(d.path, 3);
    auto l = s.latest();
    REQUIRE(l);
    CHECK(l->meta.index == 10);
    CHECK(l->data.str() == "good old state");
    REQUIRE(s.skipped().size() == 1);
    CHECK(s.skipped()[0].find("20") != std::string::npos);
}

TEST_CASE("file_snapshot_store: a save interrupted by a crash leaves no snapshot behind") {
    temp_dir d;
    file_snapshot_store s(d.path);
    REQUIRE(s.save(make(10, 1, "ten")).ok());
    // A crash mid-save leaves a temporary directory with partial files.
    std::filesystem::create_directories(d.path / "tmp-snap-00000000000000000020-1-1");
    std::ofstream(d.path / "tmp-snap-00000000000000000020-1-1" / "data") << "par";
    file_snapshot_store after(d.path);
    auto l = after.latest();
    REQUIRE(l);
    CHECK(l->meta.index == 10);
    REQUIRE(after.save(make(30, 2, "thirty")).ok());
    CHECK_FALSE(std::filesystem::exists(d.path / "tmp-snap-00000000000000000020-1-1"));
}

TEST_CASE("file_snapshot_store: an unwritable directory is a clear error") {
    file_snapshot_store s("/proc/craft-cannot-exist/snapshots");
    auto st = s.save(make(1, 1, "x"));
    CHECK_FALSE(st.ok());
    CHECK(st.message().find("/proc/craft-cannot-exist/snapshots") != std::string::npos);
}

TEST_CASE("file_snapshot_store: a damaged snapshot neither blocks nor fakes a later save") {
    temp_dir d;
    file_snapshot_store s(d.path, 3);
    REQUIRE(s.save(make(80, 1, "eighty")).ok());
    REQUIRE(s.save(make(100, 1, "hundred")).ok());
    flip_byte(dir_of(d, 100) / "data", 2);
    file_snapshot_store again(d.path, 3);
    REQUIRE(again.latest()->meta.index == 80);
    CHECK(again.save(make(90, 1, "ninety")).ok());  // newer than every snapshot that loads
    CHECK(again.latest()->meta.index == 90);
    CHECK(again.save(make(100, 1, "hundred")).ok());  // rewrites the damaged one
    REQUIRE(again.latest());
    CHECK(again.latest()->meta.index == 100);
    CHECK(again.latest()->data.str() == "hundred");
    CHECK_FALSE(again.save(make(100, 2, "other term")).ok());
}

}  // TEST_SUITE
