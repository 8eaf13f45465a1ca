#pragma once

/// @file
/// The library version. This header is the single source of truth: CMake reads the three
/// `CRAFT_VERSION_*` macros from it to set `project(craft VERSION ...)`.

#include <string_view>  // version_string

/// Major version: incremented on incompatible API changes.
#define CRAFT_VERSION_MAJOR 0
/// Minor version: incremented on backwards-compatible additions.
#define CRAFT_VERSION_MINOR 1
/// Patch version: incremented on backwards-compatible fixes.
#define CRAFT_VERSION_PATCH 0

/// The version as one comparable number, `major * 10000 + minor * 100 + patch`.
#define CRAFT_VERSION \
    (CRAFT_VERSION_MAJOR * 10000 + CRAFT_VERSION_MINOR * 100 + CRAFT_VERSION_PATCH)

#define CRAFT_DETAIL_VERSION_STRING_IMPL(x, y, z) #x "." #y "." #z
#define CRAFT_DETAIL_VERSION_STRING(x, y, z) CRAFT_DETAIL_VERSION_STRING_IMPL(x, y, z)

namespace craft {

/// The version as `"major.minor.patch"`, built from the macros so the two cannot disagree.
inline constexpr std::string_view version_string =
    CRAFT_DETAIL_VERSION_STRING(CRAFT_VERSION_MAJOR, CRAFT_VERSION_MINOR, CRAFT_VERSION_PATCH);

}  // namespace craft

#undef CRAFT_DETAIL_VERSION_STRING
#undef CRAFT_DETAIL_VERSION_STRING_IMPL
