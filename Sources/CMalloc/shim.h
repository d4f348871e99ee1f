// glibc's allocator statistics and trimming (mallinfo2, malloc_trim), which Swift's Glibc
// module does not import. Used by TernServer's MemoryTrimmer (decision 121).
#if defined(__linux__) && __has_include(<malloc.h>)
#include <malloc.h>
#endif
