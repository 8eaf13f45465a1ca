#pragma once
/// @file
/// Umbrella header: everything a user of craft needs. The runtime node and the default
/// policies (LevelDB, files, Asio TCP) join it as they land; today it offers the pure core,
/// the concepts and the version.

#include "concepts.hpp"
#include "core/conf_codec.hpp"
#include "core/raw_node.hpp"
#include "snapshot_io.hpp"
#include "snapshot_options.hpp"
#include "status.hpp"
#include "version.hpp"
