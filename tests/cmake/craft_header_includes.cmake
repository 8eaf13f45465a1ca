# craft_header_includes(<include_dir> <header> <craft_var> <other_var>)
#   Reads the #include lines of <include_dir>/<header> (a path such as craft/core/log.hpp) and
#   sets <craft_var> to the craft headers it includes, as include_dir-relative paths (quoted
#   includes like "log.hpp" or "../concepts.hpp" are resolved against the header's directory),
#   and <other_var> to everything else it includes (standard and third-party headers), as written.
#   Used by tests/CMakeLists.txt and check_core_includes.cmake.

function(craft_header_includes include_dir header craft_var other_var)
    get_filename_component(header_dir "${include_dir}/${header}" DIRECTORY)
    file(STRINGS "${include_dir}/${header}" lines REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"]")
    set(craft "")
    set(other "")
    foreach(line IN LISTS lines)
        if(NOT line MATCHES "^[ \t]*#[ \t]*include[ \t]*([<\"])([^>\"]*)[>\"]")
            continue()
        endif()
        set(delimiter "${CMAKE_MATCH_1}")
        set(name "${CMAKE_MATCH_2}")
        if(delimiter STREQUAL "\"" AND EXISTS "${header_dir}/${name}")
            get_filename_component(resolved "${header_dir}/${name}" ABSOLUTE)
            file(RELATIVE_PATH name "${include_dir}" "${resolved}")
        endif()
        if(name MATCHES "^craft/")
            list(APPEND craft "${name}")
        else()
            list(APPEND other "${name}")
        endif()
    endforeach()
    set(${craft_var} "${craft}" PARENT_SCOPE)
    set(${other_var} "${other}" PARENT_SCOPE)
endfunction()
