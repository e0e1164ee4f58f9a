# What `cmake --install` puts in place, and the Debian package made from the same rules.
#
#   bin/freshet                               the server (Lua modules and client built in)
#   share/lua/5.1/freshet/*.lua               the Lua modules, for a plain luajit or lua5.1
#   <lua C dir>/freshet/{crypto,native}.so    their C halves (freshet.jwt, freshet.test)
#   share/freshet/client/                     the browser client: freshet.js, freshet.mjs, types
#   share/freshet/examples/<name>/            the starter apps
#   share/man/man1/freshet.1                  the man page
#   lib/systemd/system/freshet.service        the systemd unit
#   share/doc/freshet/                        README, LICENSE, docs/*.md
#
# The binary embeds lua/freshet/*.lua and client/freshet.js, so it finds nothing on disk and
# works from the build tree and from any prefix alike; the installed copies are for tools and
# pages outside the server.
include(GNUInstallDirs)

install(TARGETS freshet RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

install(FILES ${FR_LUA_FILES} DESTINATION ${CMAKE_INSTALL_DATADIR}/lua/5.1/freshet)

# The C modules, built from the source lists of the rockspec (the one place they live) as
# plain Lua 5.1 modules: position-independent, no sanitizer (they load into a plain luajit),
# and no libluajit (the interpreter that loads them provides the Lua C API).
file(READ ${CMAKE_SOURCE_DIR}/rockspec/freshet-scm-1.rockspec FR_ROCKSPEC)
foreach(mod crypto native)
    string(REGEX MATCH "\\[\"freshet\\.${mod}\"\\][^}]*sources = {([^}]*)}" _ "${FR_ROCKSPEC}")
    string(REGEX MATCHALL "src/[^\"]+\\.c" FR_MOD_SRC "${CMAKE_MATCH_1}")
    if(NOT FR_MOD_SRC)
        message(FATAL_ERROR "rockspec: no sources for freshet.${mod}")
    endif()
    list(TRANSFORM FR_MOD_SRC PREPEND ${CMAKE_SOURCE_DIR}/)
    add_library(freshet_lua_${mod} MODULE ${FR_MOD_SRC})
    set_target_properties(freshet_lua_${mod} PROPERTIES
        PREFIX "" OUTPUT_NAME ${mod} LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/lua-c/freshet
        COMPILE_OPTIONS "${FR_WARNINGS}" LINK_OPTIONS "")
    target_include_directories(freshet_lua_${mod} PRIVATE ${CMAKE_SOURCE_DIR}/src ${LUAJIT_INCLUDE_DIRS})
    target_compile_definitions(freshet_lua_${mod} PRIVATE _GNU_SOURCE)
endforeach()
target_link_libraries(freshet_lua_crypto PRIVATE PkgConfig::CRYPTO)
target_link_libraries(freshet_lua_native PRIVATE Threads::Threads)

# Where luajit looks for C modules depends on the prefix, known only at install time (cpack and
# `cmake --install --prefix` change it): Debian's luajit searches /usr/lib/<multiarch>/lua/5.1
# and /usr/local/lib/lua/5.1. FRESHET_LUA_CMOD_DIR (absolute) overrides, for other systems.
set(FRESHET_LUA_CMOD_DIR "" CACHE PATH "Where to install the Lua C modules (default: by prefix)")
install(CODE "
    set(_dir \"${FRESHET_LUA_CMOD_DIR}\")
    if(NOT _dir)
        if(CMAKE_INSTALL_PREFIX STREQUAL \"/usr\" AND NOT \"${CMAKE_LIBRARY_ARCHITECTURE}\" STREQUAL \"\")
            set(_dir \"/usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/lua/5.1\")
        else()
            set(_dir \"\${CMAKE_INSTALL_PREFIX}/lib/lua/5.1\")
        endif()
    endif()
    file(INSTALL DESTINATION \"\${_dir}/freshet\" TYPE MODULE
         FILES \"$<TARGET_FILE:freshet_lua_crypto>\" \"$<TARGET_FILE:freshet_lua_native>\")
")

install(FILES ${CMAKE_SOURCE_DIR}/client/freshet.js ${CMAKE_BINARY_DIR}/client/freshet.mjs
              ${CMAKE_SOURCE_DIR}/client/index.d.ts ${CMAKE_SOURCE_DIR}/client/freshet.d.mts
        DESTINATION ${CMAKE_INSTALL_DATADIR}/freshet/client)

install(DIRECTORY ${CMAKE_SOURCE_DIR}/scripts/examples/
        DESTINATION ${CMAKE_INSTALL_DATADIR}/freshet/examples
        PATTERN "__pycache__" EXCLUDE)

install(FILES ${CMAKE_SOURCE_DIR}/dist/freshet.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)

# The unit names the binary by its installed path, which depends on the prefix given at install
# time: it is written then, into the build tree (a file per destination, so that concurrent
# installs to different places do not share one), and installed from there.
set(FRESHET_SYSTEMD_UNIT_DIR "lib/systemd/system" CACHE PATH "systemd unit directory, under the prefix")
install(CODE "
    set(FRESHET_BIN \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}/freshet\")
    string(MD5 _where \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}\")
    set(_unit \"${CMAKE_BINARY_DIR}/dist/\${_where}/freshet.service\")
    configure_file(\"${CMAKE_SOURCE_DIR}/dist/freshet.service.in\" \"\${_unit}\" @ONLY)
    file(INSTALL DESTINATION \"\${CMAKE_INSTALL_PREFIX}/${FRESHET_SYSTEMD_UNIT_DIR}\" TYPE FILE
         FILES \"\${_unit}\")
")

file(GLOB FR_DOCS ${CMAKE_SOURCE_DIR}/docs/*.md)
install(FILES ${CMAKE_SOURCE_DIR}/README.md ${CMAKE_SOURCE_DIR}/LICENSE ${FR_DOCS}
        DESTINATION ${CMAKE_INSTALL_DOCDIR})
# Where Debian's tools and users look for the license.
install(FILES ${CMAKE_SOURCE_DIR}/LICENSE DESTINATION ${CMAKE_INSTALL_DOCDIR} RENAME copyright)
