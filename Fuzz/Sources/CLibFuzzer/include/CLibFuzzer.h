#ifndef CARTEIRA_CLIBFUZZER_H
#define CARTEIRA_CLIBFUZZER_H
#include <stddef.h>
#include <stdint.h>

/// libFuzzer's driver (compiler-rt, `-sanitize=fuzzer`): parses libFuzzer's
/// flags from argv and runs `callback` on each input. The targets call it
/// from their own `main` because SwiftPM gives every executable a `main`
/// of its own, which keeps libFuzzer's `main` out of the link.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
