/*
 * udpecho.c - minimal UDP echo server, recvmmsg/sendmmsg, one thread, one socket.
 *
 * The loopback ceiling for scripts/bench-stun.sh: measured with `stunload -M echo`, it shows what
 * this machine's kernel can turn around per second when the server does no work at all.
 *
 *   gcc -O2 -Wall -o udpecho benchmarks/udpecho.c
 *   ./udpecho [-p PORT] [-b BATCH] [IP]     (defaults: port 0 = kernel's choice, batch 64, 127.0.0.1)
 *
 * Prints "port=N" on stdout (flushed) once bound, then echoes every datagram back to its sender
 * until killed. Only loopback addresses are accepted.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXB 256
#define MAXPKT 2048

static unsigned char bufs[MAXB][MAXPKT];
static struct sockaddr_in addrs[MAXB];
static struct iovec iov[MAXB];
static struct mmsghdr in[MAXB], out[MAXB];

int main(int argc, char **argv) {
    int port = 0, batch = 64, c;
    while ((c = getopt(argc, argv, "p:b:")) != -1) {
        switch (c) {
        case 'p': port = atoi(optarg); break;
        case 'b': batch = atoi(optarg); break;
        default: fprintf(stderr, "usage: udpecho [-p PORT] [-b BATCH] [IP]\n"); return 2;
        }
    }
    if (batch < 1) batch = 1;
    if (batch > MAXB) batch = MAXB;
    const char *ip = optind < argc ? argv[optind] : "127.0.0.1";

    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1 || (ntohl(sa.sin_addr.s_addr) >> 24) != 127) {
        fprintf(stderr, "udpecho: %s is not an IPv4 loopback address\n", ip);
        return 2;
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) { perror("socket"); return 1; }
    int sz = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) { perror("bind"); return 1; }
    socklen_t sl = sizeof sa;
    if (getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) { perror("getsockname"); return 1; }
    printf("port=%d\n", ntohs(sa.sin_port));
    fflush(stdout);

    for (int i = 0; i < batch; i++) {
        iov[i].iov_base = bufs[i];
        iov[i].iov_len = MAXPKT;
        in[i].msg_hdr.msg_name = &addrs[i];
        in[i].msg_hdr.msg_iov = &iov[i];
        in[i].msg_hdr.msg_iovlen = 1;
    }
    for (;;) {
        for (int i = 0; i < batch; i++) in[i].msg_hdr.msg_namelen = sizeof addrs[i];
        /* blocks for the first datagram, then takes whatever else is queued (up to batch) */
        int n = recvmmsg(fd, in, (unsigned)batch, MSG_WAITFORONE, NULL);
        if (n < 0) {
            if (errno == EINTR || errno == ECONNREFUSED) continue;
            perror("recvmmsg");
            return 1;
        }
        /* echo: same buffers, lengths as received, back to each sender */
        static struct iovec oiov[MAXB];
        for (int i = 0; i < n; i++) {
            oiov[i].iov_base = bufs[i];
            oiov[i].iov_len = in[i].msg_len;
            memset(&out[i], 0, sizeof out[i]);
            out[i].msg_hdr.msg_name = &addrs[i];
            out[i].msg_hdr.msg_namelen = in[i].msg_hdr.msg_namelen;
            out[i].msg_hdr.msg_iov = &oiov[i];
            out[i].msg_hdr.msg_iovlen = 1;
        }
        int done = 0;
        while (done < n) {
            int r = sendmmsg(fd, out + done, (unsigned)(n - done), 0);
            if (r < 0) {
                if (errno == EINTR) continue;
                if (errno == ECONNREFUSED || errno == EAGAIN || errno == ENOBUFS) { done++; continue; } /* drop one */
                perror("sendmmsg");
                return 1;
            }
            done += r;
        }
    }
}
