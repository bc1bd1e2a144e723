#include <criterion/criterion.h>
Test(vpc, placeholder) { cr_assert(1); }
