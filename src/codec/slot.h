/* Redis Cluster key slots: which of the 16384 slots a key belongs to. A cluster node owns
 * ranges of slots and refuses (MOVED) a command whose keys are not in one of its own, so a
 * client that routes by itself computes the slot the way Redis does:
 *
 *   slot = CRC16-XMODEM(tag) mod 16384
 *   tag  = the bytes between the key's first '{' and the first '}' after it, when there is at
 *          least one byte between them; otherwise the whole key
 *
 * "fr:{room:1}:s" and "fr:{room:1}:c" hash "room:1" alike; a topic holding '}' ("a}b") gives
 * "fr:{a}b}:s", whose tag is "a". Pure codec: no I/O, no allocation. */
#ifndef FR_CODEC_SLOT_H
#define FR_CODEC_SLOT_H

#include <stddef.h>
#include <stdint.h>

#define FR_SLOTS 16384

/* CRC16-XMODEM (polynomial 0x1021, initial 0), the checksum Redis Cluster uses. */
uint16_t fr_crc16(const char *buf, size_t len);

/* The slot of a key of len bytes (any bytes). */
unsigned fr_slot_of(const char *key, size_t len);

/* The slot of a topic's Stream (fr:{<topic>}:s): computed on the real key, so a topic holding
 * '{' or '}' gets the slot Redis gives its keys. Its channel and presence hash share that slot
 * unless the topic starts with '}' (the tag is then empty and Redis hashes each whole key). */
unsigned fr_slot_of_topic(const char *topic);

#endif
