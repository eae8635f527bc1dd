#ifndef FICUS_FUZZ_DRIVER_H
#define FICUS_FUZZ_DRIVER_H

#include <stddef.h>
#include <stdint.h>

/// Runs libFuzzer's driver (argument parsing, corpus, mutation loop) with `test` as the target.
int ficus_fuzz_run(int argc, char **argv, int (*test)(const uint8_t *data, size_t size));

#endif
