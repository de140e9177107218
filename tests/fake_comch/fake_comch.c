/*
 * Fake libdoca_comch.so.2 (DOCA Comch, 2.9+ or, with -DFAKE_COMCH_API=27, 2.7/2.8 names) for
 * the tests of doca-socket-relay. Everything is single-threaded and non-blocking; every user
 * callback fires inside doca_pe_progress(). See README.md in this directory for the behaviour
 * in detail.
 *
 * Transport: one AF_UNIX SOCK_SEQPACKET connection per Comch connection. The server binds
 * $FAKE_DOCA_DIR/<name> in doca_ctx_start(); a client connects during its progress calls.
 * Every packet is one message: a one-byte tag followed by the payload (TAG_MSG), or a control
 * packet (TAG_ACCEPT: the server accepted the client; TAG_DISCONNECT: the server disconnected
 * it), so that empty messages and control packets are distinguishable and a zero-length read
 * always means the peer hung up.
 *
 * Environment (read when the call concerned is made):
 *   FAKE_DOCA_DIR                rendezvous directory (start fails with INITIALIZATION if unset)
 *   FAKE_COMCH_MAX_MSG           cap_get_max_msg_size (default 4080, clamped to [16, 65536])
 *   FAKE_COMCH_MAX_SEND_TASKS    cap_get_max_send_tasks (default 1024); pool = min(asked, cap)
 *   FAKE_COMCH_SNDBUF            SO_SNDBUF of every connection socket (at least max msg + 64)
 *   FAKE_COMCH_FAIL_START=1      doca_ctx_start fails with INITIALIZATION (server and client)
 *   FAKE_COMCH_LAZY_DISCONNECT=1 the server reports a vanished client only once it tries to
 *                                send to it
 *   FAKE_COMCH_DISCONNECT_AGAIN=1  the first doca_comch_server_disconnect() of each connection
 *                                returns AGAIN
 *   FAKE_COMCH_NO_SERVER_CAP=1   cap_server_is_supported / server_create: NOT_SUPPORTED
 *   FAKE_COMCH_STOP_ON_DEAD_SEND=1  a send to a client that has gone stops the server context
 *                                (RUNNING -> STOPPING -> IDLE, tasks flushed with
 *                                CONNECTION_RESET), as DOCA may after a fatal error
 *   FAKE_COMCH_PROGRESS_BLOCK_FILE  while this file exists, doca_pe_progress does not return
 *                                (a thread stuck inside DOCA)
 *   FAKE_COMCH_MSG_BEFORE_RUNNING=1  the client delivers the server's first message (waiting
 *                                up to a second for it) in the progress call that reports
 *                                RUNNING, before the state change
 *
 * Locked memory: doca_ctx_start pins (send tasks + receive queue) * FAKE_PIN_PER_ENTRY bytes
 * against RLIMIT_MEMLOCK and fails with NO_MEMORY past it (see fake_devices.h).
 */
#include "fake_comch.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#define TAG_MSG 0x4du        /* 'M': a user message follows */
#define TAG_ACCEPT 0x41u     /* 'A': server -> client, the connection is accepted */
#define TAG_DISCONNECT 0x44u /* 'D': server -> client, doca_comch_server_disconnect() */
#define SCRIBBLE 0xa5u       /* written over the receive buffer after each recv callback */

enum side {
	SIDE_SERVER,
	SIDE_CLIENT,
};

struct fake_comch;

struct doca_comch_event_msg_recv {
	struct fake_comch *owner;
};

struct doca_comch_event_connection_status_changed {
	struct fake_comch *owner;
};

struct doca_comch_connection {
	struct fake_comch *owner;
	struct doca_comch_connection *next; /* server: all connections, kept until destroy */
	int fd;
	union doca_data user_data;
	int peer_gone;   /* EOF, reset or a broken send seen on the socket */
	int send_failed; /* a send task failed because the peer was gone (lazy trigger) */
	int closed;      /* ended for the application: no new tasks */
	int local;       /* ended by doca_comch_server_disconnect() */
	int report;      /* disconnection callback still to fire */
	int blocked;     /* this send pass: the socket is full */
	int again_done;  /* FAKE_COMCH_DISCONNECT_AGAIN already answered */
	uint64_t count[4], snap[4]; /* counters (indexed by doca_comch_counter - 1), snapshot */
};

struct doca_comch_task_send {
	struct doca_task base; /* first, see doca_comch_task_send_as_task() */
	struct fake_comch *owner;
	struct doca_comch_connection *conn;
	const void *msg; /* read only when the message is actually sent */
	uint32_t len;
	struct doca_comch_task_send *next; /* free list / send queue / completion list */
};

struct fake_comch {
	struct doca_ctx ctx; /* first: *_as_ctx() and the ops cast back */
	enum side side;
	struct doca_dev *dev;
	struct doca_dev_rep *rep;
	char name[FAKE_MAX_NAME_LEN];
	uint32_t max_msg_cap, max_msg, recv_queue;

	/* send tasks */
	int conf_set;
	uint32_t tasks_asked, tasks_cap;
	doca_comch_task_send_completion_cb_t done_cb, err_cb;
	struct doca_comch_task_send *pool, *free_list;
	uint32_t pool_size, allocated;
	struct doca_comch_task_send *qhead, *qtail; /* submitted, in order */
	doca_error_t flush_status;                  /* for tasks flushed in STOPPING */

	/* receiving */
	doca_comch_event_msg_recv_cb_t recv_cb;
	struct doca_comch_event_msg_recv recv_event;
	uint8_t *rbuf;
	uint32_t rbuf_size;

	int busy; /* inside this context's progress round */
	uint64_t pinned;  /* bytes charged against RLIMIT_MEMLOCK while started */
	int stop_pending; /* FAKE_COMCH_STOP_ON_DEAD_SEND: a send hit a dead client */

	/* server */
	doca_comch_event_connection_status_changed_cb_t conn_cb, disconn_cb;
	struct doca_comch_event_connection_status_changed conn_event;
	int listen_fd;
	struct sockaddr_un addr;
	int have_sock; /* addr names the socket we bound (sock_dev/sock_ino) */
	dev_t sock_dev;
	ino_t sock_ino;
	struct doca_comch_connection *conns, *conns_tail;

	/* client */
	struct doca_comch_connection cconn;
};

struct doca_comch_server {
	struct fake_comch c;
};

struct doca_comch_client {
	struct fake_comch c;
};

/* ---- small helpers ---- */

static uint32_t cap_max_msg(void)
{
	uint64_t v = fake_env_u64("FAKE_COMCH_MAX_MSG", FAKE_DEFAULT_MAX_MSG);

	if (v < FAKE_MIN_MAX_MSG)
		v = FAKE_MIN_MAX_MSG;
	if (v > FAKE_MAX_MAX_MSG)
		v = FAKE_MAX_MAX_MSG;
	return (uint32_t)v;
}

static uint32_t cap_max_send_tasks(void)
{
	uint64_t v = fake_env_u64("FAKE_COMCH_MAX_SEND_TASKS", FAKE_DEFAULT_MAX_SEND_TASKS);

	if (v < 1)
		v = 1;
	if (v > UINT32_MAX)
		v = UINT32_MAX;
	return (uint32_t)v;
}

static void apply_sndbuf(const struct fake_comch *c, int fd)
{
	uint64_t want = fake_env_u64("FAKE_COMCH_SNDBUF", 0);
	int v;

	if (want == 0)
		return;
	if (want < (uint64_t)c->max_msg + 64u)
		want = (uint64_t)c->max_msg + 64u;
	if (want > (uint64_t)INT_MAX)
		want = (uint64_t)INT_MAX;
	v = (int)want;
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
}

/* $FAKE_DOCA_DIR/<name>, with '/' in the name replaced by '_'. */
static doca_error_t rendezvous_path(const struct fake_comch *c, struct sockaddr_un *sun)
{
	const char *dir = getenv("FAKE_DOCA_DIR");
	char *p;
	int n;

	if (dir == NULL || *dir == '\0')
		return DOCA_ERROR_INITIALIZATION;
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	n = snprintf(sun->sun_path, sizeof(sun->sun_path), "%s/", dir);
	if (n < 0 || (size_t)n >= sizeof(sun->sun_path))
		return DOCA_ERROR_INITIALIZATION;
	p = sun->sun_path + n;
	if ((size_t)n + strlen(c->name) >= sizeof(sun->sun_path))
		return DOCA_ERROR_INITIALIZATION;
	strcpy(p, c->name);
	for (; *p; p++)
		if (*p == '/')
			*p = '_';
	return DOCA_SUCCESS;
}

/* Sends one packet. 0: sent, 1: would block, -1: the peer is gone, -2: other error. */
static int send_packet(int fd, uint8_t tag, const void *msg, uint32_t len)
{
	struct iovec iov[2];
	struct msghdr mh;
	ssize_t r;

	iov[0].iov_base = &tag;
	iov[0].iov_len = 1;
	iov[1].iov_base = (void *)msg;
	iov[1].iov_len = len;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = iov;
	mh.msg_iovlen = len > 0 ? 2 : 1;
	do {
		r = sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	} while (r < 0 && errno == EINTR);
	if (r >= 0)
		return 0;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
		return 1;
	if (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN || errno == ECONNREFUSED)
		return -1;
	return -2;
}

/* Reads one packet into c->rbuf. 1: got one (*tag, *len), 0: nothing waiting, -1: the peer
 * is gone, -2: a message larger than our max message size arrived. */
static int read_packet(struct fake_comch *c, int fd, uint8_t *tag, uint32_t *len)
{
	struct iovec iov[2];
	struct msghdr mh;
	ssize_t n;

	iov[0].iov_base = tag;
	iov[0].iov_len = 1;
	iov[1].iov_base = c->rbuf;
	iov[1].iov_len = c->rbuf_size;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = iov;
	mh.msg_iovlen = 2;
	do {
		n = recvmsg(fd, &mh, MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
	if (n == 0)
		return -1;
	if (mh.msg_flags & MSG_TRUNC)
		return -2;
	*len = (uint32_t)(n - 1);
	return 1;
}

static void close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

static void reset_conn(struct doca_comch_connection *conn, struct fake_comch *owner)
{
	memset(conn, 0, sizeof(*conn));
	conn->owner = owner;
	conn->fd = -1;
}

/* Fires the recv callback for the message in c->rbuf, then scribbles over the buffer so that
 * a user keeping the pointer past the callback reads garbage. */
static void deliver(struct fake_comch *c, struct doca_comch_connection *conn, uint32_t len)
{
	uint8_t *buf = c->rbuf;

	conn->count[DOCA_COMCH_COUNTER_RECV_MESSAGES - 1]++;
	conn->count[DOCA_COMCH_COUNTER_RECV_BYTES - 1] += len;
	if (c->recv_cb != NULL)
		c->recv_cb(&c->recv_event, buf, len, conn);
	if (c->rbuf == buf) /* (unless the callback restarted the context with another size) */
		memset(buf, SCRIBBLE, len);
}

/* ---- the task pool ---- */

static doca_error_t pool_prepare(struct fake_comch *c)
{
	uint32_t want = 0, i;

	if (c->conf_set)
		want = c->tasks_asked < c->tasks_cap ? c->tasks_asked : c->tasks_cap;
	if (c->pool != NULL && c->pool_size != want) {
		free(c->pool);
		c->pool = NULL;
		c->pool_size = 0;
	}
	if (c->pool == NULL && want > 0) {
		c->pool = calloc(want, sizeof(*c->pool));
		if (c->pool == NULL)
			return DOCA_ERROR_NO_MEMORY;
		c->pool_size = want;
	}
	c->free_list = NULL;
	for (i = c->pool_size; i-- > 0;) {
		struct doca_comch_task_send *t = &c->pool[i];

		memset(t, 0, sizeof(*t));
		t->base.ctx = &c->ctx;
		t->base.state = FAKE_TASK_FREE;
		t->owner = c;
		t->next = c->free_list;
		c->free_list = t;
	}
	c->allocated = 0;
	c->qhead = c->qtail = NULL;
	c->ctx.inflight = 0;
	return DOCA_SUCCESS;
}

static doca_error_t rbuf_prepare(struct fake_comch *c)
{
	if (c->rbuf != NULL && c->rbuf_size == c->max_msg)
		return DOCA_SUCCESS;
	free(c->rbuf);
	c->rbuf_size = 0;
	c->rbuf = malloc(c->max_msg > 0 ? c->max_msg : 1);
	if (c->rbuf == NULL)
		return DOCA_ERROR_NO_MEMORY;
	c->rbuf_size = c->max_msg;
	return DOCA_SUCCESS;
}

/* Fires the completion or error callback of every task on `list` (already off the queue). */
static uint8_t complete_list(struct fake_comch *c, struct doca_comch_task_send *list)
{
	uint8_t did = 0;

	while (list != NULL) {
		struct doca_comch_task_send *t = list;
		doca_comch_task_send_completion_cb_t cb;

		list = t->next;
		t->next = NULL;
		t->base.state = FAKE_TASK_OWNED; /* back to the user */
		c->ctx.inflight--;
		cb = t->base.status == DOCA_SUCCESS ? c->done_cb : c->err_cb;
		did = 1;
		cb(t, t->base.user_data, c->ctx.user_data);
	}
	return did;
}

/* Takes the queued tasks (all, or those of connection `only`) off the queue, in order, and
 * gives them `status`; returns them as a list for complete_list(). */
static struct doca_comch_task_send *take_tasks(struct fake_comch *c,
					       const struct doca_comch_connection *only,
					       doca_error_t status)
{
	struct doca_comch_task_send *t, *prev = NULL, *next, *out = NULL, *out_tail = NULL;

	for (t = c->qhead; t != NULL; t = next) {
		next = t->next;
		if (only != NULL && t->conn != only) {
			prev = t;
			continue;
		}
		if (prev)
			prev->next = next;
		else
			c->qhead = next;
		if (c->qtail == t)
			c->qtail = prev;
		t->next = NULL;
		t->base.status = status;
		if (out_tail)
			out_tail->next = t;
		else
			out = t;
		out_tail = t;
	}
	return out;
}

/* ---- teardown and state changes ---- */

/* Closes every socket of the context (no callbacks); used when it reaches IDLE. */
static void teardown(struct fake_comch *c)
{
	struct doca_comch_connection *conn;

	fake_unpin(c->pinned);
	c->pinned = 0;
	if (c->side == SIDE_SERVER) {
		struct stat st;

		for (conn = c->conns; conn != NULL; conn = conn->next) {
			conn->closed = 1;
			conn->report = 0;
			close_fd(&conn->fd);
		}
		close_fd(&c->listen_fd);
		if (c->have_sock && stat(c->addr.sun_path, &st) == 0 && st.st_dev == c->sock_dev &&
		    st.st_ino == c->sock_ino)
			(void)unlink(c->addr.sun_path);
		c->have_sock = 0;
	} else {
		c->cconn.closed = 1;
		close_fd(&c->cconn.fd);
	}
}

/* STOPPING: flush every queued task through the error callback; once the user has freed all
 * tasks, close everything and move to IDLE. */
static uint8_t stopping_round(struct fake_comch *c)
{
	uint8_t did = 0;

	if (c->ctx.state != DOCA_CTX_STATE_STOPPING)
		return 0;
	did |= complete_list(c, take_tasks(c, NULL, c->flush_status));
	if (c->ctx.state == DOCA_CTX_STATE_STOPPING && c->qhead == NULL && c->allocated == 0) {
		teardown(c);
		fake_ctx_set_state(&c->ctx, DOCA_CTX_STATE_IDLE);
		did = 1;
	}
	did |= fake_ctx_fire_pending(&c->ctx);
	return did;
}

/* The peer went away under a RUNNING client: RUNNING -> STOPPING (flush) -> IDLE. */
static uint8_t client_peer_stop(struct fake_comch *c, doca_error_t status)
{
	if (c->ctx.state != DOCA_CTX_STATE_RUNNING)
		return 0;
	c->flush_status = status;
	fake_ctx_set_state(&c->ctx, DOCA_CTX_STATE_STOPPING);
	(void)fake_ctx_fire_pending(&c->ctx);
	(void)stopping_round(c);
	return 1;
}

/* ---- sending (RUNNING) ---- */

/* One pass over the send queue: send what the sockets take, in order per connection; fail
 * tasks whose connection has ended; then fire the callbacks. */
static uint8_t send_round(struct fake_comch *c)
{
	struct doca_comch_task_send *t, *prev = NULL, *next, *done = NULL, *done_tail = NULL;
	struct doca_comch_connection *conn;

	if (c->side == SIDE_SERVER) {
		for (conn = c->conns; conn != NULL; conn = conn->next)
			conn->blocked = 0;
	} else {
		c->cconn.blocked = 0;
	}
	for (t = c->qhead; t != NULL; t = next) {
		doca_error_t status = DOCA_SUCCESS;
		int r;

		next = t->next;
		conn = t->conn;
		if (conn->closed) {
			status = conn->local ? DOCA_ERROR_NOT_CONNECTED : DOCA_ERROR_CONNECTION_RESET;
		} else if (conn->peer_gone || conn->fd < 0) {
			status = DOCA_ERROR_CONNECTION_RESET;
			conn->send_failed = 1;
			if (c->side == SIDE_SERVER && fake_env_flag("FAKE_COMCH_STOP_ON_DEAD_SEND"))
				c->stop_pending = 1;
		} else if (conn->blocked) {
			prev = t;
			continue;
		} else {
			r = send_packet(conn->fd, TAG_MSG, t->msg, t->len);
			if (r == 1) {
				conn->blocked = 1; /* keep this connection's order */
				prev = t;
				continue;
			}
			if (r == 0) {
				conn->count[DOCA_COMCH_COUNTER_SENT_MESSAGES - 1]++;
				conn->count[DOCA_COMCH_COUNTER_SENT_BYTES - 1] += t->len;
			} else if (r == -1) {
				conn->peer_gone = 1;
				conn->send_failed = 1;
				status = DOCA_ERROR_CONNECTION_RESET;
				if (c->side == SIDE_SERVER &&
				    fake_env_flag("FAKE_COMCH_STOP_ON_DEAD_SEND"))
					c->stop_pending = 1;
			} else {
				status = DOCA_ERROR_IO_FAILED;
			}
		}
		/* off the queue, onto the completion list */
		if (prev)
			prev->next = next;
		else
			c->qhead = next;
		if (c->qtail == t)
			c->qtail = prev;
		t->next = NULL;
		t->base.status = status;
		if (done_tail)
			done_tail->next = t;
		else
			done = t;
		done_tail = t;
	}
	return complete_list(c, done);
}

/* ---- server progress ---- */

static uint8_t server_accept(struct fake_comch *c)
{
	struct doca_comch_connection *conn;
	uint32_t i, live;
	uint8_t did = 0;
	int fd;

	for (i = 0; i < FAKE_RECV_BATCH && c->ctx.state == DOCA_CTX_STATE_RUNNING; i++) {
		fd = accept4(c->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			break;
		did = 1;
		live = 0;
		for (conn = c->conns; conn != NULL; conn = conn->next)
			live += !conn->closed;
		conn = live < FAKE_MAX_CLIENTS ? calloc(1, sizeof(*conn)) : NULL;
		if (conn == NULL) {
			close(fd); /* the client sees EOF before acceptance: STARTING -> IDLE */
			continue;
		}
		apply_sndbuf(c, fd);
		if (send_packet(fd, TAG_ACCEPT, NULL, 0) != 0) {
			free(conn);
			close(fd);
			continue;
		}
		reset_conn(conn, c);
		conn->fd = fd;
		if (c->conns_tail)
			c->conns_tail->next = conn;
		else
			c->conns = conn;
		c->conns_tail = conn;
		if (c->conn_cb != NULL)
			c->conn_cb(&c->conn_event, conn, 1);
	}
	return did;
}

static uint8_t server_receive(struct fake_comch *c)
{
	struct doca_comch_connection *conn;
	uint8_t did = 0, tag;
	uint32_t i, len;
	int r;

	for (conn = c->conns; conn != NULL; conn = conn->next) {
		for (i = 0; i < FAKE_RECV_BATCH; i++) {
			if (c->ctx.state != DOCA_CTX_STATE_RUNNING || conn->closed ||
			    conn->peer_gone || conn->fd < 0)
				break;
			r = read_packet(c, conn->fd, &tag, &len);
			if (r == 0)
				break;
			did = 1;
			if (r < 0) {
				if (r == -2)
					fprintf(stderr,
						"fake DOCA Comch: server '%s' received a message "
						"larger than its max message size %u; "
						"connection broken\n",
						c->name, c->max_msg);
				conn->peer_gone = 1;
				break;
			}
			if (tag == TAG_MSG)
				deliver(c, conn, len);
		}
	}
	return did;
}

/* Fires the disconnection callback of every connection that has ended (after failing its
 * remaining tasks). A vanished client is reported at once, or with FAKE_COMCH_LAZY_DISCONNECT
 * only after a send to it failed. */
static uint8_t server_report(struct fake_comch *c)
{
	struct doca_comch_connection *conn;
	int lazy = fake_env_flag("FAKE_COMCH_LAZY_DISCONNECT");
	uint8_t did = 0;

	for (conn = c->conns; conn != NULL; conn = conn->next) {
		if (c->ctx.state != DOCA_CTX_STATE_RUNNING)
			break;
		if (!conn->report &&
		    !(conn->peer_gone && !conn->closed && (!lazy || conn->send_failed)))
			continue;
		if (!conn->closed) {
			conn->closed = 1;
			close_fd(&conn->fd);
		}
		conn->report = 0;
		did = 1;
		(void)complete_list(c, take_tasks(c, conn,
						  conn->local ? DOCA_ERROR_NOT_CONNECTED
							      : DOCA_ERROR_CONNECTION_RESET));
		if (c->disconn_cb != NULL)
			c->disconn_cb(&c->conn_event, conn, 1);
	}
	return did;
}

static uint8_t server_round(struct fake_comch *c)
{
	uint8_t did = 0;

	if (c->ctx.state == DOCA_CTX_STATE_RUNNING)
		did |= server_accept(c);
	if (c->ctx.state == DOCA_CTX_STATE_RUNNING)
		did |= server_receive(c);
	if (c->ctx.state == DOCA_CTX_STATE_RUNNING)
		did |= send_round(c);
	if (c->ctx.state == DOCA_CTX_STATE_RUNNING && c->stop_pending) {
		/* a fatal send error: the context stops by itself */
		c->stop_pending = 0;
		c->flush_status = DOCA_ERROR_CONNECTION_RESET;
		fake_ctx_set_state(&c->ctx, DOCA_CTX_STATE_STOPPING);
		did = 1;
	}
	if (c->ctx.state == DOCA_CTX_STATE_RUNNING)
		did |= server_report(c);
	did |= fake_ctx_fire_pending(&c->ctx);
	did |= stopping_round(c);
	return did;
}

/* ---- client progress ---- */

/* STARTING: connect (non-blocking), then wait for the server's TAG_ACCEPT. */
static uint8_t client_connecting(struct fake_comch *c)
{
	struct doca_comch_connection *conn = &c->cconn;
	uint8_t did = 0, tag;
	uint32_t len;
	int fd, r;

	if (conn->fd < 0) {
		fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			goto failed;
		apply_sndbuf(c, fd);
		do {
			r = connect(fd, (const struct sockaddr *)&c->addr, sizeof(c->addr));
		} while (r < 0 && errno == EINTR);
		if (r < 0) {
			int e = errno;

			close(fd);
			if (e == EAGAIN || e == EINPROGRESS)
				return 0; /* the server's backlog is full: try again later */
			goto failed;
		}
		conn->fd = fd;
		did = 1;
	}
	r = read_packet(c, conn->fd, &tag, &len);
	if (r == 0)
		return did;
	if (r == 1 && tag == TAG_ACCEPT) {
		if (fake_env_flag("FAKE_COMCH_MSG_BEFORE_RUNNING")) {
			struct pollfd pfd = { .fd = conn->fd, .events = POLLIN };

			if (poll(&pfd, 1, 1000) > 0 && read_packet(c, conn->fd, &tag, &len) == 1 &&
			    tag == TAG_MSG)
				deliver(c, conn, len);
		}
		fake_ctx_set_state(&c->ctx, DOCA_CTX_STATE_RUNNING);
		(void)fake_ctx_fire_pending(&c->ctx);
		return 1;
	}
	/* EOF / reset / refusal before acceptance */
failed:
	close_fd(&conn->fd);
	conn->closed = 1;
	fake_ctx_set_state(&c->ctx, DOCA_CTX_STATE_IDLE);
	(void)fake_ctx_fire_pending(&c->ctx);
	return 1;
}

static uint8_t client_receive(struct fake_comch *c)
{
	struct doca_comch_connection *conn = &c->cconn;
	uint8_t did = 0, tag;
	uint32_t i, len;
	int r;

	for (i = 0; i < FAKE_RECV_BATCH; i++) {
		if (c->ctx.state != DOCA_CTX_STATE_RUNNING || conn->peer_gone || conn->fd < 0)
			break;
		r = read_packet(c, conn->fd, &tag, &len);
		if (r == 0)
			break;
		did = 1;
		if (r < 0 || tag == TAG_DISCONNECT) {
			if (r == -2)
				fprintf(stderr,
					"fake DOCA Comch: client '%s' received a message larger "
					"than its max message size %u; connection broken\n",
					c->name, c->max_msg);
			conn->peer_gone = 1;
			break;
		}
		if (tag == TAG_MSG)
			deliver(c, conn, len);
	}
	return did;
}

static uint8_t client_round(struct fake_comch *c)
{
	uint8_t did = 0;

	if (c->ctx.state == DOCA_CTX_STATE_STARTING)
		return client_connecting(c);
	if (c->ctx.state == DOCA_CTX_STATE_RUNNING) {
		did |= client_receive(c);
		if (c->ctx.state == DOCA_CTX_STATE_RUNNING && !c->cconn.peer_gone)
			did |= send_round(c);
		if (c->ctx.state == DOCA_CTX_STATE_RUNNING && c->cconn.peer_gone)
			did |= client_peer_stop(c, DOCA_ERROR_CONNECTION_RESET);
	}
	did |= fake_ctx_fire_pending(&c->ctx);
	did |= stopping_round(c);
	return did;
}

/* ---- context operations ---- */

static uint8_t op_progress(struct doca_ctx *ctx)
{
	struct fake_comch *c = (struct fake_comch *)ctx;
	uint8_t did;

	{
		const char *stuck = getenv("FAKE_COMCH_PROGRESS_BLOCK_FILE");
		struct stat st;

		while (stuck != NULL && *stuck != '\0' && stat(stuck, &st) == 0)
			fake_block_ms(20);
	}
	c->busy++;
	did = fake_ctx_fire_pending(ctx);
	if (c->side == SIDE_SERVER)
		did |= server_round(c);
	else
		did |= client_round(c);
	did |= fake_ctx_fire_pending(ctx);
	c->busy--;
	return did;
}

static doca_error_t op_start(struct doca_ctx *ctx)
{
	struct fake_comch *c = (struct fake_comch *)ctx;
	struct stat st;
	doca_error_t err;
	int fd;

	if (fake_env_flag("FAKE_COMCH_FAIL_START"))
		return DOCA_ERROR_INITIALIZATION;
	err = rendezvous_path(c, &c->addr);
	if (err != DOCA_SUCCESS)
		return err;
	err = pool_prepare(c);
	if (err == DOCA_SUCCESS)
		err = rbuf_prepare(c);
	if (err != DOCA_SUCCESS)
		return err;
	c->pinned = ((uint64_t)c->pool_size + c->recv_queue) * FAKE_PIN_PER_ENTRY;
	if (fake_pin(c->pinned) != DOCA_SUCCESS) {
		c->pinned = 0;
		return DOCA_ERROR_NO_MEMORY;
	}
	c->flush_status = DOCA_ERROR_CONNECTION_ABORTED;
	c->stop_pending = 0;

	if (c->side == SIDE_CLIENT) {
		reset_conn(&c->cconn, c);
		fake_ctx_set_state(ctx, DOCA_CTX_STATE_STARTING);
		return DOCA_ERROR_IN_PROGRESS;
	}

	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	(void)unlink(c->addr.sun_path); /* a stale socket or file from an earlier run */
	if (fd < 0 || bind(fd, (const struct sockaddr *)&c->addr, sizeof(c->addr)) != 0 ||
	    listen(fd, 128) != 0) {
		if (fd >= 0)
			close(fd);
		fake_unpin(c->pinned);
		c->pinned = 0;
		return DOCA_ERROR_INITIALIZATION;
	}
	c->listen_fd = fd;
	c->have_sock = stat(c->addr.sun_path, &st) == 0;
	if (c->have_sock) {
		c->sock_dev = st.st_dev;
		c->sock_ino = st.st_ino;
	}
	fake_ctx_set_state(ctx, DOCA_CTX_STATE_RUNNING);
	return DOCA_SUCCESS;
}

static doca_error_t op_stop(struct doca_ctx *ctx)
{
	struct fake_comch *c = (struct fake_comch *)ctx;

	switch (ctx->state) {
	case DOCA_CTX_STATE_IDLE:
		return DOCA_ERROR_BAD_STATE;
	case DOCA_CTX_STATE_STOPPING:
		return DOCA_ERROR_IN_PROGRESS;
	case DOCA_CTX_STATE_STARTING:
		teardown(c);
		fake_ctx_set_state(ctx, DOCA_CTX_STATE_IDLE);
		return DOCA_SUCCESS;
	case DOCA_CTX_STATE_RUNNING:
		break;
	}
	c->flush_status = DOCA_ERROR_CONNECTION_ABORTED;
	if (c->qhead != NULL || c->allocated > 0) {
		fake_ctx_set_state(ctx, DOCA_CTX_STATE_STOPPING);
		return DOCA_ERROR_IN_PROGRESS;
	}
	teardown(c);
	fake_ctx_set_state(ctx, DOCA_CTX_STATE_IDLE);
	return DOCA_SUCCESS;
}

static doca_error_t op_submit(struct doca_task *task)
{
	struct doca_comch_task_send *t = (struct doca_comch_task_send *)task;
	struct fake_comch *c = t->owner;

	if (task->state == FAKE_TASK_FREE)
		FAKE_FATAL("doca_task_submit() of a task that was freed");
	if (task->state == FAKE_TASK_QUEUED)
		return DOCA_ERROR_BAD_STATE; /* already submitted */
	if (c->ctx.state != DOCA_CTX_STATE_RUNNING)
		return DOCA_ERROR_BAD_STATE;
	task->state = FAKE_TASK_QUEUED;
	task->status = DOCA_SUCCESS;
	t->next = NULL;
	if (c->qtail)
		c->qtail->next = t;
	else
		c->qhead = t;
	c->qtail = t;
	c->ctx.inflight++;
	return DOCA_SUCCESS;
}

static void op_task_free(struct doca_task *task)
{
	struct doca_comch_task_send *t = (struct doca_comch_task_send *)task;
	struct fake_comch *c = t->owner;

	if (task->state == FAKE_TASK_FREE)
		FAKE_FATAL("doca_task_free() of a task that is already free");
	if (task->state == FAKE_TASK_QUEUED)
		FAKE_FATAL("doca_task_free() of a submitted task before its completion");
	task->state = FAKE_TASK_FREE;
	task->user_data.u64 = 0;
	t->msg = NULL;
	t->conn = NULL;
	t->next = c->free_list;
	c->free_list = t;
	c->allocated--;
}

static const struct fake_ctx_ops comch_ops = {
	.start = op_start,
	.stop = op_stop,
	.progress = op_progress,
	.submit = op_submit,
	.task_free = op_task_free,
};

/* ---- create / destroy ---- */

static doca_error_t comch_create(enum side side, struct doca_dev *dev, struct doca_dev_rep *rep,
				 const char *name, struct fake_comch **out)
{
	struct fake_comch *c;
	size_t len;

	if (dev == NULL || name == NULL || out == NULL || (side == SIDE_SERVER && rep == NULL))
		return DOCA_ERROR_INVALID_VALUE;
	len = strlen(name);
	if (len == 0 || len >= FAKE_MAX_NAME_LEN)
		return DOCA_ERROR_INVALID_VALUE;
	if (side == SIDE_SERVER && fake_env_flag("FAKE_COMCH_NO_SERVER_CAP"))
		return DOCA_ERROR_NOT_SUPPORTED;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return DOCA_ERROR_NO_MEMORY;
	c->ctx.ops = &comch_ops;
	c->ctx.state = DOCA_CTX_STATE_IDLE;
	c->side = side;
	c->dev = dev;
	c->rep = rep;
	memcpy(c->name, name, len + 1);
	c->max_msg_cap = cap_max_msg();
	c->max_msg = c->max_msg_cap;
	c->recv_queue = FAKE_DEFAULT_RECV_QUEUE;
	c->tasks_cap = cap_max_send_tasks();
	c->recv_event.owner = c;
	c->conn_event.owner = c;
	c->listen_fd = -1;
	reset_conn(&c->cconn, c);
	c->cconn.closed = 1;
	*out = c;
	return DOCA_SUCCESS;
}

static doca_error_t comch_destroy(struct fake_comch *c)
{
	struct doca_comch_connection *conn, *next;

	if (c == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	if (c->busy || (c->ctx.pe != NULL && c->ctx.pe->busy))
		return DOCA_ERROR_IN_USE; /* from inside a callback of its progress engine */
	if (c->ctx.state != DOCA_CTX_STATE_IDLE)
		return DOCA_ERROR_BAD_STATE;
	teardown(c);
	fake_ctx_detach(&c->ctx);
	for (conn = c->conns; conn != NULL; conn = next) {
		next = conn->next;
		free(conn);
	}
	free(c->pool);
	free(c->rbuf);
	free(c);
	return DOCA_SUCCESS;
}

/* ---- shared setters / task allocation ---- */

static doca_error_t set_max_msg(struct fake_comch *c, uint32_t size)
{
	if (c == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	if (c->ctx.state != DOCA_CTX_STATE_IDLE)
		return DOCA_ERROR_BAD_STATE;
	if (size == 0 || size > c->max_msg_cap)
		return DOCA_ERROR_INVALID_VALUE;
	c->max_msg = size;
	return DOCA_SUCCESS;
}

static doca_error_t get_max_msg(const struct fake_comch *c, uint32_t *size)
{
	if (c == NULL || size == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	*size = c->max_msg;
	return DOCA_SUCCESS;
}

static doca_error_t set_recv_queue(struct fake_comch *c, uint32_t size)
{
	if (c == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	if (c->ctx.state != DOCA_CTX_STATE_IDLE)
		return DOCA_ERROR_BAD_STATE;
	if (size == 0 || size > FAKE_MAX_RECV_QUEUE)
		return DOCA_ERROR_INVALID_VALUE;
	c->recv_queue = size;
	return DOCA_SUCCESS;
}

static doca_error_t get_recv_queue(const struct fake_comch *c, uint32_t *size)
{
	if (c == NULL || size == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	*size = c->recv_queue;
	return DOCA_SUCCESS;
}

static doca_error_t send_set_conf(struct fake_comch *c, doca_comch_task_send_completion_cb_t done,
				  doca_comch_task_send_completion_cb_t err, uint32_t num)
{
	if (c == NULL || done == NULL || err == NULL || num == 0)
		return DOCA_ERROR_INVALID_VALUE;
	if (c->ctx.state != DOCA_CTX_STATE_IDLE)
		return DOCA_ERROR_BAD_STATE;
	c->done_cb = done;
	c->err_cb = err;
	c->tasks_asked = num;
	c->conf_set = 1;
	return DOCA_SUCCESS;
}

static doca_error_t recv_register(struct fake_comch *c, doca_comch_event_msg_recv_cb_t cb)
{
	if (c == NULL || cb == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	if (c->ctx.state != DOCA_CTX_STATE_IDLE)
		return DOCA_ERROR_BAD_STATE;
	c->recv_cb = cb;
	return DOCA_SUCCESS;
}

static doca_error_t alloc_init(struct fake_comch *c, struct doca_comch_connection *conn,
			       const void *msg, uint32_t len, struct doca_comch_task_send **task)
{
	struct doca_comch_task_send *t;

	if (c == NULL || task == NULL || (msg == NULL && len > 0) || len > c->max_msg)
		return DOCA_ERROR_INVALID_VALUE;
	if (c->ctx.state != DOCA_CTX_STATE_RUNNING)
		return DOCA_ERROR_BAD_STATE;
	if (conn == NULL || conn->owner != c)
		return DOCA_ERROR_INVALID_VALUE;
	if (conn->closed)
		return DOCA_ERROR_NOT_CONNECTED;
	if (!c->conf_set)
		return DOCA_ERROR_NOT_PERMITTED; /* task_send_set_conf was never called */
	t = c->free_list;
	if (t == NULL)
		return DOCA_ERROR_NO_MEMORY;
	c->free_list = t->next;
	t->next = NULL;
	t->conn = conn;
	t->msg = msg;
	t->len = len;
	t->base.state = FAKE_TASK_OWNED;
	t->base.status = DOCA_SUCCESS;
	t->base.user_data.u64 = 0;
	c->allocated++;
	*task = t;
	return DOCA_SUCCESS;
}

/* ---- capabilities ---- */

doca_error_t doca_comch_cap_get_max_name_len(const struct doca_devinfo *devinfo,
					     uint32_t *max_name_len)
{
	if (devinfo == NULL || max_name_len == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	*max_name_len = FAKE_MAX_NAME_LEN;
	return DOCA_SUCCESS;
}

doca_error_t doca_comch_cap_get_max_msg_size(const struct doca_devinfo *devinfo, uint32_t *size)
{
	if (devinfo == NULL || size == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	*size = cap_max_msg();
	return DOCA_SUCCESS;
}

doca_error_t doca_comch_cap_get_max_recv_queue_size(const struct doca_devinfo *devinfo,
						    uint32_t *size)
{
	if (devinfo == NULL || size == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	*size = FAKE_MAX_RECV_QUEUE;
	return DOCA_SUCCESS;
}

doca_error_t doca_comch_cap_get_max_clients(const struct doca_devinfo *devinfo,
					    uint32_t *num_clients)
{
	if (devinfo == NULL || num_clients == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	*num_clients = FAKE_MAX_CLIENTS;
	return DOCA_SUCCESS;
}

doca_error_t doca_comch_cap_get_max_send_tasks(const struct doca_devinfo *devinfo,
					       uint32_t *max_send_tasks)
{
	if (devinfo == NULL || max_send_tasks == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	*max_send_tasks = cap_max_send_tasks();
	return DOCA_SUCCESS;
}

doca_error_t doca_comch_cap_server_is_supported(const struct doca_devinfo *devinfo)
{
	if (devinfo == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	return fake_env_flag("FAKE_COMCH_NO_SERVER_CAP") ? DOCA_ERROR_NOT_SUPPORTED : DOCA_SUCCESS;
}

doca_error_t doca_comch_cap_client_is_supported(const struct doca_devinfo *devinfo)
{
	return devinfo == NULL ? DOCA_ERROR_INVALID_VALUE : DOCA_SUCCESS;
}

/* ---- connections ---- */

doca_error_t doca_comch_connection_set_user_data(struct doca_comch_connection *connection,
						 union doca_data user_data)
{
	if (connection == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	connection->user_data = user_data;
	return DOCA_SUCCESS;
}

union doca_data doca_comch_connection_get_user_data(const struct doca_comch_connection *connection)
{
	union doca_data none = { .u64 = 0 };

	return connection == NULL ? none : connection->user_data;
}

struct doca_comch_server *
doca_comch_server_get_server_ctx(const struct doca_comch_connection *connection)
{
	if (connection == NULL || connection->owner->side != SIDE_SERVER)
		return NULL;
	return (struct doca_comch_server *)connection->owner;
}

struct doca_comch_client *
doca_comch_client_get_client_ctx(const struct doca_comch_connection *connection)
{
	if (connection == NULL || connection->owner->side != SIDE_CLIENT)
		return NULL;
	return (struct doca_comch_client *)connection->owner;
}

doca_error_t doca_comch_connection_update_info(struct doca_comch_connection *comch_connection)
{
	struct doca_comch_connection *conn = comch_connection;

	if (conn == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	if (conn->owner->side == SIDE_CLIENT &&
	    conn->owner->ctx.state == DOCA_CTX_STATE_STARTING)
		return DOCA_ERROR_CONNECTION_INPROGRESS;
	memcpy(conn->snap, conn->count, sizeof(conn->snap));
	if (conn->closed || conn->peer_gone)
		return DOCA_ERROR_CONNECTION_ABORTED;
	return DOCA_SUCCESS;
}

doca_error_t doca_comch_connection_get_counter(const struct doca_comch_connection *comch_connection,
					       enum doca_comch_counter counter_type,
					       uint64_t *counter_value)
{
	if (comch_connection == NULL || counter_value == NULL ||
	    counter_type < DOCA_COMCH_COUNTER_SENT_MESSAGES ||
	    counter_type > DOCA_COMCH_COUNTER_RECV_BYTES)
		return DOCA_ERROR_INVALID_VALUE;
	*counter_value = comch_connection->snap[counter_type - 1];
	return DOCA_SUCCESS;
}

/* ---- server ---- */

#define SRV(s) ((s) == NULL ? NULL : &(s)->c)

doca_error_t doca_comch_server_create(struct doca_dev *dev, struct doca_dev_rep *repr,
				      const char *name, struct doca_comch_server **comch_server)
{
	struct fake_comch *c = NULL;
	doca_error_t err;

	if (comch_server == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	err = comch_create(SIDE_SERVER, dev, repr, name, &c);
	if (err == DOCA_SUCCESS)
		*comch_server = (struct doca_comch_server *)c; /* c is its first member */
	return err;
}

doca_error_t doca_comch_server_destroy(struct doca_comch_server *comch_server)
{
	return comch_destroy(SRV(comch_server));
}

doca_error_t doca_comch_server_set_max_msg_size(struct doca_comch_server *comch_server,
						uint32_t size)
{
	return set_max_msg(SRV(comch_server), size);
}

doca_error_t doca_comch_server_get_max_msg_size(const struct doca_comch_server *comch_server,
						uint32_t *size)
{
	return get_max_msg(SRV(comch_server), size);
}

doca_error_t doca_comch_server_set_recv_queue_size(struct doca_comch_server *comch_server,
						   uint32_t size)
{
	return set_recv_queue(SRV(comch_server), size);
}

doca_error_t doca_comch_server_get_recv_queue_size(const struct doca_comch_server *comch_server,
						   uint32_t *size)
{
	return get_recv_queue(SRV(comch_server), size);
}

doca_error_t doca_comch_server_get_device(const struct doca_comch_server *comch_server,
					  struct doca_dev **dev)
{
	if (comch_server == NULL || dev == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	*dev = comch_server->c.dev;
	return DOCA_SUCCESS;
}

#if FAKE_COMCH_API >= 29
doca_error_t doca_comch_server_get_device_rep(const struct doca_comch_server *comch_server,
					      struct doca_dev_rep **rep)
#else
doca_error_t doca_comch_server_get_device_repr(const struct doca_comch_server *comch_server,
					       struct doca_dev_rep **rep)
#endif
{
	if (comch_server == NULL || rep == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	*rep = comch_server->c.rep;
	return DOCA_SUCCESS;
}

struct doca_ctx *doca_comch_server_as_ctx(struct doca_comch_server *comch_server)
{
	return comch_server == NULL ? NULL : &comch_server->c.ctx;
}

doca_error_t doca_comch_server_disconnect(struct doca_comch_server *comch_server,
					  struct doca_comch_connection *connection)
{
	struct fake_comch *c = SRV(comch_server);
	struct doca_comch_connection *conn = connection;

	if (c == NULL || conn == NULL || conn->owner != c)
		return DOCA_ERROR_INVALID_VALUE;
	if (c->ctx.state == DOCA_CTX_STATE_IDLE)
		return DOCA_ERROR_BAD_STATE;
	if (conn->closed)
		return DOCA_ERROR_NOT_CONNECTED;
	if (!conn->again_done && fake_env_flag("FAKE_COMCH_DISCONNECT_AGAIN")) {
		conn->again_done = 1;
		return DOCA_ERROR_AGAIN;
	}
	if (!conn->peer_gone && conn->fd >= 0 &&
	    send_packet(conn->fd, TAG_DISCONNECT, NULL, 0) == 1)
		return DOCA_ERROR_AGAIN; /* the peer's queue is full: call again later */
	conn->closed = 1;
	conn->local = 1;
	conn->report = 1; /* the disconnection callback fires during the next progress */
	close_fd(&conn->fd);
	return DOCA_SUCCESS;
}

doca_error_t doca_comch_server_task_send_set_conf(struct doca_comch_server *comch_server,
						  doca_comch_task_send_completion_cb_t task_completion_cb,
						  doca_comch_task_send_completion_cb_t task_error_cb,
						  uint32_t num_send_tasks)
{
	return send_set_conf(SRV(comch_server), task_completion_cb, task_error_cb, num_send_tasks);
}

doca_error_t doca_comch_server_task_send_alloc_init(struct doca_comch_server *comch_server,
						    struct doca_comch_connection *peer,
						    const void *msg, uint32_t len,
						    struct doca_comch_task_send **task)
{
	return alloc_init(SRV(comch_server), peer, msg, len, task);
}

doca_error_t doca_comch_server_event_msg_recv_register(struct doca_comch_server *comch_server,
						       doca_comch_event_msg_recv_cb_t recv_event_cb)
{
	return recv_register(SRV(comch_server), recv_event_cb);
}

static doca_error_t connection_register(struct fake_comch *c,
					doca_comch_event_connection_status_changed_cb_t conn_cb,
					doca_comch_event_connection_status_changed_cb_t disconn_cb)
{
	if (c == NULL || conn_cb == NULL || disconn_cb == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	if (c->ctx.state != DOCA_CTX_STATE_IDLE)
		return DOCA_ERROR_BAD_STATE;
	c->conn_cb = conn_cb;
	c->disconn_cb = disconn_cb;
	return DOCA_SUCCESS;
}

#if FAKE_COMCH_API >= 29
doca_error_t doca_comch_server_event_connection_status_changed_register(
	struct doca_comch_server *comch_server,
	doca_comch_event_connection_status_changed_cb_t connect_event_cb,
	doca_comch_event_connection_status_changed_cb_t disconnect_event_cb)
#else
doca_error_t doca_comch_server_event_connection_register(
	struct doca_comch_server *comch_server,
	doca_comch_event_connection_status_changed_cb_t connect_event_cb,
	doca_comch_event_connection_status_changed_cb_t disconnect_event_cb)
#endif
{
	return connection_register(SRV(comch_server), connect_event_cb, disconnect_event_cb);
}

/* ---- client ---- */

#define CLI(s) ((s) == NULL ? NULL : &(s)->c)

doca_error_t doca_comch_client_create(struct doca_dev *dev, const char *name,
				      struct doca_comch_client **comch_client)
{
	struct fake_comch *c = NULL;
	doca_error_t err;

	if (comch_client == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	err = comch_create(SIDE_CLIENT, dev, NULL, name, &c);
	if (err == DOCA_SUCCESS)
		*comch_client = (struct doca_comch_client *)c; /* c is its first member */
	return err;
}

doca_error_t doca_comch_client_destroy(struct doca_comch_client *comch_client)
{
	return comch_destroy(CLI(comch_client));
}

doca_error_t doca_comch_client_set_max_msg_size(struct doca_comch_client *comch_client,
						uint32_t size)
{
	return set_max_msg(CLI(comch_client), size);
}

doca_error_t doca_comch_client_get_max_msg_size(const struct doca_comch_client *comch_client,
						uint32_t *size)
{
	return get_max_msg(CLI(comch_client), size);
}

doca_error_t doca_comch_client_set_recv_queue_size(struct doca_comch_client *comch_client,
						   uint32_t size)
{
	return set_recv_queue(CLI(comch_client), size);
}

doca_error_t doca_comch_client_get_recv_queue_size(const struct doca_comch_client *comch_client,
						   uint32_t *size)
{
	return get_recv_queue(CLI(comch_client), size);
}

doca_error_t doca_comch_client_get_device(const struct doca_comch_client *comch_client,
					  struct doca_dev **dev)
{
	if (comch_client == NULL || dev == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	*dev = comch_client->c.dev;
	return DOCA_SUCCESS;
}

struct doca_ctx *doca_comch_client_as_ctx(struct doca_comch_client *comch_client)
{
	return comch_client == NULL ? NULL : &comch_client->c.ctx;
}

doca_error_t doca_comch_client_get_connection(const struct doca_comch_client *comch_client,
					      struct doca_comch_connection **connection)
{
	if (comch_client == NULL || connection == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	if (comch_client->c.ctx.state != DOCA_CTX_STATE_RUNNING)
		return DOCA_ERROR_BAD_STATE;
	*connection = (struct doca_comch_connection *)&comch_client->c.cconn;
	return DOCA_SUCCESS;
}

doca_error_t doca_comch_client_task_send_set_conf(struct doca_comch_client *comch_client,
						  doca_comch_task_send_completion_cb_t task_completion_cb,
						  doca_comch_task_send_completion_cb_t task_error_cb,
						  uint32_t num_send_tasks)
{
	return send_set_conf(CLI(comch_client), task_completion_cb, task_error_cb, num_send_tasks);
}

doca_error_t doca_comch_client_task_send_alloc_init(struct doca_comch_client *comch_client,
						    struct doca_comch_connection *peer,
						    const void *msg, uint32_t len,
						    struct doca_comch_task_send **task)
{
	return alloc_init(CLI(comch_client), peer, msg, len, task);
}

doca_error_t doca_comch_client_event_msg_recv_register(struct doca_comch_client *comch_client,
						       doca_comch_event_msg_recv_cb_t recv_event_cb)
{
	return recv_register(CLI(comch_client), recv_event_cb);
}

struct doca_task *doca_comch_task_send_as_task(struct doca_comch_task_send *task)
{
	return task == NULL ? NULL : &task->base;
}
