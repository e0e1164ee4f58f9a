# Writes the ES module form of the browser client from client/freshet.js: the same factory body
# without the script wrapper, the API as default and named exports. freshet.js stays the one
# source (the server serves it, CommonJS requires it); the build and `npm pack` (client/
# package.json, prepack) both make freshet.mjs with this script.
#
#   cmake -DIN=client/freshet.js -DOUT=freshet.mjs -P cmake/client_esm.cmake
if(NOT IN OR NOT OUT)
    message(FATAL_ERROR "usage: cmake -DIN=freshet.js -DOUT=freshet.mjs -P client_esm.cmake")
endif()
file(READ "${IN}" src)

# The wrapper: `(function (root, factory) {` … `})(<root>, function () {` <body> `});`
string(FIND "${src}" "\n(function (root, factory) {" open)
string(REGEX MATCH "\n}\\)\\([^\n]*, function \\(\\) {\n" opener "${src}")
string(FIND "${src}" "\n});" close REVERSE)
if(open LESS 0 OR NOT opener OR close LESS 0)
    message(FATAL_ERROR "${IN}: the script wrapper is not where client_esm.cmake expects it")
endif()
string(FIND "${src}" "${opener}" body_at)
string(LENGTH "${opener}" opener_len)
math(EXPR body_at "${body_at} + ${opener_len}")
math(EXPR body_len "${close} + 1 - ${body_at}")
string(SUBSTRING "${src}" 0 ${open} header)
string(SUBSTRING "${src}" ${body_at} ${body_len} body)

file(WRITE "${OUT}" "// Generated from freshet.js by cmake/client_esm.cmake: edit freshet.js.\n"
    "${header}\nconst freshet = (function () {\n${body}})();\n\n"
    "export default freshet;\n"
    "export const { version, connect, Connection, states } = freshet;\n")
