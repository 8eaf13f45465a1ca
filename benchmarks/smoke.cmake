# cmake -D BENCH=<craft_bench> -D "ARGS=<flags>" -P smoke.cmake: runs craft_bench once and
# fails unless it exits 0 and prints its JSON with operations done and none failed (a ctest
# PASS_REGULAR_EXPRESSION alone would not look at the exit code).
separate_arguments(args UNIX_COMMAND "${ARGS}")
execute_process(COMMAND "${BENCH}" ${args}
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 100)
message("${out}")
if(NOT rc STREQUAL "0")
    message(FATAL_ERROR "craft_bench ${ARGS}: exited with ${rc}\n${err}")
endif()
if(NOT out MATCHES "\"failed\":0,.*\"ops_per_sec\":[1-9]")
    message(FATAL_ERROR "craft_bench ${ARGS}: no JSON with operations done and none failed\n${err}")
endif()
