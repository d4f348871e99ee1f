#ifndef TERN_CRC32C_H
#define TERN_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) of `length` bytes at `data`,
/// continuing from `crc` (0 to start; pass an earlier result to checksum data in pieces).
/// Uses the CPU's CRC32 instruction when it has one (x86-64 SSE 4.2, AArch64 CRC32), chosen
/// once at first use, and software slicing-by-8 otherwise.
uint32_t tern_crc32c(uint32_t crc, const void *data, size_t length);

/// The same checksum, always in software (slicing-by-8; Kounavis & Berry 2005).
uint32_t tern_crc32c_software(uint32_t crc, const void *data, size_t length);

/// Whether ``tern_crc32c`` uses a CPU instruction on this machine (1) or software (0).
int tern_crc32c_hardware(void);

#endif
