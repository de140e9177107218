/*
 * Fake libdoca_comm_channel.so.2 for the tests of doca-socket-relay.
 *
 * Transport: one AF_UNIX SOCK_SEQPACKET connection per peer. The service (ep_listen) binds
 * $FAKE_DOCA_DIR/<name>; clients (ep_connect) connect to it. Every packet is one message made
 * of a one-byte tag followed by the payload, so that a zero-length read always means "peer
 * hung up" even for empty messages.
 *
 * Environment:
 *   FAKE_DOCA_DIR            rendezvous directory (required by listen/connect)
 *   FAKE_DOCA_CONNECT_POLLS  update_info calls answered CONNECTION_INPROGRESS (default 3)
 *   FAKE_DOCA_SNDBUF         SO_SNDBUF in bytes for every connection socket, overriding
 *                            send_queue_size * (max_msg_size + 1); raised to at least
 *                            max_msg_size + 64 so one message of the maximal size always fits
 *   FAKE_DOCA_DISCONNECT_MS  ep_disconnect blocks this long (and ep_destroy, which disconnects
 *                            too, once when a peer is still connected), as the real call
 *                            blocks "until all resources related to peer address are freed"
 *   FAKE_DOCA_SAME_EVENT_FD=1  get_event_channel hands out one fd for both directions
 *   FAKE_DOCA_STICKY_EVENT=1   the receive event fd stays readable whether or not anything
 *                            arrived (an event nobody consumes)
 *   FAKE_DOCA_LISTEN_NOT_PERMITTED=1  ep_listen fails with NOT_PERMITTED (a card refusing an
 *                            unprivileged user)
 *   FAKE_DOCA_ARM_FAIL=1     arming either event channel fails with DRIVER
 *   FAKE_DOCA_NO_SEND_EVENT=1  arming the send channel never makes its fd readable (a missed
 *                            send event: only trying again finds the room)
 *   FAKE_DOCA_SERVICE_ERROR_FILE  while this file exists, update_service_state_info reports
 *                            the service in an unrecoverable state (CONNECTION_RESET)
 *
 * Locked memory: listen/connect pin (send + receive queue entries) * FAKE_PIN_PER_ENTRY bytes
 * against RLIMIT_MEMLOCK and fail with NO_MEMORY past it (see fake_devices.h).
 *
 * Event channels: each endpoint owns two epoll fds (send, receive) that it hands out as its
 * event channels. Disarmed, a set watches nothing but an internal eventfd ("kick") that is kept
 * at zero. Arming the receive channel adds the listening socket and every connected peer socket
 * with EPOLLIN; arming the send channel adds, with EPOLLOUT, the peers whose last send hit a
 * full queue, or kicks the eventfd when no peer is waiting for room (there is room now). An
 * operation that delivers something (recvfrom returning a message or a reset, sendto
 * succeeding) disarms its channel; one that returns AGAIN leaves the arming in place, so the
 * sequence "AGAIN -> arm -> retry -> AGAIN -> wait" never loses a wake-up.
 *
 * Not thread-safe; nothing blocks or sleeps except disconnect and destroy (see above).
 */
#include "fake_doca.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#define MSG_TAG 0x4du /* first byte of every packet */

enum peer_state {
	PEER_CONNECTING, /* client: connect() hit a full backlog, retried by update_info */
	PEER_CONNECTED,
	PEER_FAILED, /* client: connect() failed, no service */
	PEER_RESET,  /* the other side hung up; socket closed */
	PEER_CLOSED, /* ep_disconnect() was called */
};

enum ep_mode {
	EP_IDLE,
	EP_SERVICE,
	EP_CLIENT,
};

struct doca_comm_channel_addr_t {
	struct doca_comm_channel_ep_t *ep;
	struct doca_comm_channel_addr_t *next;
	int fd;
	enum peer_state state;
	uint32_t polls_left;  /* update_info calls still answered INPROGRESS */
	uint64_t user_data;
	int send_broken;      /* a send saw the other side gone */
	int blocked;          /* the last send to this peer returned AGAIN */
	int in_rset, in_sset; /* registered in the receive / send epoll set */
	struct sockaddr_un sun; /* client: service address, for connect retries */
};

struct doca_comm_channel_ep_t {
	struct doca_dev *dev;
	struct doca_dev_rep *rep;
	uint16_t req_msg; /* requested max message size, 0 = device maximum */
	uint16_t msg;     /* max message size in force once active */
	uint16_t sq, rq;
	enum ep_mode mode;

	int listen_fd;
	int listen_in_rset;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	dev_t sock_dev;
	ino_t sock_ino;
	int have_sock_id;

	uint64_t pinned;            /* bytes charged against RLIMIT_MEMLOCK */
	int sticky;                 /* FAKE_DOCA_STICKY_EVENT: the receive kick is never cleared */
	int both_epfd;              /* FAKE_DOCA_SAME_EVENT_FD: one set holding both */
	int recv_epfd, send_epfd;   /* the event channels handed to the user */
	int recv_kick, send_kick;   /* eventfds inside them */
	int recv_armed, send_armed;

	struct doca_comm_channel_addr_t *peers, *tail; /* in connection order, kept until destroy */
	struct doca_comm_channel_addr_t *client;       /* client: the current peer */
	struct doca_comm_channel_addr_t *cursor;       /* service: last peer served */
};

/* ---- small helpers ---- */

static void set_add(int epfd, int fd, uint32_t events)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = events;
	ev.data.fd = fd;
	(void)epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

static void set_del(int epfd, int fd)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	(void)epoll_ctl(epfd, EPOLL_CTL_DEL, fd, &ev);
}

static void kick(int efd)
{
	uint64_t one = 1;
	ssize_t r = write(efd, &one, sizeof(one));

	(void)r;
}

static void unkick(int efd)
{
	uint64_t v;
	ssize_t r = read(efd, &v, sizeof(v)); /* non-blocking eventfd: EAGAIN when zero */

	(void)r;
}

static void unkick_recv(struct doca_comm_channel_ep_t *ep)
{
	if (!ep->sticky)
		unkick(ep->recv_kick);
}

static int is_active(const struct doca_comm_channel_ep_t *ep)
{
	return ep->mode != EP_IDLE;
}

static uint32_t dev_max_msg(const struct doca_comm_channel_ep_t *ep)
{
	const struct doca_devinfo *info = ep->dev ? doca_dev_as_devinfo(ep->dev) : NULL;

	return info ? info->max_msg : FAKE_DEFAULT_MAX_MSG;
}

/* The max message size that listen/connect would put in force. */
static uint32_t effective_msg(const struct doca_comm_channel_ep_t *ep)
{
	if (ep->req_msg == 0)
		return dev_max_msg(ep);
	return ep->req_msg < FAKE_MIN_MSG ? FAKE_MIN_MSG : ep->req_msg;
}

static uint16_t round_queue(uint16_t size)
{
	uint32_t q = FAKE_MIN_QUEUE;

	while (q < size)
		q <<= 1;
	return (uint16_t)q;
}

static void apply_sndbuf(const struct doca_comm_channel_ep_t *ep, int fd)
{
	uint64_t want = (uint64_t)ep->sq * ((uint64_t)ep->msg + 1u);
	uint64_t floor = (uint64_t)ep->msg + 64u;
	int v;

	want = fake_env_u64("FAKE_DOCA_SNDBUF", want);
	if (want < floor)
		want = floor;
	if (want > (uint64_t)INT_MAX)
		want = (uint64_t)INT_MAX;
	v = (int)want;
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
}

/* Builds $FAKE_DOCA_DIR/<name>. */
static doca_error_t service_path(const char *name, struct sockaddr_un *sun)
{
	const char *dir = getenv("FAKE_DOCA_DIR");
	int n;

	if (dir == NULL || *dir == '\0')
		return DOCA_ERROR_INITIALIZATION;
	if (*name == '\0' || strchr(name, '/') != NULL)
		return DOCA_ERROR_INVALID_VALUE;
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	n = snprintf(sun->sun_path, sizeof(sun->sun_path), "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= sizeof(sun->sun_path))
		return DOCA_ERROR_INVALID_VALUE;
	return DOCA_SUCCESS;
}

/* Fixes the sizes at activation and pins the queues. */
static doca_error_t activate_sizes(struct doca_comm_channel_ep_t *ep)
{
	uint32_t m = effective_msg(ep);
	uint64_t pin = ((uint64_t)ep->sq + ep->rq) * FAKE_PIN_PER_ENTRY;

	if (m > dev_max_msg(ep))
		return DOCA_ERROR_INVALID_VALUE;
	if (fake_pin(pin) != DOCA_SUCCESS)
		return DOCA_ERROR_NO_MEMORY;
	ep->pinned = pin;
	ep->msg = (uint16_t)m;
	return DOCA_SUCCESS;
}

static struct doca_comm_channel_addr_t *peer_new(struct doca_comm_channel_ep_t *ep, int fd,
						 enum peer_state state)
{
	struct doca_comm_channel_addr_t *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	p->ep = ep;
	p->fd = fd;
	p->state = state;
	if (ep->tail)
		ep->tail->next = p;
	else
		ep->peers = p;
	ep->tail = p;
	return p;
}

static void peer_close_fd(struct doca_comm_channel_ep_t *ep, struct doca_comm_channel_addr_t *p)
{
	if (p->fd < 0)
		return;
	if (p->in_rset) {
		set_del(ep->recv_epfd, p->fd);
		p->in_rset = 0;
	}
	if (p->in_sset) {
		set_del(ep->send_epfd, p->fd);
		p->in_sset = 0;
		/* a sender waiting for room on this peer must wake up and see the error */
		if (ep->send_armed)
			kick(ep->send_kick);
	}
	close(p->fd);
	p->fd = -1;
	p->blocked = 0;
}

static int peer_live(const struct doca_comm_channel_addr_t *p)
{
	return p->state == PEER_CONNECTED && p->fd >= 0;
}

/* ---- arming ---- */

static void recv_disarm(struct doca_comm_channel_ep_t *ep)
{
	struct doca_comm_channel_addr_t *p;

	for (p = ep->peers; p; p = p->next) {
		if (p->in_rset) {
			set_del(ep->recv_epfd, p->fd);
			p->in_rset = 0;
		}
	}
	if (ep->listen_in_rset) {
		set_del(ep->recv_epfd, ep->listen_fd);
		ep->listen_in_rset = 0;
	}
	unkick_recv(ep);
	ep->recv_armed = 0;
}

static void recv_arm(struct doca_comm_channel_ep_t *ep)
{
	struct doca_comm_channel_addr_t *p;

	unkick_recv(ep);
	ep->recv_armed = 1;
	if (ep->listen_fd >= 0 && !ep->listen_in_rset) {
		set_add(ep->recv_epfd, ep->listen_fd, EPOLLIN);
		ep->listen_in_rset = 1;
	}
	for (p = ep->peers; p; p = p->next) {
		if (peer_live(p) && !p->in_rset) {
			set_add(ep->recv_epfd, p->fd, EPOLLIN);
			p->in_rset = 1;
		}
	}
	/* client without a working connection: recvfrom has an error to report right away */
	if (ep->mode == EP_CLIENT && (ep->client == NULL || !peer_live(ep->client)))
		kick(ep->recv_kick);
}

static void send_disarm(struct doca_comm_channel_ep_t *ep)
{
	struct doca_comm_channel_addr_t *p;

	for (p = ep->peers; p; p = p->next) {
		if (p->in_sset) {
			set_del(ep->send_epfd, p->fd);
			p->in_sset = 0;
		}
	}
	unkick(ep->send_kick);
	ep->send_armed = 0;
}

static void send_arm(struct doca_comm_channel_ep_t *ep)
{
	struct doca_comm_channel_addr_t *p;
	int waiting = 0;

	unkick(ep->send_kick);
	ep->send_armed = 1;
	for (p = ep->peers; p; p = p->next) {
		if (peer_live(p) && p->blocked && !p->send_broken) {
			if (!p->in_sset) {
				set_add(ep->send_epfd, p->fd, EPOLLOUT);
				p->in_sset = 1;
			}
			waiting = 1;
		}
	}
	/* no peer is waiting for room: the queue has room (or an error to report) now */
	if (!waiting)
		kick(ep->send_kick);
}

/* ---- capabilities ---- */

doca_error_t doca_comm_channel_get_max_message_size(struct doca_devinfo *devinfo, uint32_t *max)
{
	if (devinfo == NULL || max == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	*max = devinfo->max_msg;
	return DOCA_SUCCESS;
}

doca_error_t doca_comm_channel_get_max_send_queue_size(struct doca_devinfo *devinfo, uint32_t *max)
{
	if (devinfo == NULL || max == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	*max = FAKE_MAX_QUEUE;
	return DOCA_SUCCESS;
}

doca_error_t doca_comm_channel_get_max_recv_queue_size(struct doca_devinfo *devinfo, uint32_t *max)
{
	if (devinfo == NULL || max == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	*max = FAKE_MAX_QUEUE;
	return DOCA_SUCCESS;
}

/* ---- endpoint lifecycle ---- */

doca_error_t doca_comm_channel_ep_create(struct doca_comm_channel_ep_t **ep_out)
{
	struct doca_comm_channel_ep_t *ep;

	if (ep_out == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	ep = calloc(1, sizeof(*ep));
	if (ep == NULL)
		return DOCA_ERROR_NO_MEMORY;
	ep->listen_fd = -1;
	ep->both_epfd = -1;
	ep->sq = round_queue(FAKE_DEFAULT_QUEUE);
	ep->rq = round_queue(FAKE_DEFAULT_QUEUE);
	ep->recv_epfd = epoll_create1(EPOLL_CLOEXEC);
	ep->send_epfd = epoll_create1(EPOLL_CLOEXEC);
	ep->recv_kick = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ep->send_kick = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (ep->recv_epfd < 0 || ep->send_epfd < 0 || ep->recv_kick < 0 || ep->send_kick < 0) {
		if (ep->recv_epfd >= 0)
			close(ep->recv_epfd);
		if (ep->send_epfd >= 0)
			close(ep->send_epfd);
		if (ep->recv_kick >= 0)
			close(ep->recv_kick);
		if (ep->send_kick >= 0)
			close(ep->send_kick);
		free(ep);
		return DOCA_ERROR_INITIALIZATION;
	}
	set_add(ep->recv_epfd, ep->recv_kick, EPOLLIN);
	set_add(ep->send_epfd, ep->send_kick, EPOLLIN);
	if (fake_env_flag("FAKE_DOCA_SAME_EVENT_FD")) {
		ep->both_epfd = epoll_create1(EPOLL_CLOEXEC);
		set_add(ep->both_epfd, ep->recv_epfd, EPOLLIN);
		set_add(ep->both_epfd, ep->send_epfd, EPOLLIN);
	}
	if (fake_env_flag("FAKE_DOCA_STICKY_EVENT")) {
		ep->sticky = 1;
		kick(ep->recv_kick);
	}
	*ep_out = ep;
	return DOCA_SUCCESS;
}

doca_error_t doca_comm_channel_ep_destroy(struct doca_comm_channel_ep_t *ep)
{
	struct doca_comm_channel_addr_t *p, *next;
	struct stat st;

	if (ep == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	for (p = ep->peers; p; p = p->next) {
		if (p->state != PEER_CLOSED) {
			fake_block_ms(fake_env_u64("FAKE_DOCA_DISCONNECT_MS", 0));
			break;
		}
	}
	for (p = ep->peers; p; p = next) {
		next = p->next;
		if (p->fd >= 0)
			close(p->fd);
		free(p);
	}
	if (ep->listen_fd >= 0) {
		close(ep->listen_fd);
		/* remove our socket file, unless another service has replaced it since */
		if (ep->have_sock_id && stat(ep->path, &st) == 0 && st.st_dev == ep->sock_dev &&
		    st.st_ino == ep->sock_ino)
			(void)unlink(ep->path);
	}
	fake_unpin(ep->pinned);
	if (ep->both_epfd >= 0)
		close(ep->both_epfd);
	close(ep->recv_epfd);
	close(ep->send_epfd);
	close(ep->recv_kick);
	close(ep->send_kick);
	free(ep);
	return DOCA_SUCCESS;
}

/* ---- properties ---- */

doca_error_t doca_comm_channel_ep_set_device(struct doca_comm_channel_ep_t *ep, struct doca_dev *dev)
{
	if (ep == NULL || dev == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	if (is_active(ep))
		return DOCA_ERROR_BAD_STATE;
	ep->dev = dev;
	return DOCA_SUCCESS;
}

doca_error_t doca_comm_channel_ep_set_device_rep(struct doca_comm_channel_ep_t *ep,
						 struct doca_dev_rep *dev_rep)
{
	if (ep == NULL || dev_rep == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	if (is_active(ep))
		return DOCA_ERROR_BAD_STATE;
	ep->rep = dev_rep;
	return DOCA_SUCCESS;
}

doca_error_t doca_comm_channel_ep_set_max_msg_size(struct doca_comm_channel_ep_t *ep, uint16_t size)
{
	if (ep == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	if (is_active(ep))
		return DOCA_ERROR_BAD_STATE;
	if (ep->dev != NULL && size > dev_max_msg(ep))
		return DOCA_ERROR_INVALID_VALUE;
	ep->req_msg = size;
	return DOCA_SUCCESS;
}

static doca_error_t set_queue(struct doca_comm_channel_ep_t *ep, uint16_t size, uint16_t *field)
{
	if (ep == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	if (is_active(ep))
		return DOCA_ERROR_BAD_STATE;
	if (size > FAKE_MAX_QUEUE)
		return DOCA_ERROR_INVALID_VALUE;
	*field = round_queue(size);
	return DOCA_SUCCESS;
}

doca_error_t doca_comm_channel_ep_set_send_queue_size(struct doca_comm_channel_ep_t *ep, uint16_t size)
{
	return set_queue(ep, size, ep ? &ep->sq : NULL);
}

doca_error_t doca_comm_channel_ep_set_recv_queue_size(struct doca_comm_channel_ep_t *ep, uint16_t size)
{
	return set_queue(ep, size, ep ? &ep->rq : NULL);
}

doca_error_t doca_comm_channel_ep_get_max_msg_size(struct doca_comm_channel_ep_t *ep, uint16_t *size)
{
	if (ep == NULL || size == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	*size = is_active(ep) ? ep->msg : (uint16_t)effective_msg(ep);
	return DOCA_SUCCESS;
}

doca_error_t doca_comm_channel_ep_get_send_queue_size(struct doca_comm_channel_ep_t *ep,
						      uint16_t *size)
{
	if (ep == NULL || size == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	*size = ep->sq;
	return DOCA_SUCCESS;
}

doca_error_t doca_comm_channel_ep_get_recv_queue_size(struct doca_comm_channel_ep_t *ep,
						      uint16_t *size)
{
	if (ep == NULL || size == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	*size = ep->rq;
	return DOCA_SUCCESS;
}

/* ---- listen / connect ---- */

doca_error_t doca_comm_channel_ep_listen(struct doca_comm_channel_ep_t *ep, const char *name)
{
	struct sockaddr_un sun;
	struct stat st;
	doca_error_t r;
	int fd;

	if (ep == NULL || name == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	if (is_active(ep))
		return DOCA_ERROR_NOT_PERMITTED;
	if (ep->dev == NULL || ep->rep == NULL)
		return DOCA_ERROR_BAD_STATE;
	if (fake_env_flag("FAKE_DOCA_LISTEN_NOT_PERMITTED"))
		return DOCA_ERROR_NOT_PERMITTED;
	r = service_path(name, &sun);
	if (r != DOCA_SUCCESS)
		return r;
	r = activate_sizes(ep);
	if (r != DOCA_SUCCESS)
		return r;

	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return DOCA_ERROR_INITIALIZATION;
	(void)unlink(sun.sun_path); /* a stale socket of an earlier service */
	if (bind(fd, (const struct sockaddr *)&sun, sizeof(sun)) != 0 || listen(fd, SOMAXCONN) != 0) {
		close(fd);
		return DOCA_ERROR_CONNECTION_ABORTED;
	}
	ep->listen_fd = fd;
	memcpy(ep->path, sun.sun_path, sizeof(ep->path));
	if (stat(ep->path, &st) == 0) {
		ep->sock_dev = st.st_dev;
		ep->sock_ino = st.st_ino;
		ep->have_sock_id = 1;
	}
	ep->mode = EP_SERVICE;
	return DOCA_SUCCESS;
}

doca_error_t doca_comm_channel_ep_connect(struct doca_comm_channel_ep_t *ep, const char *name,
					  struct doca_comm_channel_addr_t **peer_addr)
{
	struct doca_comm_channel_addr_t *p;
	struct sockaddr_un sun;
	enum peer_state state;
	doca_error_t r;
	int fd;

	if (ep == NULL || name == NULL || peer_addr == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	if (ep->mode == EP_SERVICE)
		return DOCA_ERROR_NOT_PERMITTED;
	/* a client may connect again once its previous peer was disconnected */
	if (ep->mode == EP_CLIENT && ep->client != NULL && ep->client->state != PEER_CLOSED)
		return DOCA_ERROR_NOT_PERMITTED;
	if (ep->dev == NULL)
		return DOCA_ERROR_BAD_STATE;
	r = service_path(name, &sun);
	if (r != DOCA_SUCCESS)
		return r;
	if (ep->mode == EP_IDLE) {
		r = activate_sizes(ep);
		if (r != DOCA_SUCCESS)
			return r;
	}

	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return DOCA_ERROR_INITIALIZATION;
	apply_sndbuf(ep, fd);
	if (connect(fd, (const struct sockaddr *)&sun, sizeof(sun)) == 0) {
		state = PEER_CONNECTED;
	} else if (errno == EAGAIN || errno == EINPROGRESS || errno == EINTR) {
		state = PEER_CONNECTING; /* listen backlog full: retried by update_info */
	} else {
		close(fd);
		fd = -1;
		state = PEER_FAILED; /* no service: reported by update_info */
	}
	p = peer_new(ep, fd, state);
	if (p == NULL) {
		if (fd >= 0)
			close(fd);
		return DOCA_ERROR_NO_MEMORY;
	}
	p->sun = sun;
	p->polls_left = (uint32_t)fake_env_u64("FAKE_DOCA_CONNECT_POLLS", FAKE_DEFAULT_CONNECT_POLLS);
	ep->client = p;
	ep->mode = EP_CLIENT;
	if (ep->recv_armed)
		recv_arm(ep);
	*peer_addr = p;
	return DOCA_SUCCESS;
}

doca_error_t doca_comm_channel_peer_addr_update_info(struct doca_comm_channel_addr_t *peer)
{
	struct pollfd pfd;

	if (peer == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	if (peer->polls_left > 0) {
		peer->polls_left--;
		return DOCA_ERROR_CONNECTION_INPROGRESS;
	}
	switch (peer->state) {
	case PEER_CONNECTING:
		if (connect(peer->fd, (const struct sockaddr *)&peer->sun, sizeof(peer->sun)) == 0 ||
		    errno == EISCONN) {
			peer->state = PEER_CONNECTED;
			if (peer->ep->recv_armed)
				recv_arm(peer->ep);
			return DOCA_SUCCESS;
		}
		if (errno == EAGAIN || errno == EINPROGRESS || errno == EINTR || errno == EALREADY)
			return DOCA_ERROR_CONNECTION_INPROGRESS;
		peer_close_fd(peer->ep, peer);
		peer->state = PEER_FAILED;
		return DOCA_ERROR_CONNECTION_ABORTED;
	case PEER_CONNECTED:
		if (peer->send_broken)
			return DOCA_ERROR_CONNECTION_ABORTED;
		/* the other side hung up (messages sent before may still be waiting) */
		pfd.fd = peer->fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		if (poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLHUP | POLLERR)))
			return DOCA_ERROR_CONNECTION_ABORTED;
		return DOCA_SUCCESS;
	case PEER_FAILED:
	case PEER_RESET:
		return DOCA_ERROR_CONNECTION_ABORTED;
	case PEER_CLOSED:
	default:
		return DOCA_ERROR_NOT_CONNECTED;
	}
}

/* ---- event channels ---- */

doca_error_t doca_comm_channel_ep_get_event_channel(struct doca_comm_channel_ep_t *ep, int *send_fd,
						    int *recv_fd)
{
	if (ep == NULL || (send_fd == NULL && recv_fd == NULL))
		return DOCA_ERROR_INVALID_VALUE;
	if (!is_active(ep))
		return DOCA_ERROR_BAD_STATE;
	if (send_fd)
		*send_fd = ep->both_epfd >= 0 ? ep->both_epfd : ep->send_epfd;
	if (recv_fd)
		*recv_fd = ep->both_epfd >= 0 ? ep->both_epfd : ep->recv_epfd;
	return DOCA_SUCCESS;
}

doca_error_t doca_comm_channel_ep_event_handle_arm_send(struct doca_comm_channel_ep_t *ep)
{
	if (ep == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	if (!is_active(ep))
		return DOCA_ERROR_BAD_STATE;
	if (fake_env_flag("FAKE_DOCA_ARM_FAIL"))
		return DOCA_ERROR_DRIVER;
	if (fake_env_flag("FAKE_DOCA_NO_SEND_EVENT"))
		return DOCA_SUCCESS;
	send_arm(ep);
	return DOCA_SUCCESS;
}

doca_error_t doca_comm_channel_ep_event_handle_arm_recv(struct doca_comm_channel_ep_t *ep)
{
	if (ep == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	if (!is_active(ep))
		return DOCA_ERROR_BAD_STATE;
	if (fake_env_flag("FAKE_DOCA_ARM_FAIL"))
		return DOCA_ERROR_DRIVER;
	recv_arm(ep);
	return DOCA_SUCCESS;
}

/* ---- data path ---- */

doca_error_t doca_comm_channel_ep_sendto(struct doca_comm_channel_ep_t *ep, const void *msg, size_t len,
					 int flags, struct doca_comm_channel_addr_t *peer)
{
	unsigned char tag = MSG_TAG;
	struct iovec iov[2];
	struct msghdr mh;
	ssize_t r;

	(void)flags; /* no flags are defined */
	if (ep == NULL || (msg == NULL && len > 0))
		return DOCA_ERROR_INVALID_VALUE;
	if (peer == NULL || peer->ep != ep || !is_active(ep))
		return DOCA_ERROR_NOT_CONNECTED;
	if (len > ep->msg)
		return DOCA_ERROR_INVALID_VALUE;
	switch (peer->state) {
	case PEER_CONNECTED:
		break;
	case PEER_RESET:
		return DOCA_ERROR_CONNECTION_RESET;
	default:
		return DOCA_ERROR_NOT_CONNECTED;
	}
	if (peer->send_broken || peer->fd < 0)
		return DOCA_ERROR_CONNECTION_RESET;

	iov[0].iov_base = &tag;
	iov[0].iov_len = 1;
	iov[1].iov_base = (void *)(uintptr_t)msg;
	iov[1].iov_len = len;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = iov;
	mh.msg_iovlen = 2;
	do {
		r = sendmsg(peer->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	} while (r < 0 && errno == EINTR);

	if (r >= 0) {
		peer->blocked = 0;
		send_disarm(ep);
		return DOCA_SUCCESS;
	}
	switch (errno) {
	case EAGAIN:
#if EWOULDBLOCK != EAGAIN
	case EWOULDBLOCK:
#endif
	case ENOBUFS:
		peer->blocked = 1;
		if (ep->send_armed) {
			/* armed while nobody waited: swap the kick for this peer's room */
			if (!peer->in_sset) {
				set_add(ep->send_epfd, peer->fd, EPOLLOUT);
				peer->in_sset = 1;
			}
			unkick(ep->send_kick);
		}
		return DOCA_ERROR_AGAIN;
	case EPIPE:
	case ECONNRESET:
	case ENOTCONN:
	case ECONNREFUSED:
		peer->send_broken = 1;
		peer->blocked = 0;
		if (peer->in_sset) {
			set_del(ep->send_epfd, peer->fd);
			peer->in_sset = 0;
		}
		return DOCA_ERROR_CONNECTION_RESET;
	case EMSGSIZE:
		return DOCA_ERROR_INVALID_VALUE;
	default:
		return DOCA_ERROR_UNKNOWN;
	}
}

/*
 * Tries to take one message from `p`. Returns AGAIN when none is waiting. A message larger than
 * *len stays queued: INVALID_VALUE with *len set to the size needed.
 */
static doca_error_t recv_one(struct doca_comm_channel_ep_t *ep, struct doca_comm_channel_addr_t *p,
			     void *msg, size_t *len, struct doca_comm_channel_addr_t **peer_out)
{
	unsigned char tag;
	struct iovec iov[2];
	struct msghdr mh;
	ssize_t n;

	do {
		n = recv(p->fd, &tag, 1, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return DOCA_ERROR_AGAIN;
	if (n <= 0)
		goto hung_up;
	if ((size_t)n - 1 > *len) {
		*len = (size_t)n - 1;
		*peer_out = p;
		return DOCA_ERROR_INVALID_VALUE;
	}

	iov[0].iov_base = &tag;
	iov[0].iov_len = 1;
	iov[1].iov_base = msg;
	iov[1].iov_len = *len;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = iov;
	mh.msg_iovlen = 2;
	do {
		n = recvmsg(p->fd, &mh, MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return DOCA_ERROR_AGAIN;
	if (n <= 0)
		goto hung_up;
	*len = (size_t)n - 1;
	*peer_out = p;
	return DOCA_SUCCESS;

hung_up:
	peer_close_fd(ep, p);
	p->state = PEER_RESET;
	*peer_out = p;
	return DOCA_ERROR_CONNECTION_RESET;
}

static void accept_pending(struct doca_comm_channel_ep_t *ep)
{
	struct doca_comm_channel_addr_t *p;
	int fd;

	for (;;) {
		fd = accept4(ep->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return; /* EAGAIN, or out of fds: try again on the next call */
		}
		p = peer_new(ep, fd, PEER_CONNECTED);
		if (p == NULL) {
			close(fd);
			return;
		}
		apply_sndbuf(ep, fd);
		if (ep->recv_armed) {
			set_add(ep->recv_epfd, fd, EPOLLIN);
			p->in_rset = 1;
		}
	}
}

doca_error_t doca_comm_channel_ep_recvfrom(struct doca_comm_channel_ep_t *ep, void *msg, size_t *len,
					   int flags, struct doca_comm_channel_addr_t **peer_addr)
{
	struct doca_comm_channel_addr_t *start, *p;
	doca_error_t r;

	(void)flags; /* no flags are defined */
	if (ep == NULL || len == NULL || peer_addr == NULL || (msg == NULL && *len > 0))
		return DOCA_ERROR_INVALID_VALUE;
	*peer_addr = NULL;
	if (!is_active(ep))
		return DOCA_ERROR_NOT_CONNECTED;

	if (ep->mode == EP_SERVICE) {
		accept_pending(ep);
		if (ep->peers == NULL)
			return DOCA_ERROR_AGAIN;
		/* round robin: start after the peer served last */
		start = (ep->cursor && ep->cursor->next) ? ep->cursor->next : ep->peers;
		p = start;
		do {
			if (peer_live(p)) {
				r = recv_one(ep, p, msg, len, peer_addr);
				if (r != DOCA_ERROR_AGAIN) {
					ep->cursor = p;
					if (r != DOCA_ERROR_INVALID_VALUE)
						recv_disarm(ep);
					return r;
				}
			}
			p = p->next ? p->next : ep->peers;
		} while (p != start);
		return DOCA_ERROR_AGAIN;
	}

	/* client */
	p = ep->client;
	if (p == NULL)
		return DOCA_ERROR_NOT_CONNECTED;
	switch (p->state) {
	case PEER_CONNECTED:
		r = recv_one(ep, p, msg, len, peer_addr);
		if (r != DOCA_ERROR_AGAIN && r != DOCA_ERROR_INVALID_VALUE)
			recv_disarm(ep);
		return r;
	case PEER_CONNECTING:
		return DOCA_ERROR_AGAIN;
	case PEER_RESET:
		/* the service is gone: say so on every call until the user disconnects */
		*peer_addr = p;
		recv_disarm(ep);
		return DOCA_ERROR_CONNECTION_RESET;
	case PEER_FAILED:
	case PEER_CLOSED:
	default:
		return DOCA_ERROR_NOT_CONNECTED;
	}
}

/* ---- peers ---- */

doca_error_t doca_comm_channel_ep_disconnect(struct doca_comm_channel_ep_t *ep,
					     struct doca_comm_channel_addr_t *peer)
{
	if (ep == NULL || peer == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	if (peer->ep != ep || peer->state == PEER_CLOSED)
		return DOCA_ERROR_NOT_CONNECTED;
	/* the address stays valid (and owned by the endpoint) until ep_destroy */
	fake_block_ms(fake_env_u64("FAKE_DOCA_DISCONNECT_MS", 0));
	peer_close_fd(ep, peer);
	peer->state = PEER_CLOSED;
	peer->blocked = 0;
	return DOCA_SUCCESS;
}

doca_error_t doca_comm_channel_peer_addr_get_user_data(struct doca_comm_channel_addr_t *peer,
						       uint64_t *user_data)
{
	if (peer == NULL || user_data == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	*user_data = peer->user_data;
	return DOCA_SUCCESS;
}

doca_error_t doca_comm_channel_peer_addr_set_user_data(struct doca_comm_channel_addr_t *peer,
						       uint64_t user_data)
{
	if (peer == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	peer->user_data = user_data;
	return DOCA_SUCCESS;
}

doca_error_t doca_comm_channel_ep_update_service_state_info(struct doca_comm_channel_ep_t *ep)
{
	const char *path = getenv("FAKE_DOCA_SERVICE_ERROR_FILE");
	struct stat st;

	if (ep == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	if (ep->mode != EP_SERVICE)
		return DOCA_ERROR_NOT_CONNECTED;
	if (path != NULL && *path != '\0' && stat(path, &st) == 0)
		return DOCA_ERROR_CONNECTION_RESET;
	return DOCA_SUCCESS;
}
