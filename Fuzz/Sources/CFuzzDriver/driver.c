// SwiftPM links an executable's main under a module-specific name (`<module>_main`, aliased to `main` at link time),
// so libFuzzer's own `main` is never linked in and `-parse-as-library` leaves nothing for that alias to point to.
// Each fuzz executable therefore keeps a top-level main that hands control to libFuzzer's documented entry point,
// LLVMFuzzerRunDriver, which behaves exactly as libFuzzer's main does.
#include "CFuzzDriver.h"

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

int ficus_fuzz_run(int argc, char **argv, int (*test)(const uint8_t *data, size_t size)) {
    return LLVMFuzzerRunDriver(&argc, &argv, test);
}
