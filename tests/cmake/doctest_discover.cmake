# cmake -P script, run after each build of a doctest executable: registers one CTest test per
# TEST_CASE, labelled with its doctest test suite (plus extra labels per suite, e.g. suite
# "concepts" also gets label "core").
#
# Why not doctest_discover_tests() from doctest's CMake module (2.4.9)? It keeps test names in
# CMake lists, so a name with a ";" becomes two tests whose filters match nothing, and doctest
# passes when nothing matches: the real test silently never runs. And with ADD_LABELS it asks
# for each test's suite with `--test-case=<name>`, a filter doctest splits at commas, so a name
# with a comma silently gets no label. Here names never go through lists, labels come from
# listing each suite, and a test that runs no test case fails.
#
# Inputs (-D): TEST_EXECUTABLE, WORKING_DIR, TIMEOUT, SUITE_LABELS (a list of
# suite=label1,label2), OUTPUT (the CTest script to write).

cmake_minimum_required(VERSION 3.21)

# Sets <out> to the raw text doctest prints between its two rules of 79 "=" for a listing.
function(doctest_listing out)
    execute_process(
        COMMAND "${TEST_EXECUTABLE}" ${ARGN}
        OUTPUT_VARIABLE output
        RESULT_VARIABLE result
        WORKING_DIRECTORY "${WORKING_DIR}")
    if(NOT result EQUAL 0)
        message(FATAL_ERROR "${TEST_EXECUTABLE} ${ARGN} failed (${result}):\n${output}")
    endif()
    string(REPEAT "=" 79 rule)
    string(FIND "${output}" "${rule}\n" begin)
    if(begin EQUAL -1)
        message(FATAL_ERROR "unexpected output from ${TEST_EXECUTABLE} ${ARGN}:\n${output}")
    endif()
    math(EXPR begin "${begin} + 80")
    string(SUBSTRING "${output}" ${begin} -1 output)
    string(FIND "${output}" "${rule}\n" end)
    string(SUBSTRING "${output}" 0 ${end} output)
    set(${out} "${output}" PARENT_SCOPE)
endfunction()

set(script "")
set(seen "\n")

include("${CMAKE_CURRENT_LIST_DIR}/pop_line.cmake")

doctest_listing(tests --list-test-cases)
while(NOT tests STREQUAL "")
    pop_line(tests test)
    # The same name twice (e.g. in two suites) is one ctest test that runs both.
    string(FIND "${seen}" "\n${test}\n" found)
    if(NOT found EQUAL -1)
        continue()
    endif()
    string(APPEND seen "${test}\n")
    # In doctest filters "," separates patterns unless escaped; "*" and "?" are wildcards that
    # also match themselves.
    string(REPLACE "," "\\," filter "${test}")
    string(APPEND script
        "add_test([==[${test}]==] [==[${TEST_EXECUTABLE}]==] [==[--test-case=${filter}]==])\n"
        "set_tests_properties([==[${test}]==] PROPERTIES WORKING_DIRECTORY [==[${WORKING_DIR}]==]"
        " TIMEOUT ${TIMEOUT}"
        " FAIL_REGULAR_EXPRESSION [==[\\[doctest\\] test cases: 0 \\|]==])\n")
endwhile()

doctest_listing(suites --list-test-suites)
string(REPLACE "\n" ";" suites "${suites}")
list(REMOVE_ITEM suites "")  # an empty suite filter would match every test
foreach(suite IN LISTS suites)
    set(labels "${suite}")
    foreach(mapping IN LISTS SUITE_LABELS)
        if(mapping MATCHES "^([^=]+)=(.*)$" AND CMAKE_MATCH_1 STREQUAL suite)
            string(REPLACE "," ";" extra "${CMAKE_MATCH_2}")
            list(APPEND labels ${extra})
        endif()
    endforeach()
    doctest_listing(suite_tests "--test-suite=${suite}" --list-test-cases)
    while(NOT suite_tests STREQUAL "")
        pop_line(suite_tests test)
        string(APPEND script
            "set_tests_properties([==[${test}]==] PROPERTIES LABELS [==[${labels}]==])\n")
    endwhile()
endforeach()

file(WRITE "${OUTPUT}" "${script}")
