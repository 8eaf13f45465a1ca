#pragma once
/// @file
/// `craft::status`: the error value of every operation that can fail.

#include <optional>  // the message, when failed
#include <string>
#include <utility>

namespace craft {

/// Outcome of an operation that can fail: empty when it succeeded, otherwise a message that
/// says what happened and what to do.
class status {
public:
    status() = default;
    /// A failed status carrying `message`.
    static status error(std::string message) {
        status s;
        s.message_ = std::move(message);
        return s;
    }
    [[nodiscard]] bool ok() const noexcept { return !message_.has_value(); }
    explicit operator bool() const noexcept { return ok(); }
    /// The error message ("" when ok).
    [[nodiscard]] const std::string& message() const noexcept {
        static const std::string none;
        return message_ ? *message_ : none;
    }

private:
    std::optional<std::string> message_;
};

}  // namespace craft
