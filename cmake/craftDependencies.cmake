# Finds the dependencies of craft::craft (the default policies) and defines the small imported
# targets craft::asio and craft::cereal that craft::craft links to. Used both by the build
# (CMakeLists.txt) and by the installed craftConfig.cmake, so the two cannot drift apart.
#
# craft_find_default_dependencies(<missing_var>)
#   Sets <missing_var> to the Debian packages that provide what was not found (empty when all
#   were found). Never fails by itself: the caller decides whether a missing dependency is an
#   error (the build, with CRAFT_WITH_DEFAULTS=ON) or just means craft::craft is unavailable (a
#   consumer that only needs craft::core).

function(craft_find_default_dependencies missing_var)
    set(missing "")

    # LevelDB (log store) and Snappy (its compression); Debian ships CMake configs for both.
    find_package(leveldb CONFIG QUIET)
    if(NOT TARGET leveldb::leveldb)
        list(APPEND missing libleveldb-dev)
    endif()
    find_package(Snappy CONFIG QUIET)
    if(NOT TARGET Snappy::snappy)
        list(APPEND missing libsnappy-dev)
    endif()

    # Standalone Asio (TCP transport): header only, no CMake config upstream or in Debian.
    set(THREADS_PREFER_PTHREAD_FLAG ON)
    find_package(Threads QUIET)
    find_path(CRAFT_ASIO_INCLUDE_DIR asio.hpp DOC "Directory holding standalone Asio's asio.hpp")
    if(NOT CRAFT_ASIO_INCLUDE_DIR OR NOT TARGET Threads::Threads)
        list(APPEND missing libasio-dev)
    elseif(NOT TARGET craft::asio)
        add_library(craft::asio INTERFACE IMPORTED)
        set_target_properties(craft::asio PROPERTIES
            INTERFACE_INCLUDE_DIRECTORIES "${CRAFT_ASIO_INCLUDE_DIR}"
            INTERFACE_COMPILE_DEFINITIONS ASIO_STANDALONE
            INTERFACE_LINK_LIBRARIES Threads::Threads)
    endif()

    # Cereal (codec): prefer its CMake config (Debian ships one), else the bare headers.
    if(NOT TARGET craft::cereal)
        find_package(cereal CONFIG QUIET)
        if(TARGET cereal::cereal)
            add_library(craft::cereal INTERFACE IMPORTED)
            set_target_properties(craft::cereal PROPERTIES INTERFACE_LINK_LIBRARIES cereal::cereal)
        else()
            find_path(CRAFT_CEREAL_INCLUDE_DIR cereal/cereal.hpp
                DOC "Directory holding cereal/cereal.hpp")
            if(CRAFT_CEREAL_INCLUDE_DIR)
                add_library(craft::cereal INTERFACE IMPORTED)
                set_target_properties(craft::cereal PROPERTIES
                    INTERFACE_INCLUDE_DIRECTORIES "${CRAFT_CEREAL_INCLUDE_DIR}")
            else()
                list(APPEND missing libcereal-dev)
            endif()
        endif()
    endif()

    set(${missing_var} "${missing}" PARENT_SCOPE)
endfunction()
