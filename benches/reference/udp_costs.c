/*
 * What one RTP packet costs the kernel on this host: 1,000 UDP sockets on
 * loopback, each sends one 172-byte packet to a sink and receives one,
 * 200 rounds; prints CPU time (getrusage) per send and per receive.
 *   mode 0: sendto + recvfrom, one system call per packet
 *   mode 1: the same as sendmsg/recvmsg entries of one io_uring, one
 *           io_uring_enter per 1,000 packets
 *   mode 2: sockets connected to the sink, send + recvfrom
 * Session 7 (BENCHMARKS.md): the send is the cost (about 4 us, most of it
 * the loopback delivery, not the system call), io_uring does not make it
 * cheaper, a connected socket saves about a fifth.
 *
 * Build: apt-get install -y liburing-dev; cc -O2 -o udp_costs udp_costs.c -luring
 * Usage: ulimit -n 4096; ./udp_costs 0; ./udp_costs 2; ./udp_costs 1
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <liburing.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#define N 1000
#define ROUNDS 200
static double cpu(void) { struct rusage r; getrusage(RUSAGE_SELF, &r);
  return r.ru_utime.tv_sec * 1e6 + r.ru_utime.tv_usec + r.ru_stime.tv_sec * 1e6 + r.ru_stime.tv_usec; }
int main(int argc, char **argv) {
  if (argc != 2) { fprintf(stderr, "usage: udp_costs 0|1|2\n"); return 2; }
  int mode = atoi(argv[1]);
  int s[N]; struct sockaddr_in a[N];
  int sink = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET}; inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  bind(sink, (void *)&sa, sizeof sa); socklen_t l = sizeof sa; getsockname(sink, (void *)&sa, &l);
  int big = 8 << 20; setsockopt(sink, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  for (int i = 0; i < N; i++) {
    s[i] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    a[i] = (struct sockaddr_in){.sin_family = AF_INET}; inet_pton(AF_INET, "127.0.0.1", &a[i].sin_addr);
    bind(s[i], (void *)&a[i], sizeof a[i]); l = sizeof a[i]; getsockname(s[i], (void *)&a[i], &l);
  }
  if (mode == 2) for (int i = 0; i < N; i++) connect(s[i], (void *)&sa, sizeof sa);
  struct io_uring ring; io_uring_queue_init(4096, &ring, 0);
  static char pkt[172], in[N][2048]; static struct msghdr m[N]; static struct iovec iv[N];
  static struct sockaddr_in from[N];
  double tsend = 0, trecv = 0;
  for (int r = 0; r < ROUNDS; r++) {
    double t0 = cpu();
    if (mode == 2) {
      for (int i = 0; i < N; i++) send(s[i], pkt, sizeof pkt, 0);
    } else if (mode == 0) {
      for (int i = 0; i < N; i++) sendto(s[i], pkt, sizeof pkt, 0, (void *)&sa, sizeof sa);
    } else {
      for (int i = 0; i < N; i++) {
        iv[i] = (struct iovec){pkt, sizeof pkt};
        m[i] = (struct msghdr){.msg_name = &sa, .msg_namelen = sizeof sa, .msg_iov = &iv[i], .msg_iovlen = 1};
        io_uring_prep_sendmsg(io_uring_get_sqe(&ring), s[i], &m[i], 0);
      }
      io_uring_submit_and_wait(&ring, N);
      struct io_uring_cqe *c; unsigned h; int k = 0; io_uring_for_each_cqe(&ring, h, c) k++; io_uring_cq_advance(&ring, k);
    }
    double t1 = cpu(); tsend += t1 - t0;
    /* drain sink (not timed), then sink sends one packet to each socket */
    char buf[2048]; while (recv(sink, buf, sizeof buf, 0) > 0) {}
    for (int i = 0; i < N; i++) sendto(sink, pkt, sizeof pkt, 0, (void *)&a[i], sizeof a[i]);
    t0 = cpu();
    if (mode != 1) {
      for (int i = 0; i < N; i++) { socklen_t fl = sizeof from[i]; recvfrom(s[i], in[i], 2048, 0, (void *)&from[i], &fl); }
    } else {
      for (int i = 0; i < N; i++) {
        iv[i] = (struct iovec){in[i], 2048};
        m[i] = (struct msghdr){.msg_name = &from[i], .msg_namelen = sizeof from[i], .msg_iov = &iv[i], .msg_iovlen = 1};
        struct io_uring_sqe *q = io_uring_get_sqe(&ring); io_uring_prep_recvmsg(q, s[i], &m[i], MSG_DONTWAIT);
      }
      io_uring_submit_and_wait(&ring, N);
      struct io_uring_cqe *c; unsigned h; int k = 0, ok = 0; io_uring_for_each_cqe(&ring, h, c) { k++; ok += c->res > 0; } io_uring_cq_advance(&ring, k);
      if (r == 0) fprintf(stderr, "recv ok %d/%d\n", ok, k);
    }
    trecv += cpu() - t0;
  }
  printf("mode %s: send %.2f us, recv %.2f us per packet\n", mode == 1 ? "io_uring" : mode == 2 ? "connected" : "syscalls", tsend / ROUNDS / N, trecv / ROUNDS / N);
}
