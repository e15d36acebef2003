#ifndef CARTEIRA_CHAIN_HASH_SHIM_H
#define CARTEIRA_CHAIN_HASH_SHIM_H
/* The journal's hash chain (JOURNAL.md, Lines) on OpenSSL's libcrypto:
   SHA-256 of the previous line's 64 hex digits, one space and this line's
   text. The context lives on the stack, so a line costs no allocation
   (swift-crypto's SHA256 allocates a context per hasher, which was most of
   replay's hashing time: docs/benchmarks.md). libcrypto picks the SHA-NI
   code path where the processor has it. Nothing hashed here is secret (the
   journal is for auditors to read), so the context is not wiped. */
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/sha.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The 32-byte digest of previous (64 bytes) + " " + text. */
static inline void carteira_chain_digest(const uint8_t *previous, const uint8_t *text, size_t count,
                                         uint8_t digest[32]) {
    SHA256_CTX context;
    SHA256_Init(&context);
    SHA256_Update(&context, previous, 64);
    SHA256_Update(&context, " ", 1);
    SHA256_Update(&context, text, count);
    SHA256_Final(digest, &context);
}

/* Writes the chain hash of text after previous as 64 lower-case hex digits. */
static inline void carteira_chain_hash_hex(const uint8_t *previous, const uint8_t *text, size_t count,
                                           uint8_t hex[64]) {
    static const char digits[16] = "0123456789abcdef";
    uint8_t digest[32];
    carteira_chain_digest(previous, text, count, digest);
    for (int index = 0; index < 32; index++) {
        hex[2 * index] = (uint8_t)digits[digest[index] >> 4];
        hex[2 * index + 1] = (uint8_t)digits[digest[index] & 0x0F];
    }
}

/* 1 when expected (64 bytes) is the chain hash of text after previous, as
   lower-case hex; 0 otherwise. */
static inline int carteira_chain_hash_matches(const uint8_t *previous, const uint8_t *text, size_t count,
                                              const uint8_t *expected) {
    uint8_t hex[64];
    carteira_chain_hash_hex(previous, text, count, hex);
    return memcmp(hex, expected, 64) == 0;
}
#endif
