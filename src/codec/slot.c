#include "codec/slot.h"

#include <string.h>

/* One table lookup per byte: the table is CRC16-XMODEM of every byte value. */
static uint16_t crc_table[256];
static int crc_ready;

static void crc_init(void) {
    for (unsigned b = 0; b < 256; b++) {
        uint16_t c = (uint16_t)(b << 8);
        for (int i = 0; i < 8; i++)
            c = (uint16_t)(c & 0x8000 ? (c << 1) ^ 0x1021 : c << 1);
        crc_table[b] = c;
    }
    /* Benign if two threads race here: both write the same values. */
    __atomic_store_n(&crc_ready, 1, __ATOMIC_RELEASE);
}

static uint16_t crc_update(uint16_t crc, const char *buf, size_t len) {
    if (!__atomic_load_n(&crc_ready, __ATOMIC_ACQUIRE))
        crc_init();
    for (size_t i = 0; i < len; i++)
        crc = (uint16_t)((crc << 8) ^ crc_table[((crc >> 8) ^ (unsigned char)buf[i]) & 0xff]);
    return crc;
}

uint16_t fr_crc16(const char *buf, size_t len) {
    return crc_update(0, buf, len);
}

unsigned fr_slot_of(const char *key, size_t len) {
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t rest = len - (size_t)(open + 1 - key);
        const char *close = memchr(open + 1, '}', rest);
        if (close && close > open + 1)
            return fr_crc16(open + 1, (size_t)(close - open - 1)) & (FR_SLOTS - 1);
    }
    return fr_crc16(key, len) & (FR_SLOTS - 1);
}

unsigned fr_slot_of_topic(const char *topic) {
    /* "fr:{" opens the tag; it closes at the topic's first '}' or at the "}:s" after it. A
     * topic starting with '}' (or an empty one) leaves the tag empty, and Redis then hashes
     * the whole key: its Stream and its channel are then in different slots. */
    size_t tlen = strlen(topic);
    if (tlen == 0 || topic[0] == '}') {
        uint16_t crc = crc_update(0, "fr:{", 4);
        crc = crc_update(crc, topic, tlen);
        return crc_update(crc, "}:s", 3) & (FR_SLOTS - 1);
    }
    const char *close = memchr(topic, '}', tlen);
    return fr_crc16(topic, close ? (size_t)(close - topic) : tlen) & (FR_SLOTS - 1);
}
