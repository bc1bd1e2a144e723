#include <criterion/criterion.h>
Test(vdi, placeholder) { cr_assert(1); }
