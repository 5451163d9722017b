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

/* uclient opens one extra allocation per call and closes its socket without deleting it (no Refresh 0),
   so the server keeps that 5-tuple for the allocation's lifetime. The kernel's random ephemeral ports
   soon hand a new socket one of those ports: its Allocate gets 437 (RFC 8656 §7.2: the 5-tuple is
   taken), uclient retries forever, and the run hangs (from ~900 calls on, with coturn and Parley alike).
   Real clients have distinct addresses; here every UDP socket uclient connects is first bound to a port
   never used before in this process (counting up, wrapping within 10000-48999, from a start that depends
   on the pid so that uclients running side by side do not walk the same ports), so 5-tuples are not
   reused. */
#include <errno.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>
int connect(int fd, const struct sockaddr *to, socklen_t len) {
    static int (*real)(int, const struct sockaddr *, socklen_t);
    static unsigned next = 0;
    if (!real) real = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "connect");
    int type = 0;
    socklen_t tl = sizeof type;
    struct sockaddr_storage me;
    socklen_t ml = sizeof me;
    if (to && (to->sa_family == AF_INET || to->sa_family == AF_INET6)
        && getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 && type == SOCK_DGRAM
        && getsockname(fd, (struct sockaddr *)&me, &ml) == 0
        && ((me.ss_family == AF_INET && ((struct sockaddr_in *)&me)->sin_port == 0)
            || (me.ss_family == AF_INET6 && ((struct sockaddr_in6 *)&me)->sin6_port == 0))) {
        if (next == 0) next = 10000 + ((unsigned)getpid() * 7919u) % 39000u;
        for (int tries = 0; tries < 39000; tries++) {
            if (next >= 49000) next = 10000;
            unsigned short port = htons((unsigned short)next++);
            if (me.ss_family == AF_INET) ((struct sockaddr_in *)&me)->sin_port = port;
            else ((struct sockaddr_in6 *)&me)->sin6_port = port;
            if (bind(fd, (struct sockaddr *)&me, ml) == 0 || errno != EADDRINUSE) break;
        }
    }
    return real(fd, to, len);
}
