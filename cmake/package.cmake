# The Debian package: `cpack -G DEB` in a build directory gives freshet_<version>_<arch>.deb with
# everything `cmake --install` puts in place, under /usr. Its library dependencies come from
# dpkg-shlibdeps (dpkg-dev, part of build-essential).
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME freshet)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "the freshet authors")
set(CPACK_PACKAGE_CONTACT "the freshet authors")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "streaming server (SSE, WebSocket, long-polling) scripted in Lua")
set(CPACK_PACKAGE_DESCRIPTION "freshet serves Server-Sent Events, WebSocket and long-polling from \
the same topics, with replay when a client reconnects, on one machine or many through Redis. \
Small Lua scripts per route decide who may connect and which events each stream sees.")
set(CPACK_RESOURCE_FILE_LICENSE ${CMAKE_SOURCE_DIR}/LICENSE)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# The Lua modules in share/lua/5.1 are for a plain luajit; cjson is built into the server.
# freshet.http.request checks https:// backends against the system's CAs.
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "luajit, lua-cjson, ca-certificates")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
