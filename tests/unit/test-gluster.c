#include <criterion/criterion.h>
Test(gluster_uri, placeholder) {}
