// A consumer of craft: checks the version and, with the defaults, that craft::craft brings usable
// LevelDB, Snappy, standalone Asio and Cereal. Shared by the find_package and add_subdirectory
// packaging tests.
#include <craft/version.hpp>

#include <cstdio>

#ifdef CONSUMER_WITH_DEFAULTS
#ifndef ASIO_STANDALONE
#error "craft::craft must define ASIO_STANDALONE"
#endif
#include <leveldb/options.h>
#include <snappy.h>
#include <asio/io_context.hpp>
#include <cereal/archives/binary.hpp>

#include <sstream>
#endif

static_assert(CRAFT_VERSION_MAJOR == CONSUMER_EXPECTED_MAJOR);
static_assert(craft::version_string == CONSUMER_EXPECTED_VERSION,
              "include/craft/version.hpp and project(VERSION) disagree");

int main() {
#ifdef CONSUMER_WITH_DEFAULTS
    asio::io_context io;       // Asio (and Threads)
    leveldb::Options options;  // LevelDB: the constructor lives in libleveldb
    if (snappy::MaxCompressedLength(0) == 0 || io.stopped() || options.create_if_missing) {
        return 1;
    }
    std::ostringstream out;  // Cereal
    {
        cereal::BinaryOutputArchive archive(out);
        archive(42);
    }
    if (out.str().size() != sizeof(int)) {
        return 1;
    }
#endif
    std::printf("craft %.*s\n", static_cast<int>(craft::version_string.size()),
                craft::version_string.data());
    return 0;
}
