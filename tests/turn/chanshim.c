/* LD_PRELOAD for turnutils_uclient: it draws ChannelBind numbers as 0x4000 + turn_random() % 0x4000
   (RFC 5766's 0x4000-0x7FFF). Clearing bits 12-13 of every random value keeps the pick inside RFC
   8656's 0x4000-0x4FFF. coturn's turn_random() is random() or RAND_bytes(8 bytes): cover both. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <string.h>
long random(void) {
    static long (*real)(void);
    if (!real) real = (long (*)(void))dlsym(RTLD_NEXT, "random");
    return real() & ~0x3000L;
}
int RAND_bytes(unsigned char *buf, int num) {
    static int (*real)(unsigned char *, int);
    if (!real) real = (int (*)(unsigned char *, int))dlsym(RTLD_NEXT, "RAND_bytes");
    int rc = real(buf, num);
    if (num == (int)sizeof(long)) { long v; memcpy(&v, buf, sizeof v); v &= ~0x3000L; memcpy(buf, &v, sizeof v); }
    return rc;
}
