/* A SIP flood from one UDP socket, as fast as it can send: sendmmsg in
 * batches of 64 distinct requests (each with its own branch, Call-ID and
 * tag, so that no two are retransmissions of one another). Bounded in
 * time and count. Used by benches/flood.sh; loopback only.
 *
 *   flood SRC_IP DST_IP DST_PORT SECONDS MAX_COUNT options|invite|register
 *
 * Prints the number of datagrams sent and the rate. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: flood SRC_IP DST_IP DST_PORT SECONDS MAX_COUNT options|invite|register\n");
        return 2;
    }
    const char *src = argv[1], *dst = argv[2], *kind = argv[6];
    int port = atoi(argv[3]);
    double seconds = atof(argv[4]);
    long max = atol(argv[5]);
    if (strncmp(src, "127.", 4) != 0 || strncmp(dst, "127.", 4) != 0) {
        fprintf(stderr, "flood: loopback addresses only\n");
        return 2;
    }
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in la = {.sin_family = AF_INET}, ra = {.sin_family = AF_INET};
    inet_pton(AF_INET, src, &la.sin_addr);
    inet_pton(AF_INET, dst, &ra.sin_addr);
    ra.sin_port = htons(port);
    if (bind(s, (struct sockaddr *)&la, sizeof la) || connect(s, (struct sockaddr *)&ra, sizeof ra)) {
        perror("flood: bind/connect");
        return 1;
    }
    socklen_t len = sizeof la;
    getsockname(s, (struct sockaddr *)&la, &len);
    int lport = ntohs(la.sin_port);
    const char *method = strcmp(kind, "invite") == 0 ? "INVITE"
                         : strcmp(kind, "register") == 0 ? "REGISTER" : "OPTIONS";
    const char *ruri_user = strcmp(kind, "invite") == 0 ? "115@" : "";
    static char bufs[BATCH][1024];
    struct iovec iov[BATCH];
    struct mmsghdr msgs[BATCH];
    long sent = 0, n = 0;
    double start = now(), until = start + seconds;
    while (sent < max && now() < until) {
        int count = 0;
        for (; count < BATCH && sent + count < max; count++, n++) {
            int l = snprintf(bufs[count], sizeof bufs[count],
                "%s sip:%s%s:%d SIP/2.0\r\n"
                "Via: SIP/2.0/UDP %s:%d;branch=z9hG4bKflood%ld;rport\r\n"
                "Max-Forwards: 70\r\n"
                "From: <sip:flood@%s>;tag=f%ld\r\n"
                "To: <sip:%s%s>\r\n"
                "Call-ID: flood%ld@%s\r\n"
                "CSeq: 1 %s\r\n"
                "Contact: <sip:flood@%s:%d>\r\n"
                "Content-Length: 0\r\n\r\n",
                method, ruri_user, dst, port, src, lport, n, src, n, ruri_user, dst, n, src,
                method, src, lport);
            iov[count] = (struct iovec){bufs[count], (size_t)l};
            msgs[count] = (struct mmsghdr){.msg_hdr = {.msg_iov = &iov[count], .msg_iovlen = 1}};
        }
        int r = sendmmsg(s, msgs, count, 0);
        if (r > 0) sent += r;
        /* ECONNREFUSED from an earlier ICMP error, ENOBUFS: go on. */
    }
    double took = now() - start;
    printf("flood: %ld %s requests from %s in %.1f s (%.0f/s)\n", sent, method, src, took, sent / took);
    return 0;
}
