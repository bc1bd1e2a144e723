/* placeholder */
#include "dmg.h"
int dmg_lzfse_decode(const uint8_t *src, size_t src_len, uint8_t *dst,
                     size_t dst_len)
{
    (void)src; (void)src_len; (void)dst; (void)dst_len;
    return -EIO;
}
