/*
 * The C reference UDP echo server for benches/peers/udp_compare.sh: one thread, one
 * socket, recvmmsg/sendmmsg in batches of up to 64 datagrams.
 *
 * Each turn blocks in recvmmsg (MSG_WAITFORONE: at least one datagram, then whatever
 * else is already queued, up to the batch), then sends the whole batch back to the
 * senders with sendmmsg. No allocation after start-up.
 *
 *   gcc -O2 -Wall -o mmsg_udp_echo benches/peers/mmsg_udp_echo.c
 *   ./mmsg_udp_echo PORT
 */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64
#define DGRAM 65536

static char bufs[BATCH][DGRAM];
static struct sockaddr_storage names[BATCH];
static struct iovec iovs[BATCH];
static struct mmsghdr msgs[BATCH];

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: mmsg_udp_echo PORT\n");
        return 2;
    }
    int port = atoi(argv[1]);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
        perror("socket");
        return 1;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        perror("bind");
        return 1;
    }
    fprintf(stderr, "mmsg_udp_echo: listening on udp:127.0.0.1:%d\n", port);
    for (;;) {
        for (int i = 0; i < BATCH; i++) {
            iovs[i].iov_base = bufs[i];
            iovs[i].iov_len = DGRAM;
            memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
            msgs[i].msg_hdr.msg_name = &names[i];
            msgs[i].msg_hdr.msg_namelen = sizeof names[i];
            msgs[i].msg_hdr.msg_iov = &iovs[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        int n = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
        if (n <= 0)
            continue;
        for (int i = 0; i < n; i++)
            iovs[i].iov_len = msgs[i].msg_len; /* echo exactly what came in */
        int sent = 0;
        while (sent < n) {
            int k = sendmmsg(fd, msgs + sent, n - sent, 0);
            if (k <= 0)
                break; /* dropped, as a full socket buffer would */
            sent += k;
        }
    }
}
