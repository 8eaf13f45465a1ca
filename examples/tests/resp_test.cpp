// The RESP2 request parser of the examples: pipelining, arbitrary splits, inline commands,
// and every limit and malformation refused with a message (and without allocating what a
// hostile header claims).

#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "common/resp.hpp"

using craft::examples::resp::limits;
using craft::examples::resp::parser;
using args_t = std::vector<std::string>;

namespace {

/// Every request in `bytes`, fed `step` bytes at a time; stops at the first error.
std::vector<args_t> parse_all(const std::string& bytes, std::size_t step,
                              std::string* error = nullptr, limits l = {}) {
    parser p(l);
    std::vector<args_t> out;
    args_t args;
    for (std::size_t i = 0; i < bytes.size(); i += step) {
        p.feed(std::string_view(bytes).substr(i, step));
        while (true) {
            auto r = p.next(args);
            if (r == parser::result::need_more) break;
            if (r == parser::result::error) {
                if (error) *error = p.error();
                return out;
            }
            out.push_back(args);
        }
    }
    return out;
}

}  // namespace

TEST_CASE("resp: pipelined requests, split at every possible point") {
    const std::string in =
        "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nva\r\nl\r\n"  // a value holding CRLF
        "*1\r\n$4\r\nPING\r\n"
        "*2\r\n$3\r\nGET\r\n$0\r\n\r\n"  // an empty argument
        "*0\r\n"                         // nothing: skipped
        "PING inline  with   spaces\r\n"
        "\r\n"  // an empty line: skipped
        "DBSIZE\n";
    const std::vector<args_t> want = {{"SET", "key", "va\r\nl"},
                                      {"PING"},
                                      {"GET", ""},
                                      {"PING", "inline", "with", "spaces"},
                                      {"DBSIZE"}};
    for (std::size_t step = 1; step <= in.size(); ++step) {
        std::string err;
        CHECK_MESSAGE(parse_all(in, step, &err) == want, "step " << step);
        CHECK(err.empty());
    }
}

TEST_CASE("resp: malformed requests are refused, naming the problem") {
    struct bad {
        std::string in, why;
    };
    const bad cases[] = {
        {"*x\r\n", "invalid multibulk length"},
        {"*-2\r\n", "invalid multibulk length"},
        {"*1\r\n:5\r\n", "expected '$', got ':'"},
        {"*1\r\n$-1\r\n", "invalid bulk length"},
        {"*1\r\n$abc\r\n", "invalid bulk length"},
        {"*1\r\n$3\r\nGETXX", "bulk string not followed by CRLF"},
        {"*1\r\n$99999999999999999999999\r\n", "invalid bulk length"},
        {"*" + std::string(40, '1'), "array header too long"},
    };
    for (const auto& c : cases) {
        std::string err;
        auto got = parse_all(c.in, c.in.size(), &err);
        CHECK_MESSAGE(got.empty(), c.in);
        CHECK_MESSAGE(err.find(c.why) != std::string::npos, c.in << " -> " << err);
        CHECK(err.starts_with("Protocol error: "));
    }
}

TEST_CASE("resp: limits on argument size, argument count and inline length") {
    limits l;
    l.max_bulk_bytes = 16;
    l.max_args = 3;
    l.max_inline_bytes = 32;
    std::string err;
    // At the limits: fine.
    auto ok = parse_all("*3\r\n$16\r\n" + std::string(16, 'a') + "\r\n$1\r\nb\r\n$1\r\nc\r\n", 7,
                        &err, l);
    CHECK(ok.size() == 1);
    CHECK(err.empty());
    // One byte over: refused before the bytes arrive.
    parse_all("*1\r\n$17\r\n", 100, &err, l);
    CHECK(err.find("17 bytes exceeds the 16-byte limit") != std::string::npos);
    err.clear();
    parse_all("*4\r\n", 100, &err, l);
    CHECK(err.find("too many arguments (4, at most 3)") != std::string::npos);
    err.clear();
    parse_all(std::string(33, 'x') + "\r\n", 100, &err, l);
    CHECK(err.find("inline command too long") != std::string::npos);
    err.clear();
    parse_all(std::string(40, 'x'), 5, &err, l);  // no newline yet, already too long
    CHECK(err.find("inline command too long") != std::string::npos);
    err.clear();
    parse_all("a b c d\r\n", 100, &err, l);
    CHECK(err.find("too many arguments") != std::string::npos);
    // The whole request is bounded too, not only each argument.
    err.clear();
    l.max_request_bytes = 40;
    parse_all("*3\r\n$16\r\n" + std::string(16, 'a') + "\r\n$16\r\n" + std::string(16, 'b') +
                  "\r\n$16\r\n",
              3, &err, l);
    CHECK(err.find("request exceeds the 40-byte limit") != std::string::npos);
}

TEST_CASE("resp: a request arriving a byte at a time is parsed once (progress is kept)") {
    // 20,000 arguments fed one byte at a time: quadratic re-parsing would take minutes.
    std::string in = "*20000\r\n";
    for (int i = 0; i < 20000; ++i) in += "$5\r\nabcde\r\n";
    std::string err;
    auto got = parse_all(in, 1, &err);
    REQUIRE(got.size() == 1);
    CHECK(got[0].size() == 20000);
    CHECK(err.empty());
}

TEST_CASE("resp: a huge declared count allocates nothing up front; errors are sticky") {
    parser p;  // default limits: 1 Mi arguments
    p.feed("*1000000\r\n$1\r\na\r\n");
    args_t args;
    CHECK(p.next(args) == parser::result::need_more);
    CHECK(args.capacity() < 1000);
    p.feed("garbage");
    CHECK(p.next(args) == parser::result::error);
    CHECK(p.next(args) == parser::result::error);  // the stream stays refused
}

TEST_CASE("resp: arguments of a request still arriving are not kept twice") {
    parser p;
    args_t args;
    const std::string arg(200000, 'x');
    p.feed("*3\r\n$3\r\nSET\r\n$200000\r\n" + arg + "\r\n$10\r\nab");
    CHECK(p.next(args) == parser::result::need_more);
    CHECK(p.kept() < 100);  // the 200 kB argument is copied out; its bytes are let go
    p.feed("cdefghij\r\n");
    REQUIRE(p.next(args) == parser::result::request);
    CHECK(args == args_t{"SET", arg, "abcdefghij"});
}
