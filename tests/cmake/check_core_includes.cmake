# cmake -P script behind the core_includes test: the layering rules of DESIGN.md that a compiler
# cannot check, because every system header is on the include path anyway.
#   1. craft/core/** includes only the standard library and other craft/core/ headers (plus
#      craft/version.hpp): no threads, files, sockets, or third-party libraries.
#   2. craft/concepts.hpp (and status.hpp and snapshot_io.hpp, which it includes) include only
#      the standard library, craft/core/ headers and each other.
#
# Inputs (-D): INCLUDE_DIR (the include/ directory of the source tree).

cmake_minimum_required(VERSION 3.21)
include("${CMAKE_CURRENT_LIST_DIR}/craft_header_includes.cmake")

# Headers that would mean the core does I/O, threading or uses a third-party library.
set(forbidden
    "^(asio|leveldb|snappy|cereal|boost|doctest)[/.]"
    "^(sys|netinet|arpa|linux)/"
    "^(unistd|fcntl|pthread|netdb|poll|windows|winsock2)\\.h$"
    "^(thread|mutex|shared_mutex|condition_variable|future|semaphore|latch|barrier|stop_token)$"
    "^(fstream|filesystem)$")

file(GLOB_RECURSE headers RELATIVE "${INCLUDE_DIR}" "${INCLUDE_DIR}/craft/core/*")
foreach(layer2 IN ITEMS concepts.hpp status.hpp snapshot_io.hpp)
    if(EXISTS "${INCLUDE_DIR}/craft/${layer2}")
        list(APPEND headers "craft/${layer2}")
    endif()
endforeach()

set(errors "")
foreach(header IN LISTS headers)
    craft_header_includes("${INCLUDE_DIR}" "${header}" craft_includes other_includes)
    foreach(included IN LISTS craft_includes)
        set(allowed "^craft/core/|^craft/version\\.hpp$")
        if(NOT header MATCHES "^craft/core/")
            string(APPEND allowed "|^craft/(status|snapshot_io)\\.hpp$")
        endif()
        if(NOT included MATCHES "${allowed}")
            string(APPEND errors "${header}: includes ${included}; core layers may include only "
                "craft/core/ headers and the standard library\n")
        endif()
    endforeach()
    foreach(included IN LISTS other_includes)
        foreach(pattern IN LISTS forbidden)
            if(included MATCHES "${pattern}")
                string(APPEND errors "${header}: includes <${included}>; the core must stay pure "
                    "(no threads, files, sockets or third-party libraries)\n")
            endif()
        endforeach()
    endforeach()
endforeach()

if(errors)
    message(FATAL_ERROR "layering violations (see DESIGN.md, Layers):\n${errors}")
endif()
list(LENGTH headers count)
message(STATUS "${count} core headers include only the standard library and craft/core/")
