# cmake -P script behind each compile_fail.<name> test: builds one target that must NOT compile
# and checks the compiler said what the source promised.
#
# Inputs (-D): BUILD_DIR, TARGET, CONFIG (may be empty), SOURCE (the .cpp holding one or more
# `// expect: <regex>` lines; each CMake regex must match the build output).

cmake_minimum_required(VERSION 3.21)
include("${CMAKE_CURRENT_LIST_DIR}/pop_line.cmake")

# The regexes, one per line; read without CMake lists, since a regex may hold a ";".
file(READ "${SOURCE}" text)
set(count 0)
while(NOT text STREQUAL "")
    pop_line(text line)
    if(line MATCHES "^[ \t]*//[ \t]*expect:(.*)$")
        string(STRIP "${CMAKE_MATCH_1}" regex)
        math(EXPR count "${count} + 1")
        set(expected_${count} "${regex}")
    endif()
endwhile()
if(count EQUAL 0)
    message(FATAL_ERROR "${SOURCE} has no `// expect: <regex>` line")
endif()

# Plain ASCII quotes in diagnostics, so regexes do not depend on the locale.
set(ENV{LC_ALL} C)
set(config_args "")
if(CONFIG)
    set(config_args --config "${CONFIG}")
endif()
execute_process(
    COMMAND "${CMAKE_COMMAND}" --build "${BUILD_DIR}" --target "${TARGET}" ${config_args}
    OUTPUT_VARIABLE output
    ERROR_VARIABLE output
    RESULT_VARIABLE result)

if(result EQUAL 0)
    message(FATAL_ERROR "${TARGET} compiled, but ${SOURCE} must fail to compile.\n${output}")
endif()
foreach(i RANGE 1 ${count})
    set(regex "${expected_${i}}")
    if(NOT output MATCHES "${regex}")
        message(FATAL_ERROR
            "${TARGET} failed to compile, but not with the expected error.\n"
            "expected (regex): ${regex}\ncompiler output:\n${output}")
    endif()
    message(STATUS "found expected error: ${regex}")
endforeach()
