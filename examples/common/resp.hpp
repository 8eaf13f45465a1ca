#pragma once
// RESP2, the Redis protocol, as far as a server needs it: requests (arrays of bulk strings, or
// inline commands typed by hand) parsed incrementally under hard limits, and reply encoders.
//
// There is no server-side RESP parser among Debian's libraries (hiredis parses replies, and
// has no limits on element counts in bookworm's version), so this small one is ours; it is
// covered by tests/resp_test.cpp and never trusts a length before checking it against the
// limits.

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace craft::examples::resp {

/// What one request may hold; anything larger is a protocol error (the connection closes).
struct limits {
    std::size_t max_bulk_bytes = 1 << 20;      ///< One argument.
    std::size_t max_args = 1024 * 1024;        ///< Arguments in one request.
    std::size_t max_inline_bytes = 64 << 10;   ///< An inline command's line.
    std::size_t max_request_bytes = 64 << 20;  ///< One whole request, all arguments together.
};

/// Parses requests from a byte stream fed in arbitrary pieces.
class parser {
public:
    enum class result { request, need_more, error };

    explicit parser(limits l = {}) : lim_(l) {}

    /// Appends bytes read from the client.
    void feed(std::string_view bytes) { buf_.append(bytes); }

    /// The next complete request in `args`, `need_more`, or `error` (see `error()`; the
    /// stream cannot be trusted after it).
    result next(std::vector<std::string>& args) {
        if (!error_.empty()) return result::error;
        while (pos_ < buf_.size() || (in_array_ && remaining_ == 0)) {
            auto r = in_array_ || buf_[pos_] == '*' ? parse_array(args) : parse_inline(args);
            if (r == result::request && args.empty()) continue;  // an empty line: skip
            // Also mid-request: arguments parsed so far are copied out, so a large request
            // arriving slowly does not keep every byte of it twice.
            compact();
            return r;
        }
        compact();
        return result::need_more;
    }

    [[nodiscard]] const std::string& error() const { return error_; }
    /// Bytes received but not yet parsed (for tests and back-pressure).
    [[nodiscard]] std::size_t buffered() const { return buf_.size() - pos_; }
    /// Bytes the parser keeps: unparsed ones, and parsed ones not yet let go.
    [[nodiscard]] std::size_t kept() const { return buf_.size(); }

private:
    result fail(std::string why) {
        error_ = "Protocol error: " + std::move(why);
        return result::error;
    }

    /// The line starting at `at` (without CRLF), or nothing if incomplete; `end` is the index
    /// after the CRLF.
    std::optional<std::string_view> line(std::size_t at, std::size_t& end, std::size_t max) {
        const auto nl = buf_.find('\n', at);
        if (nl == std::string::npos) {
            if (buf_.size() - at > max) too_long_ = true;
            return std::nullopt;
        }
        end = nl + 1;
        std::size_t stop = nl;
        if (stop > at && buf_[stop - 1] == '\r') --stop;
        return std::string_view(buf_).substr(at, stop - at);
    }

    static std::optional<long long> number(std::string_view s) {
        long long v = 0;
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec != std::errc{} || p != s.data() + s.size() || s.empty()) return std::nullopt;
        return v;
    }

    /// Parses an array of bulk strings. Progress is kept between calls (the header and each
    /// complete argument are consumed as they arrive), so a request arriving in small pieces
    /// costs linear time.
    result parse_array(std::vector<std::string>& args) {
        std::size_t end = 0;
        too_long_ = false;
        if (!in_array_) {
            auto head = line(pos_, end, 32);
            if (!head) return too_long_ ? fail("array header too long") : result::need_more;
            auto n = number(head->substr(1));
            if (!n || *n < 0) return fail("invalid multibulk length");
            if (static_cast<unsigned long long>(*n) > lim_.max_args)
                return fail("too many arguments (" + std::to_string(*n) + ", at most " +
                            std::to_string(lim_.max_args) + ")");
            in_array_ = true;
            remaining_ = static_cast<std::size_t>(*n);
            request_bytes_ = 0;
            cur_.clear();
            // Reserve from what has arrived, not from what the header claims.
            cur_.reserve(std::min(remaining_, (buf_.size() - end) / 4));
            pos_ = end;
        }
        while (remaining_ > 0) {
            if (pos_ >= buf_.size()) return result::need_more;
            if (buf_[pos_] != '$')
                return fail(std::string("expected '$', got '") + printable(buf_[pos_]) + "'");
            auto bh = line(pos_, end, 32);
            if (!bh) return too_long_ ? fail("bulk header too long") : result::need_more;
            auto len = number(bh->substr(1));
            if (!len || *len < 0) return fail("invalid bulk length");
            if (static_cast<unsigned long long>(*len) > lim_.max_bulk_bytes)
                return fail("bulk string of " + std::to_string(*len) + " bytes exceeds the " +
                            std::to_string(lim_.max_bulk_bytes) + "-byte limit");
            const auto size = static_cast<std::size_t>(*len);
            if (request_bytes_ + size > lim_.max_request_bytes)
                return fail("request exceeds the " + std::to_string(lim_.max_request_bytes) +
                            "-byte limit");
            if (buf_.size() - end < size + 2) return result::need_more;
            if (buf_[end + size] != '\r' || buf_[end + size + 1] != '\n')
                return fail("bulk string not followed by CRLF");
            cur_.emplace_back(buf_, end, size);
            request_bytes_ += size;
            pos_ = end + size + 2;
            --remaining_;
        }
        in_array_ = false;
        args.swap(cur_);
        cur_.clear();
        return result::request;
    }

    result parse_inline(std::vector<std::string>& args) {
        std::size_t end = 0;
        too_long_ = false;
        auto l = line(pos_, end, lim_.max_inline_bytes);
        if (!l) return too_long_ ? fail("inline command too long") : result::need_more;
        if (l->size() > lim_.max_inline_bytes) return fail("inline command too long");
        args.clear();
        std::size_t i = 0;
        while (i < l->size()) {
            while (i < l->size() && ((*l)[i] == ' ' || (*l)[i] == '\t')) ++i;
            std::size_t j = i;
            while (j < l->size() && (*l)[j] != ' ' && (*l)[j] != '\t') ++j;
            if (j > i) args.emplace_back(l->substr(i, j - i));
            if (args.size() > lim_.max_args) return fail("too many arguments");
            i = j;
        }
        pos_ = end;
        return result::request;
    }

    static char printable(char c) { return c >= 32 && c < 127 ? c : '?'; }

    void compact() {
        if (pos_ > 0 && (pos_ == buf_.size() || pos_ > (64 << 10))) {
            buf_.erase(0, pos_);
            pos_ = 0;
        }
    }

    limits lim_;
    std::string buf_;
    std::size_t pos_ = 0;
    bool too_long_ = false;
    std::string error_;
    // An array request in progress: arguments parsed so far, how many remain, their bytes.
    bool in_array_ = false;
    std::size_t remaining_ = 0;
    std::size_t request_bytes_ = 0;
    std::vector<std::string> cur_;
};

// ---- replies ------------------------------------------------------------------------------

inline std::string simple(std::string_view s) {
    return "+" + std::string(s) + "\r\n";
}
inline std::string ok() {
    return "+OK\r\n";
}
/// An error reply; `text` starts with its code (ERR, TRYAGAIN, ...). Line breaks are blanked.
inline std::string error(std::string_view text) {
    std::string e = "-" + std::string(text);
    for (auto& c : e)
        if (c == '\r' || c == '\n') c = ' ';
    return e + "\r\n";
}
inline std::string integer(long long n) {
    return ":" + std::to_string(n) + "\r\n";
}
inline std::string bulk(std::string_view s) {
    return "$" + std::to_string(s.size()) + "\r\n" + std::string(s) + "\r\n";
}
inline std::string null_bulk() {
    return "$-1\r\n";
}
inline std::string array_header(std::size_t n) {
    return "*" + std::to_string(n) + "\r\n";
}

/// Lower-case ASCII copy (command names are case-insensitive).
inline std::string lower(std::string_view s) {
    std::string r(s);
    for (auto& c : r)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return r;
}

/// Parses a signed 64-bit integer argument as Redis does (no spaces, no '+').
inline std::optional<long long> to_int(std::string_view s) {
    long long v = 0;
    if (s.empty() || s.size() > 20) return std::nullopt;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || p != s.data() + s.size()) return std::nullopt;
    return v;
}

}  // namespace craft::examples::resp
