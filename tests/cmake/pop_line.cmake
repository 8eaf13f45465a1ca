# Line-by-line reading for the cmake -P scripts here, without CMake lists (a line may hold ";").

# Sets <first> to the first line of the variable named <text_var> and removes it from there.
# (Test names never go through CMake lists.)
function(pop_line text_var first)
    string(FIND "${${text_var}}" "\n" eol)
    if(eol EQUAL -1)
        string(LENGTH "${${text_var}}" eol)
    endif()
    string(SUBSTRING "${${text_var}}" 0 ${eol} line)
    math(EXPR eol "${eol} + 1")
    string(SUBSTRING "${${text_var}}" ${eol} -1 rest)
    set(${first} "${line}" PARENT_SCOPE)
    set(${text_var} "${rest}" PARENT_SCOPE)
endfunction()
