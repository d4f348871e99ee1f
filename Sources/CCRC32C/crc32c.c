// CRC-32C for Tern's record, frame and command checksums. Hardware paths: Intel's SSE 4.2
// CRC32 instruction (Intel SDM vol. 2A, "CRC32") and ARMv8's CRC32C* instructions; software:
// slicing-by-8 (Kounavis & Berry, "A Systematic Approach to Building High Performance
// Software-based CRC Generators", 2005).
#include "tern_crc32c.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#elif defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_CRC32
#define HWCAP_CRC32 (1 << 7)
#endif
#endif

static uint32_t table[8][256];

static void build_table(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t crc = i;
        for (int bit = 0; bit < 8; bit++) crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
        table[0][i] = crc;
    }
    for (uint32_t i = 0; i < 256; i++) {
        for (int t = 1; t < 8; t++) table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xFF];
    }
}

static uint32_t software(uint32_t crc, const unsigned char *p, size_t n) {
    crc = ~crc;
    while (n >= 8) {
        uint32_t low, high;
        memcpy(&low, p, 4);
        memcpy(&high, p + 4, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        low = __builtin_bswap32(low);
        high = __builtin_bswap32(high);
#endif
        low ^= crc;
        crc = table[7][low & 0xFF] ^ table[6][(low >> 8) & 0xFF] ^ table[5][(low >> 16) & 0xFF] ^ table[4][low >> 24]
            ^ table[3][high & 0xFF] ^ table[2][(high >> 8) & 0xFF] ^ table[1][(high >> 16) & 0xFF] ^ table[0][high >> 24];
        p += 8;
        n -= 8;
    }
    while (n--) crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xFF];
    return ~crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static uint32_t hardware(uint32_t crc, const unsigned char *p, size_t n) {
    uint64_t c = ~crc;
    while (n >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        c = __builtin_ia32_crc32di(c, word);
        p += 8;
        n -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (n--) c32 = __builtin_ia32_crc32qi(c32, *p++);
    return ~c32;
}

static int cpu_has_crc(void) {
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    return (ecx & bit_SSE4_2) != 0;
}
#elif defined(__aarch64__) && defined(__linux__)
__attribute__((target("crc")))
static uint32_t hardware(uint32_t crc, const unsigned char *p, size_t n) {
    uint32_t c = ~crc;
    while (n >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        c = __builtin_arm_crc32cd(c, word);
        p += 8;
        n -= 8;
    }
    while (n--) c = __builtin_arm_crc32cb(c, *p++);
    return ~c;
}

static int cpu_has_crc(void) { return (getauxval(AT_HWCAP) & HWCAP_CRC32) != 0; }
#else
static uint32_t hardware(uint32_t crc, const unsigned char *p, size_t n) { return software(crc, p, n); }
static int cpu_has_crc(void) { return 0; }
#endif

// Decided once, before any checksum: the table is built and the CPU asked (POSIX pthread_once).
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int use_hardware;

static void initialize(void) {
    build_table();
    use_hardware = cpu_has_crc();
}

static int decide(void) {
    pthread_once(&once, initialize);
    return use_hardware ? 2 : 1;
}

uint32_t tern_crc32c(uint32_t crc, const void *data, size_t length) {
    return decide() == 2 ? hardware(crc, data, length) : software(crc, data, length);
}

uint32_t tern_crc32c_software(uint32_t crc, const void *data, size_t length) {
    decide();
    return software(crc, data, length);
}

int tern_crc32c_hardware(void) { return decide() == 2; }
