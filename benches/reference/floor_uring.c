/*
 * floor.c on io_uring: the same answers to benches/sipp/bench_signalling.xml,
 * but with 16 receives kept armed in one ring and the replies submitted as
 * sendmsg entries, so each wake-up is one io_uring_enter instead of
 * epoll_wait + recvmmsg + sendmmsg/sendto. An experiment (session 7, see
 * BENCHMARKS.md): on this host it costs 2.5 times floor.c's CPU per call,
 * which is why zentrale stays on epoll.
 *
 * Build: apt-get install -y liburing-dev; cc -O2 -o floor_uring floor_uring.c -luring
 * Usage: floor_uring PORT   (listens on 127.0.0.1:PORT until killed)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <liburing.h>

#define SLOTS 16

#include "floor_reply.h"

#define OUTS 64
int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: floor_uring PORT\n"); return 2; }
    snprintf(port_text, sizeof port_text, "%s", argv[1]);
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    if (bind(s, (struct sockaddr *)&addr, sizeof addr) != 0) { perror("bind"); return 1; }
    struct io_uring ring;
    if (io_uring_queue_init(256, &ring, 0) < 0) { perror("uring"); return 1; }
    static char in[SLOTS][65536], out[OUTS][2048];
    static struct msghdr msgs[SLOTS], omsg[OUTS];
    static struct iovec iov[SLOTS], oiov[OUTS];
    static struct sockaddr_in from[SLOTS], oto[OUTS];
    int onext = 0;
    for (int i = 0; i < SLOTS; i++) {
        iov[i] = (struct iovec){in[i], sizeof in[i] - 1};
        msgs[i] = (struct msghdr){.msg_name = &from[i], .msg_namelen = sizeof from[i], .msg_iov = &iov[i], .msg_iovlen = 1};
        struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
        io_uring_prep_recvmsg(sqe, s, &msgs[i], 0);
        io_uring_sqe_set_data64(sqe, i);
    }
    for (;;) {
        io_uring_submit_and_wait(&ring, 1);
        struct io_uring_cqe *cqe; unsigned head; int seen = 0;
        int done[SLOTS]; int nd = 0; int lens[SLOTS];
        io_uring_for_each_cqe(&ring, head, cqe) {
            seen++;
            unsigned long long d = io_uring_cqe_get_data64(cqe);
            if (d >= 1000) continue; /* send completion */
            lens[nd] = cqe->res; done[nd++] = (int)d;
        }
        io_uring_cq_advance(&ring, seen);
        for (int j = 0; j < nd; j++) {
            int i = done[j];
            if (lens[j] > 0) {
                char *msg = in[i];
                msg[lens[j]] = 0;
                int ks = 0, ke = 0;
                if (!strncmp(msg, "INVITE ", 7)) { ks = 0; ke = 2; }
                else if (!strncmp(msg, "BYE ", 4)) { ks = 2; ke = 3; }
                for (int k = ks; k < ke; k++) {
                    int o = onext++ % OUTS;
                    int len = reply(out[o], sizeof out[o], msg, k == 0 ? 100 : 200, k == 0 ? "Trying" : "OK");
                    oto[o] = from[i];
                    oiov[o] = (struct iovec){out[o], (size_t)len};
                    omsg[o] = (struct msghdr){.msg_name = &oto[o], .msg_namelen = sizeof oto[o], .msg_iov = &oiov[o], .msg_iovlen = 1};
                    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
                    io_uring_prep_sendmsg(sqe, s, &omsg[o], 0);
                    io_uring_sqe_set_data64(sqe, 1000 + o);
                }
            }
            msgs[i].msg_namelen = sizeof from[i];
            struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
            io_uring_prep_recvmsg(sqe, s, &msgs[i], 0);
            io_uring_sqe_set_data64(sqe, i);
        }
    }
}
