# Writes a C file holding one file as a byte array: const char NAME[] and size_t NAME_len.
file(READ ${IN} hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
file(WRITE ${OUT}.tmp "/* Generated from ${IN} by cmake/embed_file.cmake. */\n#include <stddef.h>\nconst char ${NAME}[] = {${hex} 0};\nconst size_t ${NAME}_len = sizeof ${NAME} - 1;\n")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
