/*
 * ADC (Apple Data Compression) decoder for dmg chunks of type 0x80000004:
 * a byte-oriented LZ77 with three opcodes. Written from the format's
 * description; it never reads or writes outside the given buffers.
 */
#include "dmg.h"

#include <string.h>

/*
 * Opcode byte b:
 *   1xxxxxxx            literal run of (b & 0x7f) + 1 bytes
 *   01xxxxxx hi lo      copy (b & 0x3f) + 4 bytes from distance (hi<<8|lo)+1
 *   00llllhh lo         copy ((b >> 2) & 0xf) + 3 bytes from (hh<<8|lo)+1
 * Copies may overlap their own output (distance < length), byte by byte.
 */
int dmg_adc_decode(const uint8_t *src, size_t src_len, uint8_t *dst,
                   size_t dst_len)
{
    size_t ip = 0, op = 0;

    while (ip < src_len && op < dst_len) {
        uint8_t b = src[ip++];
        size_t len, dist;

        if (b & 0x80) {
            len = (size_t)(b & 0x7f) + 1;
            if (len > src_len - ip || len > dst_len - op)
                return -EIO;
            memcpy(dst + op, src + ip, len);
            ip += len;
            op += len;
            continue;
        }
        if (b & 0x40) {
            if (src_len - ip < 2)
                return -EIO;
            len = (size_t)(b & 0x3f) + 4;
            dist = ((size_t)src[ip] << 8 | src[ip + 1]) + 1;
            ip += 2;
        } else {
            if (src_len - ip < 1)
                return -EIO;
            len = (size_t)((b >> 2) & 0x0f) + 3;
            dist = ((size_t)(b & 3) << 8 | src[ip]) + 1;
            ip += 1;
        }
        if (dist > op || len > dst_len - op)
            return -EIO;
        for (size_t i = 0; i < len; i++, op++)
            dst[op] = dst[op - dist];
    }
    return op == dst_len ? 0 : -EIO;
}
