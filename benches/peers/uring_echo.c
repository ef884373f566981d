/*
 * uring_echo: the C liburing reference echo server for benches/peers/compare.sh.
 *
 * What a careful C programmer writes on io_uring today, on one core, so that weft's
 * efficiency has a floor to be measured against (issue 10, "Performance"):
 *
 *   - one ring, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN (task work runs
 *     only when this thread waits for completions: no interrupts, no IPIs);
 *   - one multishot accept on the listener;
 *   - per connection one multishot recv that picks its buffer from a provided buffer
 *     ring (IOSQE_BUFFER_SELECT): no buffer per connection, none pinned while idle;
 *   - the received buffer itself is sent back (no copy); the buffer goes back to the
 *     ring when its send completes. Sends on one connection are queued and issued one
 *     at a time, so that a send the kernel parks cannot be overtaken by a later one.
 *
 * It echoes raw bytes (no framing), listens on 127.0.0.1, sets TCP_NODELAY like the other
 * peers, and runs until killed. Built by compare.sh with
 *
 *     gcc -O2 -o uring_echo benches/peers/uring_echo.c -luring
 *
 * (Debian's liburing-dev, 2.3 or later; kernel 6.1 or later for DEFER_TASKRUN).
 *
 * usage: uring_echo PORT [CORE]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define RING_ENTRIES 4096
#define BUF_GROUP 7
#define BUF_COUNT 4096 /* a power of two, as the buffer ring requires */
#define BUF_SIZE 16384 /* one 4 KiB request fits, with room for a pipelined burst */
#define MAX_FDS 65536
#define NO_BUF 0xffff

/* What a completion is for: the operation in the top byte of user_data, then the
 * buffer id (sends) and the file descriptor. */
enum op { OP_ACCEPT = 1, OP_RECV = 2, OP_SEND = 3 };

static uint64_t tag(enum op op, uint32_t bid, int fd)
{
    return ((uint64_t)op << 56) | ((uint64_t)bid << 32) | (uint32_t)fd;
}
static enum op tag_op(uint64_t t) { return (enum op)(t >> 56); }
static uint32_t tag_bid(uint64_t t) { return (uint32_t)(t >> 32) & 0xffff; }
static int tag_fd(uint64_t t) { return (int)(uint32_t)t; }

/* A received buffer waiting for (or in) its send: bytes [off, len) still to go. */
struct pending {
    uint32_t len, off;
    uint16_t next; /* the next buffer queued on the same connection, or NO_BUF */
};

/* A connection: its queue of buffers to send back, oldest first. */
struct conn {
    uint16_t head, tail;
    uint8_t open;      /* the fd is ours */
    uint8_t sending;   /* the head's send is submitted */
    uint8_t recv_gone; /* its multishot recv ended (EOF or error): close once drained */
    uint8_t starved;   /* its recv stopped for lack of buffers: re-arm when one returns */
};

static struct io_uring ring;
static struct io_uring_buf_ring *br;
static unsigned char *bufs;
static struct pending pend[BUF_COUNT];
static struct conn *conns;
static int starved_count;

static struct io_uring_sqe *sqe_get(void)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    if (!sqe) {
        /* The submission queue is full: hand it to the kernel and take a fresh one. */
        io_uring_submit(&ring);
        sqe = io_uring_get_sqe(&ring);
    }
    if (!sqe) {
        fprintf(stderr, "uring_echo: no submission queue entry\n");
        exit(1);
    }
    return sqe;
}

static void arm_accept(int lfd)
{
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, 0);
    io_uring_sqe_set_data64(sqe, tag(OP_ACCEPT, 0, lfd));
}

static void arm_recv(int fd)
{
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BUF_GROUP;
    io_uring_sqe_set_data64(sqe, tag(OP_RECV, 0, fd));
}

static void submit_send(int fd, uint16_t bid)
{
    struct pending *p = &pend[bid];
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_send(sqe, fd, bufs + (size_t)bid * BUF_SIZE + p->off, p->len - p->off,
                       MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, tag(OP_SEND, bid, fd));
    conns[fd].sending = 1;
}

static void give_back(uint16_t bid)
{
    io_uring_buf_ring_add(br, bufs + (size_t)bid * BUF_SIZE, BUF_SIZE, bid,
                          io_uring_buf_ring_mask(BUF_COUNT), 0);
    io_uring_buf_ring_advance(br, 1);
}

/* Closes a connection whose recv has ended and whose queue is empty. */
static void maybe_close(int fd)
{
    struct conn *c = &conns[fd];
    if (c->open && c->recv_gone && c->head == NO_BUF) {
        close(fd);
        memset(c, 0, sizeof *c);
        c->head = c->tail = NO_BUF;
    }
}

/* Drops every buffer queued on a connection (its peer is gone). */
static void drop_queue(int fd)
{
    struct conn *c = &conns[fd];
    while (c->head != NO_BUF) {
        uint16_t bid = c->head;
        c->head = pend[bid].next;
        give_back(bid);
    }
    c->tail = NO_BUF;
    c->sending = 0;
}

static void on_accept(int lfd, struct io_uring_cqe *cqe)
{
    if (!(cqe->flags & IORING_CQE_F_MORE))
        arm_accept(lfd);
    if (cqe->res < 0) {
        fprintf(stderr, "uring_echo: accept: %s\n", strerror(-cqe->res));
        return;
    }
    int fd = cqe->res;
    if (fd >= MAX_FDS) {
        close(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct conn *c = &conns[fd];
    memset(c, 0, sizeof *c);
    c->head = c->tail = NO_BUF;
    c->open = 1;
    arm_recv(fd);
}

static void on_recv(int fd, struct io_uring_cqe *cqe)
{
    struct conn *c = &conns[fd];
    int more = cqe->flags & IORING_CQE_F_MORE;
    if (cqe->res == -ENOBUFS && !more) {
        /* The provided buffers ran dry; this recv is over. Re-arm once a send returns one. */
        if (!c->starved) {
            c->starved = 1;
            starved_count++;
        }
        return;
    }
    if (cqe->res <= 0) {
        /* EOF or an error: the peer is done; close once what it sent is echoed. */
        if (!more) {
            c->recv_gone = 1;
            maybe_close(fd); /* else the last send completion closes it */
        }
        return;
    }
    uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
    pend[bid] = (struct pending){.len = (uint32_t)cqe->res, .off = 0, .next = NO_BUF};
    if (c->head == NO_BUF) {
        c->head = c->tail = bid;
        submit_send(fd, bid);
    } else {
        pend[c->tail].next = bid;
        c->tail = bid;
    }
    if (!more)
        arm_recv(fd); /* the kernel ended the multishot (e.g. a full CQ): start another */
}

static void on_send(int fd, uint16_t bid, struct io_uring_cqe *cqe)
{
    struct conn *c = &conns[fd];
    struct pending *p = &pend[bid];
    c->sending = 0;
    if (cqe->res < 0) {
        /* The peer is gone (EPIPE, ECONNRESET): drop what is queued and close. */
        drop_queue(fd);
        if (c->recv_gone)
            maybe_close(fd);
        else
            shutdown(fd, SHUT_RDWR); /* ends the multishot recv, whose end closes the fd */
        return;
    }
    p->off += (uint32_t)cqe->res;
    if (p->off < p->len) {
        submit_send(fd, bid); /* a short send: the rest of the same buffer */
        return;
    }
    c->head = p->next;
    if (c->head == NO_BUF)
        c->tail = NO_BUF;
    give_back(bid);
    if (c->head != NO_BUF)
        submit_send(fd, c->head);
    else
        maybe_close(fd);
    if (starved_count) {
        for (int i = 0; i < MAX_FDS && starved_count; i++) {
            if (conns[i].starved) {
                conns[i].starved = 0;
                starved_count--;
                arm_recv(i);
            }
        }
    }
}

static int listen_on(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        perror("uring_echo: socket");
        exit(1);
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 4096) < 0) {
        fprintf(stderr, "uring_echo: cannot listen on 127.0.0.1:%d: %s\n", port, strerror(errno));
        exit(1);
    }
    return fd;
}

static void setup_buffers(void)
{
    size_t ring_bytes = BUF_COUNT * sizeof(struct io_uring_buf);
    br = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    bufs = mmap(NULL, (size_t)BUF_COUNT * BUF_SIZE, PROT_READ | PROT_WRITE,
                MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (br == MAP_FAILED || bufs == MAP_FAILED) {
        perror("uring_echo: mmap");
        exit(1);
    }
    struct io_uring_buf_reg reg = {
        .ring_addr = (uint64_t)(uintptr_t)br, .ring_entries = BUF_COUNT, .bgid = BUF_GROUP};
    int r = io_uring_register_buf_ring(&ring, &reg, 0);
    if (r < 0) {
        fprintf(stderr, "uring_echo: register buffer ring: %s\n", strerror(-r));
        exit(1);
    }
    io_uring_buf_ring_init(br);
    for (unsigned i = 0; i < BUF_COUNT; i++)
        io_uring_buf_ring_add(br, bufs + (size_t)i * BUF_SIZE, BUF_SIZE, (unsigned short)i,
                              io_uring_buf_ring_mask(BUF_COUNT), (int)i);
    io_uring_buf_ring_advance(br, BUF_COUNT);
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 0;
    if (port <= 0 || port > 65535) {
        fprintf(stderr, "usage: uring_echo PORT [CORE]\n");
        return 2;
    }
    if (argc > 2) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(atoi(argv[2]), &set);
        if (sched_setaffinity(0, sizeof set, &set) < 0)
            perror("uring_echo: could not pin");
    }
    struct io_uring_params params = {0};
    params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
                   IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
    params.cq_entries = RING_ENTRIES * 4;
    int r = io_uring_queue_init_params(RING_ENTRIES, &ring, &params);
    if (r < 0) {
        fprintf(stderr, "uring_echo: io_uring setup (SINGLE_ISSUER|DEFER_TASKRUN needs 6.1): %s\n",
                strerror(-r));
        return 1;
    }
    conns = calloc(MAX_FDS, sizeof *conns);
    if (!conns) {
        perror("uring_echo: calloc");
        return 1;
    }
    setup_buffers();
    int lfd = listen_on(port);
    arm_accept(lfd);
    fprintf(stderr, "uring_echo: listening on 127.0.0.1:%d\n", port);

    for (;;) {
        /* One enter both submits and waits; with DEFER_TASKRUN it also runs task work. */
        r = io_uring_submit_and_wait(&ring, 1);
        if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
            fprintf(stderr, "uring_echo: io_uring_enter: %s\n", strerror(-r));
            return 1;
        }
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe)
        {
            uint64_t t = cqe->user_data;
            switch (tag_op(t)) {
            case OP_ACCEPT: on_accept(tag_fd(t), cqe); break;
            case OP_RECV: on_recv(tag_fd(t), cqe); break;
            case OP_SEND: on_send(tag_fd(t), (uint16_t)tag_bid(t), cqe); break;
            }
            seen++;
        }
        io_uring_cq_advance(&ring, seen);
    }
}
