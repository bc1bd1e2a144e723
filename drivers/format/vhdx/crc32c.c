/*
 * CRC-32C (Castagnoli, reflected polynomial 0x82f63b78) for VHDX headers,
 * region tables and log entries. Table-driven, one byte at a time; the
 * table is built on first use.
 */
#include "vhdx.h"

#include <pthread.h>

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_table_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t vhdx_crc32c(uint32_t crc, const void *buf, size_t len)
{
    const uint8_t *p = buf;

    pthread_once(&crc_once, crc_table_init);
    crc = ~crc;
    while (len--)
        crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

uint32_t vhdx_crc32c_skip(const void *buf, size_t len, size_t csum_off)
{
    static const uint8_t zero[4];
    const uint8_t *p = buf;
    uint32_t crc;

    crc = vhdx_crc32c(0, p, csum_off);
    crc = vhdx_crc32c(crc, zero, 4);
    return vhdx_crc32c(crc, p + csum_off + 4, len - csum_off - 4);
}
