#!/bin/sh
# Print the library version from the public header's macros, so there is one source of truth.
h="$(dirname "$0")/../lib/include/shmcache/shmcache.h"
maj=$(sed -n 's/^#define SHMC_VERSION_MAJOR \([0-9]*\)/\1/p' "$h")
min=$(sed -n 's/^#define SHMC_VERSION_MINOR \([0-9]*\)/\1/p' "$h")
pat=$(sed -n 's/^#define SHMC_VERSION_PATCH \([0-9]*\)/\1/p' "$h")
echo "$maj.$min.$pat"
