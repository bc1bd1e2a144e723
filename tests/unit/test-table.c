/* core/table.c: reading and decoding tables of 32-bit entries. */
#include <criterion/criterion.h>
#include "memdrv.h"

static const uint8_t entries[8] = { 0x01, 0x02, 0x03, 0x04,
                                    0xff, 0xff, 0xff, 0xfe };

/* The two entries above, stored at off, read back in the given order. */
static void read_two_entries(uint64_t off, bool big_endian, uint32_t *t0,
                             uint32_t *t1)
{
    struct bd_node *n = mem_node(4096, 1, 0);
    struct mem_state *s = n->state;
    struct bd_err err = { 0 };
    uint32_t *t = NULL;

    memcpy(s->data + off, entries, sizeof(entries));
    cr_assert_eq(bd_read_u32_table(n, off, 2, big_endian, &t, "img", "map",
                                   &err), 0);
    *t0 = t[0];
    *t1 = t[1];
    free(t);
    mem_free(n);
}

Test(table, little_endian_entries_decode_to_native_order)
{
    uint32_t t0, t1;

    read_two_entries(512, false, &t0, &t1);
    cr_assert_eq(t0, 0x04030201u);
    cr_assert_eq(t1, 0xfeffffffu);
}

Test(table, big_endian_entries_decode_to_native_order)
{
    uint32_t t0, t1;

    read_two_entries(100, true, &t0, &t1);
    cr_assert_eq(t0, 0x01020304u);
    cr_assert_eq(t1, 0xfffffffeu);
}

Test(table, zero_entries_give_an_array_and_read_nothing)
{
    struct bd_node *n = mem_node(4096, 1, 0);
    struct mem_state *s = n->state;
    struct bd_err err = { 0 };
    uint32_t *t = NULL;

    cr_assert_eq(bd_read_u32_table(n, 4096, 0, false, &t, "img", "map", &err), 0);
    cr_assert_not_null(t);
    cr_assert_eq(s->nreq, 0);
    free(t);
    mem_free(n);
}

static int eio_pread(struct bd_node *n, void *buf, uint64_t len, uint64_t off)
{
    (void)n; (void)buf; (void)len; (void)off;
    return -EIO;
}

static const struct bd_driver eio_driver = {
    .name = "eio",
    .kind = BD_FORMAT,
    .state_size = sizeof(struct mem_state),
    .parallel = true,
    .open = mem_open,
    .limits = mem_limits,
    .size = mem_size,
    .pread = eio_pread,
};

Test(table, read_error_names_the_table_and_gives_nothing)
{
    struct bd_flags f = { 0 };
    struct bd_err err = { 0 };
    struct bd_node *n = bd_node_alloc(&eio_driver, "eio", &f, &err);
    struct mem_state *s = n->state;
    uint32_t *t = NULL;

    s->size = 4096;
    s->align = 1;
    bd_node_refresh_limits(n);
    cr_assert_eq(bd_read_u32_table(n, 0, 16, false, &t, "disk.vdi",
                                   "vdi block map", &err), -EIO);
    cr_assert_null(t);
    cr_assert_str_eq(err.msg, "disk.vdi: cannot read the vdi block map: "
                     "Input/output error");
    bd_node_close(n);
}

Test(table, huge_count_beyond_the_file_is_refused_before_allocating)
{
    struct bd_node *n = mem_node(4096, 1, 0);
    struct mem_state *s = n->state;
    struct bd_err err = { 0 };
    uint32_t *t = NULL;

    /* 16 GiB of entries in a 4 KiB file: refused without trying malloc */
    cr_assert_eq(bd_read_u32_table(n, 0, UINT32_MAX, false, &t, "img",
                                   "catalog", &err), -EINVAL);
    cr_assert_null(t);
    cr_assert_eq(s->nreq, 0);
    cr_assert_str_eq(err.msg, "img: the catalog (4294967295 entries at offset 0) "
                     "lies beyond the end of the file");
    /* and one entry past the end too */
    bd_err_clear(&err);
    cr_assert_eq(bd_read_u32_table(n, 4093, 1, false, &t, "img", "catalog",
                                   &err), -EINVAL);
    cr_assert_null(t);
    mem_free(n);
}
