/*
 * floor: the least a server can do to answer a durable, guarded transfer
 * under Carteira's journal contract, written in C with nothing else in it.
 * It is the ceiling for any Carteira request path on this machine: what
 * remains when the Swift server, its protocol and its ledger are taken away.
 *
 * It speaks RESP, so that redis-benchmark drives it with exactly the command
 * it sends Redis in tools/bench-peers (the same client, the same requests):
 *
 *   EVALSHA <sha> 2 w:<12 digits> w:<12 digits> <amount>
 *       a transfer: refused (":0") if payer and payee are the same wallet, a
 *       wallet is unknown or the payer's balance is short; otherwise the
 *       balances move, one journal line of Carteira's transfer shape (seq,
 *       at, tx, from, to, key, amount, req, and the SHA-256 hash chain of
 *       JOURNAL.md, about 240 bytes) is appended, and ":1" is answered once
 *       that line is synced.
 *   PING     "+PONG", in order behind the connection's waiting answers.
 *   SUM      "*3" of the balances' sum, the lowest balance and the wallet
 *            count (the money check after a run).
 *   anything else: an empty array (redis-benchmark's CONFIG GET at start).
 *
 * And the lines of Carteira's protocol that tools/loadgen's carteira-load
 * sends, so the same client drives it and the Carteira server:
 *
 *   REGISTER|<name>          a new wallet of BALANCE (a journal line, synced):
 *                            OK|<name>|<token>|<key>|<cents>
 *   LOGIN|<name>|<token>     OK|<name>|<key>|<cents>
 *   SEND|<key>|<reais,cents> the transfer above, from the logged-in wallet:
 *                            OK|<tx>|<payer's cents> once synced
 *   PING                     OK|PONG
 *
 * A connection's first byte picks the protocol ('*' is RESP).
 *
 * Two designs, chosen by the third argument:
 *
 *   thread   Carteira's contract (JOURNAL.md, Durability: "waiting for the
 *            disk must never stop the server from accepting and validating
 *            new requests"). One event thread reads, applies and encodes;
 *            one sync thread writes and fdatasyncs whatever has gathered
 *            (group commit) and wakes the event thread through an eventfd,
 *            which then writes every answer up to the durable seq.
 *   inline   Redis's design: one thread; at the end of each epoll round it
 *            writes and fdatasyncs the round's lines, then writes the round's
 *            answers. Accepting stops during every sync, which Carteira's
 *            contract forbids; it is here as Redis's shape without Redis.
 *
 * Usage: floor PORT JOURNAL thread|inline [WALLETS [BALANCE]]
 * Prints "listening on 127.0.0.1:PORT" (PORT 0 picks a free one); SIGTERM
 * stops it and prints the lines and syncs it made.
 */
#define _GNU_SOURCE
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_Init #define _GNU_SOURCE co.: the same calls as Sources/CChainHash */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define INPUT_BYTES 65536
#define MAX_CONNECTIONS 4096
#define MAX_WALLETS 1000000
#define NAME_BYTES 41

static void die(const char *what) {
    perror(what);
    exit(1);
}

/* A growing byte buffer. */
typedef struct {
    char *bytes;
    size_t count, capacity;
} buffer;

static void reserve(buffer *b, size_t more) {
    if (b->count + more <= b->capacity) return;
    size_t capacity = b->capacity ? b->capacity : 4096;
    while (capacity < b->count + more) capacity *= 2;
    b->bytes = realloc(b->bytes, capacity);
    if (!b->bytes) die("realloc");
    b->capacity = capacity;
}

static void append(buffer *b, const char *bytes, size_t count) {
    reserve(b, count);
    memcpy(b->bytes + b->count, bytes, count);
    b->count += count;
}

/* An answer's end in the connection's output and the seq it waits for. */
typedef struct {
    size_t end;
    uint64_t seq;
} mark;

typedef struct {
    int fd;
    char input[INPUT_BYTES + 1]; /* and a NUL after what was read, for strtol */
    size_t in;
    buffer output;   /* answers; [0, released) may be written */
    size_t released, written;
    mark *marks;     /* answers still waiting for a sync, in order */
    size_t mark_count, mark_capacity;
    uint64_t last_seq; /* the seq of its newest transfer */
    int waiting_to_write; /* the socket was full: EPOLLOUT is on */
    long wallet;          /* Carteira's protocol: the logged-in wallet, or -1 */
    char protocol;        /* its first byte: '*' for RESP, else Carteira's */
} connection;

static connection *connections[MAX_CONNECTIONS];
static int highest_fd;
static int64_t *balances;
static long wallets;             /* RESP's wallets are 0..<resp_wallets, */
static long resp_wallets;        /* REGISTER's come after them */
static char (*names)[NAME_BYTES];

/* The journal: lines encoded by the event thread, synced by one writer. */
static int journal_fd;
static buffer pending;           /* event thread only */
static uint64_t next_seq = 1, pending_seq;
static char previous_hash[65];
static pthread_mutex_t handoff_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t handoff_ready = PTHREAD_COND_INITIALIZER;
static buffer handoff;           /* under handoff_lock */
static uint64_t handoff_seq;     /* under handoff_lock */
static _Atomic uint64_t durable_seq;
static _Atomic uint64_t syncs_done;
static int wake_fd;
static volatile sig_atomic_t stopping;

static void on_term(int signal) {
    (void)signal;
    stopping = 1;
}

static const char hex[] = "0123456789abcdef";

/* A wallet's name: REGISTER's, or one of the same length as carteira-load's. */
static const char *name_of(long index, char *scratch) {
    if (index >= resp_wallets) return names[index - resp_wallets];
    snprintf(scratch, NAME_BYTES, "lg00000f100r-%ld", index);
    return scratch;
}

/* A wallet's payment key: a UUID v4 with the wallet's index in its last 12 digits. */
#define KEY_FORMAT "6f1c2a3e-9b4d-4c1a-8e2f-%012ld"

/* Appends one line of Carteira's shape to `pending`, chained: a transfer, or
 * a registration when payer < 0. */
static void encode_line(long payer, long payee, int64_t amount) {
    uint64_t seq = next_seq++;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm utc;
    gmtime_r(&now.tv_sec, &utc);
    char line[600], from[NAME_BYTES], to[NAME_BYTES];
    int length = snprintf(line, sizeof line, "seq=%llu at=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ ",
        (unsigned long long)seq, utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min,
        utc.tm_sec, now.tv_nsec / 1000000);
    if (payer >= 0) {
        length += snprintf(line + length, sizeof line - (size_t)length,
            "type=transfer tx=T%012llu from=%s to=%s key=" KEY_FORMAT " amount=%lld req=-", (unsigned long long)seq,
            name_of(payer, from), name_of(payee, to), payee, (long long)amount);
    } else {
        length += snprintf(line + length, sizeof line - (size_t)length,
            "type=registered machine=%s key=" KEY_FORMAT " expires=2099-01-01T00:00:00.000Z token=%064ld "
            "balance=%lld", name_of(payee, to), payee, payee, (long long)amount);
    }
    SHA256_CTX context;
    unsigned char digest[32];
    SHA256_Init(&context);
    SHA256_Update(&context, previous_hash, 64);
    SHA256_Update(&context, " ", 1);
    SHA256_Update(&context, line, (size_t)length);
    SHA256_Final(digest, &context);
    for (int i = 0; i < 32; i++) {
        previous_hash[2 * i] = hex[digest[i] >> 4];
        previous_hash[2 * i + 1] = hex[digest[i] & 15];
    }
    length += snprintf(line + length, sizeof line - (size_t)length, " hash=%s\n", previous_hash);
    append(&pending, line, (size_t)length);
    pending_seq = seq;
}

static void sync_journal(const buffer *lines) {
    size_t done = 0;
    while (done < lines->count) {
        ssize_t n = write(journal_fd, lines->bytes + done, lines->count - done);
        if (n < 0) die("journal write");
        done += (size_t)n;
    }
    if (fdatasync(journal_fd) != 0) die("journal fdatasync");
    atomic_fetch_add(&syncs_done, 1);
}

static void *sync_thread(void *unused) {
    (void)unused;
    buffer mine = {0};
    for (;;) {
        pthread_mutex_lock(&handoff_lock);
        while (handoff.count == 0) pthread_cond_wait(&handoff_ready, &handoff_lock);
        buffer swap = mine;
        mine = handoff;
        handoff = swap;
        handoff.count = 0;
        uint64_t seq = handoff_seq;
        pthread_mutex_unlock(&handoff_lock);
        sync_journal(&mine);
        mine.count = 0;
        atomic_store(&durable_seq, seq);
        uint64_t one = 1;
        if (write(wake_fd, &one, sizeof one) != sizeof one) die("eventfd write");
    }
    return NULL;
}

static void add_answer(connection *c, const char *answer, size_t count, uint64_t seq) {
    append(&c->output, answer, count);
    if (c->mark_count == c->mark_capacity) {
        c->mark_capacity = c->mark_capacity ? 2 * c->mark_capacity : 16;
        c->marks = realloc(c->marks, c->mark_capacity * sizeof *c->marks);
        if (!c->marks) die("realloc");
    }
    c->marks[c->mark_count++] = (mark){c->output.count, seq};
}

static void close_connection(int epoll_fd, connection *c) {
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    connections[c->fd] = NULL;
    free(c->output.bytes);
    free(c->marks);
    free(c);
}

/* Releases every answer up to `durable` and writes what it can. */
static void release_and_write(int epoll_fd, connection *c, uint64_t durable) {
    size_t first = 0;
    while (first < c->mark_count && c->marks[first].seq <= durable) c->released = c->marks[first++].end;
    if (first) {
        memmove(c->marks, c->marks + first, (c->mark_count - first) * sizeof *c->marks);
        c->mark_count -= first;
    }
    while (c->written < c->released) {
        ssize_t n = write(c->fd, c->output.bytes + c->written, c->released - c->written);
        if (n < 0) {
            if (errno == EAGAIN && !c->waiting_to_write) { /* the rest once the socket drains */
                struct epoll_event e = {.events = EPOLLIN | EPOLLOUT, .data.fd = c->fd};
                epoll_ctl(epoll_fd, EPOLL_CTL_MOD, c->fd, &e);
                c->waiting_to_write = 1;
            }
            if (errno != EAGAIN) close_connection(epoll_fd, c);
            return;
        }
        c->written += (size_t)n;
    }
    if (c->waiting_to_write) {
        struct epoll_event e = {.events = EPOLLIN, .data.fd = c->fd};
        epoll_ctl(epoll_fd, EPOLL_CTL_MOD, c->fd, &e);
        c->waiting_to_write = 0;
    }
    if (c->written == c->output.count) {
        c->output.count = c->released = c->written = 0;
        for (size_t i = 0; i < c->mark_count; i++) c->marks[i].end = 0;
    }
}

/* A RESP bulk string at *p: "$<n>\r\n<bytes>\r\n". */
static int bulk(const char **p, const char *end, const char **text, long *length) {
    const char *q = *p;
    if (q >= end || *q != '$') return -1;
    char *after;
    long n = strtol(q + 1, &after, 10);
    if (after + 2 > end || after[0] != '\r' || after[1] != '\n' || n < 0) return after + 2 > end ? 0 : -1;
    q = after + 2;
    if (q + n + 2 > end) return 0;
    *text = q;
    *length = n;
    *p = q + n + 2;
    return 1;
}

static long wallet(const char *text, long length) {
    if (length != 14 || text[0] != 'w' || text[1] != ':') return -1;
    long value = 0;
    for (int i = 2; i < 14; i++) {
        if (text[i] < '0' || text[i] > '9') return -1;
        value = value * 10 + (text[i] - '0');
    }
    return value < resp_wallets ? value : -1;
}

/* Carteira's protocol: one line, without its '\n'. */
static void handle_line(connection *c, char *line, size_t length) {
    char answer[160];
    int n;
    line[length] = 0;
    if (length > 5 && strncmp(line, "SEND|", 5) == 0) {
        /* SEND|<36-character key>|<reais>,<cents> */
        long payee = length > 5 + 36 ? strtol(line + 5 + 24, NULL, 10) : -1;
        char *amount_text = length > 5 + 37 ? line + 5 + 37 : line + length, *comma;
        int64_t amount = strtoll(amount_text, &comma, 10) * 100;
        if (*comma == ',') amount += strtoll(comma + 1, NULL, 10);
        if (c->wallet < 0 || payee < 0 || payee >= wallets || payee == c->wallet || amount <= 0 ||
            balances[c->wallet] < amount) {
            add_answer(c, "ERR|refused\n", 12, c->last_seq);
            return;
        }
        balances[c->wallet] -= amount;
        balances[payee] += amount;
        encode_line(c->wallet, payee, amount);
        c->last_seq = pending_seq;
        n = snprintf(answer, sizeof answer, "OK|T%012llu|%lld\n", (unsigned long long)pending_seq,
            (long long)balances[c->wallet]);
        add_answer(c, answer, (size_t)n, c->last_seq);
    } else if (strcmp(line, "PING") == 0) {
        add_answer(c, "OK|PONG\n", 8, c->last_seq);
    } else if (length > 6 && strncmp(line, "LOGIN|", 6) == 0) {
        char *bar = strchr(line + 6, '|');
        if (bar) *bar = 0;
        c->wallet = -1;
        for (long i = resp_wallets; i < wallets; i++)
            if (strcmp(names[i - resp_wallets], line + 6) == 0) c->wallet = i;
        if (c->wallet < 0) {
            add_answer(c, "ERR|unknown_machine\n", 20, c->last_seq);
            return;
        }
        n = snprintf(answer, sizeof answer, "OK|%s|" KEY_FORMAT "|%lld\n", line + 6, c->wallet,
            (long long)balances[c->wallet]);
        add_answer(c, answer, (size_t)n, c->last_seq);
    } else if (length > 9 && length - 9 < NAME_BYTES && strncmp(line, "REGISTER|", 9) == 0 && wallets < MAX_WALLETS) {
        long index = wallets++;
        strcpy(names[index - resp_wallets], line + 9);
        c->wallet = index;
        encode_line(-1, index, balances[index]);
        c->last_seq = pending_seq;
        n = snprintf(answer, sizeof answer, "OK|%s|%032ld|" KEY_FORMAT "|%lld\n", line + 9, index, index,
            (long long)balances[index]);
        add_answer(c, answer, (size_t)n, c->last_seq);
    } else {
        add_answer(c, "ERR|unknown_command\n", 20, c->last_seq);
    }
}

/* Handles every whole command in the connection's input. 0: close it. */
static int handle_input(connection *c) {
    char *p = c->input, *end = c->input + c->in;
    *end = 0;
    if (!c->protocol) c->protocol = c->input[0];
    if (c->protocol != '*') {
        char *newline;
        while (p < end && (newline = memchr(p, '\n', (size_t)(end - p)))) {
            handle_line(c, p, (size_t)(newline - p));
            p = newline + 1;
        }
    }
    while (c->protocol == '*' && p < end) {
        if (*p != '*') return 0;
        char *after;
        long arguments = strtol(p + 1, &after, 10);
        if (after + 2 > end) break;
        if (after[0] != '\r' || after[1] != '\n' || arguments < 1 || arguments > 16) return 0;
        const char *q = after + 2, *text[16] = {0};
        long length[16];
        int whole = 1;
        for (long i = 0; i < arguments && whole; i++) {
            int r = bulk(&q, end, &text[i], &length[i]);
            if (r < 0) return 0;
            whole = r;
        }
        if (!whole) break;
        p = (char *)q;
        if (length[0] == 4 && strncasecmp(text[0], "PING", 4) == 0) {
            add_answer(c, "+PONG\r\n", 7, c->last_seq);
        } else if (length[0] == 3 && strncasecmp(text[0], "SUM", 3) == 0) {
            int64_t total = 0, lowest = balances[0]; /* every wallet, REGISTER's too */
            for (long i = 0; i < wallets; i++) {
                total += balances[i];
                if (balances[i] < lowest) lowest = balances[i];
            }
            char answer[128];
            int n = snprintf(answer, sizeof answer, "*3\r\n:%lld\r\n:%lld\r\n:%ld\r\n", (long long)total,
                (long long)lowest, wallets);
            add_answer(c, answer, (size_t)n, c->last_seq);
        } else if (length[0] == 7 && strncasecmp(text[0], "EVALSHA", 7) == 0 && arguments == 6) {
            long payer = wallet(text[3], length[3]), payee = wallet(text[4], length[4]);
            int64_t amount = strtoll(text[5], NULL, 10);
            if (payer < 0 || payee < 0 || payer == payee || amount <= 0 || balances[payer] < amount) {
                add_answer(c, ":0\r\n", 4, c->last_seq);
            } else {
                balances[payer] -= amount;
                balances[payee] += amount;
                encode_line(payer, payee, amount);
                c->last_seq = pending_seq;
                add_answer(c, ":1\r\n", 4, c->last_seq);
            }
        } else {
            add_answer(c, "*0\r\n", 4, c->last_seq);
        }
    }
    size_t rest = (size_t)(end - p);
    if (c->protocol == '*' && p < end && *p != '*') return 0;
    if (rest == INPUT_BYTES) return 0; /* a command larger than the buffer */
    memmove(c->input, p, rest);
    c->in = rest;
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 4 || (strcmp(argv[3], "thread") != 0 && strcmp(argv[3], "inline") != 0)) {
        fprintf(stderr, "usage: floor PORT JOURNAL thread|inline [WALLETS [BALANCE]]\n");
        return 2;
    }
    int threaded = strcmp(argv[3], "thread") == 0;
    resp_wallets = wallets = argc > 4 ? atol(argv[4]) : 1000;
    int64_t initial = argc > 5 ? atoll(argv[5]) : 100000000;
    balances = malloc(MAX_WALLETS * sizeof *balances);
    names = calloc(MAX_WALLETS, NAME_BYTES);
    if (!balances || !names || wallets < 2 || wallets > MAX_WALLETS / 2) die("wallets");
    for (long i = 0; i < MAX_WALLETS; i++) balances[i] = initial;
    memset(previous_hash, '0', 64);

    journal_fd = open(argv[2], O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (journal_fd < 0) die(argv[2]);

    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int yes = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1])),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(listener, 1024) != 0) die("listen");
    socklen_t size = sizeof address;
    getsockname(listener, (struct sockaddr *)&address, &size);
    printf("listening on 127.0.0.1:%d\n", ntohs(address.sin_port));
    fflush(stdout);

    struct sigaction action = {.sa_handler = on_term};
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);
    signal(SIGPIPE, SIG_IGN);

    int epoll_fd = epoll_create1(0);
    struct epoll_event event = {.events = EPOLLIN, .data.fd = listener};
    epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listener, &event);
    wake_fd = eventfd(0, EFD_NONBLOCK);
    event.data.fd = wake_fd;
    epoll_ctl(epoll_fd, EPOLL_CTL_ADD, wake_fd, &event);
    if (threaded) {
        pthread_t thread;
        if (pthread_create(&thread, NULL, sync_thread, NULL) != 0) die("pthread_create");
    }

    struct epoll_event events[256];
    while (!stopping) {
        int n = epoll_wait(epoll_fd, events, 256, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == listener) {
                int client;
                while ((client = accept4(listener, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (client >= MAX_CONNECTIONS) {
                        close(client);
                        continue;
                    }
                    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
                    connection *c = calloc(1, sizeof *c);
                    if (!c) die("calloc");
                    c->fd = client;
                    c->wallet = -1;
                    connections[client] = c;
                    if (client > highest_fd) highest_fd = client;
                    struct epoll_event e = {.events = EPOLLIN, .data.fd = client};
                    epoll_ctl(epoll_fd, EPOLL_CTL_ADD, client, &e);
                }
            } else if (fd == wake_fd) {
                uint64_t count;
                if (read(wake_fd, &count, sizeof count) < 0 && errno != EAGAIN) die("eventfd read");
            } else if (connections[fd]) {
                connection *c = connections[fd];
                if (!(events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) continue; /* writable: the round writes */
                ssize_t got = read(fd, c->input + c->in, INPUT_BYTES - c->in);
                if (got == 0 || (got < 0 && errno != EAGAIN)) {
                    close_connection(epoll_fd, c);
                    continue;
                }
                if (got > 0) {
                    c->in += (size_t)got;
                    if (!handle_input(c)) close_connection(epoll_fd, c);
                }
            }
        }
        /* The end of the round (Redis's beforeSleep). */
        if (pending.count) {
            if (threaded) {
                pthread_mutex_lock(&handoff_lock);
                append(&handoff, pending.bytes, pending.count);
                handoff_seq = pending_seq;
                pthread_cond_signal(&handoff_ready);
                pthread_mutex_unlock(&handoff_lock);
            } else {
                sync_journal(&pending);
                atomic_store(&durable_seq, pending_seq);
            }
            pending.count = 0;
        }
        uint64_t durable = atomic_load(&durable_seq);
        for (int fd = 0; fd <= highest_fd; fd++) {
            connection *c = connections[fd];
            if (c && (c->written < c->output.count)) release_and_write(epoll_fd, c, durable);
        }
    }
    fprintf(stderr, "floor: %llu lines, %llu syncs\n", (unsigned long long)(next_seq - 1),
        (unsigned long long)atomic_load(&syncs_done));
    return 0;
}
