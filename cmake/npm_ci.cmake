# cmake -DNPM=<npm> -DSRC=<folder> -DDEST=<folder> -P npm_ci.cmake
#
# Installs the packages that SRC's package.json and package-lock.json pin
# into DEST/node_modules with `npm ci` (the lock file exactly, no install
# scripts, nothing written to SRC). Does nothing when DEST already holds an
# install of the same lock file, so a run costs nothing until the lock
# changes. Used at build time for Swagger UI (src/http/CMakeLists.txt) and by
# the tests' setup for the OpenAPI validator (tests/openapi/CMakeLists.txt).
foreach(var NPM SRC DEST)
    if(NOT DEFINED ${var})
        message(FATAL_ERROR "npm_ci.cmake: -D${var}=... is needed")
    endif()
endforeach()

set(lock "${SRC}/package-lock.json")
set(stamp "${DEST}/installed-package-lock.json")
if(EXISTS "${stamp}" AND EXISTS "${DEST}/node_modules/.package-lock.json")
    file(SHA256 "${lock}" want)
    file(SHA256 "${stamp}" have)
    if(want STREQUAL have)
        return()
    endif()
endif()

file(MAKE_DIRECTORY "${DEST}")
file(COPY "${SRC}/package.json" "${lock}" DESTINATION "${DEST}")
file(REMOVE "${stamp}")
# --ignore-scripts: no package runs code at install (swagger-ui-dist's
# dependency @scarf/scarf would send install analytics); SCARF_ANALYTICS as
# well, should a script run anyway.
execute_process(
    COMMAND ${CMAKE_COMMAND} -E env SCARF_ANALYTICS=false
        "${NPM}" ci --ignore-scripts --no-audit --no-fund --loglevel=error
    WORKING_DIRECTORY "${DEST}"
    RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
    message(FATAL_ERROR "npm ci in ${DEST} (the packages of ${lock}) failed: ${rc}. "
        "It needs the npm registry.")
endif()
file(COPY_FILE "${lock}" "${stamp}")
