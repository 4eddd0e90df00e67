/*
 * The kernel's floor for the signalling call: a UDP server that answers
 * benches/sipp/bench_signalling.xml with exactly the system calls zentrale
 * makes for it (epoll_wait, recvmmsg, one sendmmsg for the INVITE's 100 and
 * 200, one sendto for the BYE's 200) and next to no work of its own.
 * `benches/load.sh reference` builds it (cc -O2) and measures its CPU per
 * call beside Kamailio's: what is left of zentrale's CPU above this figure
 * is zentrale's own work. Not a SIP implementation: it copies the headers
 * SIPp needs and nothing else.
 *
 * Usage: floor PORT   (listens on 127.0.0.1:PORT until killed)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#define SLOTS 16

#include "floor_reply.h"

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: floor PORT\n"); return 2; }
    snprintf(port_text, sizeof port_text, "%s", argv[1]);
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    if (bind(s, (struct sockaddr *)&addr, sizeof addr) != 0) { perror("bind"); return 1; }
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET};
    epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);

    static char in[SLOTS][65536], out[2][2048];
    struct mmsghdr msgs[SLOTS], replies[2];
    struct iovec iov[SLOTS], reply_iov[2];
    struct sockaddr_in from[SLOTS];
    for (;;) {
        struct epoll_event ready;
        if (epoll_wait(ep, &ready, 1, -1) < 0) continue;
        for (;;) {
            for (int i = 0; i < SLOTS; i++) {
                iov[i] = (struct iovec){in[i], sizeof in[i] - 1};
                msgs[i] = (struct mmsghdr){.msg_hdr = {.msg_name = &from[i],
                    .msg_namelen = sizeof from[i], .msg_iov = &iov[i], .msg_iovlen = 1}};
            }
            int n = recvmmsg(s, msgs, SLOTS, MSG_DONTWAIT, NULL);
            if (n <= 0) break;
            for (int i = 0; i < n; i++) {
                char *msg = in[i];
                msg[msgs[i].msg_len] = 0;
                if (!strncmp(msg, "INVITE ", 7)) {
                    for (int k = 0; k < 2; k++) {
                        int len = reply(out[k], sizeof out[k], msg, k ? 200 : 100, k ? "OK" : "Trying");
                        reply_iov[k] = (struct iovec){out[k], (size_t)len};
                        replies[k] = (struct mmsghdr){.msg_hdr = {.msg_name = &from[i],
                            .msg_namelen = sizeof from[i], .msg_iov = &reply_iov[k], .msg_iovlen = 1}};
                    }
                    sendmmsg(s, replies, 2, 0);
                } else if (!strncmp(msg, "BYE ", 4)) {
                    int len = reply(out[0], sizeof out[0], msg, 200, "OK");
                    sendto(s, out[0], len, 0, (struct sockaddr *)&from[i], sizeof from[i]);
                }
            }
            if (n < SLOTS) break;
        }
    }
}
