# cmake -P script behind the packaging tests.
#
# STEP=install:  cmake --install BUILD_DIR into a fresh PREFIX.
# STEP=consumer: configure SOURCE_DIR into a fresh BINARY_DIR with GENERATOR, CXX_COMPILER,
#                CONFIG and CONSUMER_ARGS ("|"-separated -D options), build it, run ./consumer
#                and check it prints "craft EXPECTED_VERSION".

cmake_minimum_required(VERSION 3.21)

function(run)
    execute_process(COMMAND ${ARGN} COMMAND_ECHO STDOUT RESULT_VARIABLE result)
    if(NOT result EQUAL 0)
        list(JOIN ARGN " " command)
        message(FATAL_ERROR "failed (${result}): ${command}")
    endif()
endfunction()

if(STEP STREQUAL "install")
    file(REMOVE_RECURSE "${PREFIX}")
    set(config_args "")
    if(CONFIG)
        set(config_args --config "${CONFIG}")
    endif()
    run("${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${PREFIX}" ${config_args})
    if(NOT EXISTS "${PREFIX}/include/craft/version.hpp")
        message(FATAL_ERROR "install did not put craft/version.hpp under ${PREFIX}/include")
    endif()
    file(GLOB_RECURSE configs "${PREFIX}/*/craftConfig.cmake")
    if(NOT configs)
        message(FATAL_ERROR "install did not produce craftConfig.cmake under ${PREFIX}")
    endif()
elseif(STEP STREQUAL "consumer")
    file(REMOVE_RECURSE "${BINARY_DIR}")
    string(REPLACE "|" ";" consumer_args "${CONSUMER_ARGS}")
    set(configure_args -G "${GENERATOR}" "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}"
        "-DCRAFT_EXPECTED_VERSION=${EXPECTED_VERSION}")
    if(MAKE_PROGRAM)
        list(APPEND configure_args "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
    endif()
    if(CONFIG)
        list(APPEND configure_args "-DCMAKE_BUILD_TYPE=${CONFIG}")
    endif()
    run("${CMAKE_COMMAND}" -S "${SOURCE_DIR}" -B "${BINARY_DIR}" ${configure_args}
        ${consumer_args})
    set(config_args "")
    if(CONFIG)
        set(config_args --config "${CONFIG}")
    endif()
    run("${CMAKE_COMMAND}" --build "${BINARY_DIR}" ${config_args})

    set(program "${BINARY_DIR}/consumer")
    if(NOT EXISTS "${program}" AND EXISTS "${BINARY_DIR}/${CONFIG}/consumer")
        set(program "${BINARY_DIR}/${CONFIG}/consumer")
    endif()
    execute_process(COMMAND "${program}" OUTPUT_VARIABLE output RESULT_VARIABLE result)
    message(STATUS "consumer: ${output}")
    if(NOT result EQUAL 0 OR NOT output MATCHES "^craft ${EXPECTED_VERSION}")
        message(FATAL_ERROR "consumer failed (${result}) or printed the wrong version: ${output}")
    endif()
else()
    message(FATAL_ERROR "unknown STEP '${STEP}' (install or consumer)")
endif()
