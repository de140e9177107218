/*
 * Private header of the fake DOCA Comch libraries (libdoca_common.so.2 + libdoca_comch.so.2)
 * used by the tests of doca-socket-relay.
 *
 * Written by hand from the API facts in the project's reference notes (signatures, numeric
 * codes, documented semantics). It is not an NVIDIA header. It declares the exported API and
 * the object layouts shared by fake_comch_common.c and fake_comch.c: the progress engine and
 * context/task machinery live in the common library, and every context implementation (the
 * Comch server and client) plugs into it through `struct fake_ctx_ops`.
 *
 * Compile with -DFAKE_COMCH_API=29 (default; 2.9+ connection-event name) or
 * -DFAKE_COMCH_API=27 (2.7/2.8 name).
 */
#ifndef FAKE_COMCH_H
#define FAKE_COMCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef FAKE_COMCH_API
#define FAKE_COMCH_API 29
#endif
#if FAKE_COMCH_API != 27 && FAKE_COMCH_API != 29
#error "FAKE_COMCH_API must be 27 or 29"
#endif

/* Devices and error codes, shared with the Comm Channel fake; Comch exists from DOCA 2.7 on,
 * so always the 2.7 names. */
#define FAKE_DEVICE_API 27
#include "../fake_common/fake_devices.h"

/* ---- common types ---- */
union doca_data {
	void *ptr;
	uint64_t u64;
};

enum doca_ctx_states {
	DOCA_CTX_STATE_IDLE = 0,
	DOCA_CTX_STATE_STARTING = 1,
	DOCA_CTX_STATE_RUNNING = 2,
	DOCA_CTX_STATE_STOPPING = 3,
};

typedef int doca_notification_handle_t;

struct doca_ctx;
struct doca_task;
struct doca_pe;

typedef void (*doca_ctx_state_changed_callback_t)(const union doca_data user_data,
						  struct doca_ctx *ctx,
						  enum doca_ctx_states prev_state,
						  enum doca_ctx_states next_state);

/* ---- limits and defaults of the fake ---- */
#define FAKE_DEFAULT_MAX_MSG 4080u     /* cap unless FAKE_COMCH_MAX_MSG */
#define FAKE_MIN_MAX_MSG 16u           /* FAKE_COMCH_MAX_MSG is clamped to [16, 65536] */
#define FAKE_MAX_MAX_MSG 65536u
#define FAKE_MAX_RECV_QUEUE 8192u
#define FAKE_DEFAULT_RECV_QUEUE 64u
#define FAKE_DEFAULT_MAX_SEND_TASKS 1024u /* cap unless FAKE_COMCH_MAX_SEND_TASKS */
#define FAKE_MAX_CLIENTS 512u
#define FAKE_MAX_NAME_LEN 120u /* including the terminating NUL */
#define FAKE_RECV_BATCH 32u    /* messages read per connection per progress call */
#define FAKE_MAX_PENDING 32u   /* queued state-change notifications per context */

/* ---- progress engine / context / task machinery (shared layout) ---- */

/* What a context implementation provides to the common library. */
struct fake_ctx_ops {
	doca_error_t (*start)(struct doca_ctx *ctx);
	doca_error_t (*stop)(struct doca_ctx *ctx);
	/* One round of work; fires callbacks; returns 1 when anything happened. */
	uint8_t (*progress)(struct doca_ctx *ctx);
	doca_error_t (*submit)(struct doca_task *task);
	void (*task_free)(struct doca_task *task);
};

struct fake_transition {
	uint8_t prev, next;
};

struct doca_ctx {
	const struct fake_ctx_ops *ops;
	struct doca_pe *pe;
	struct doca_ctx *pe_prev, *pe_next;
	enum doca_ctx_states state;
	doca_ctx_state_changed_callback_t state_cb;
	union doca_data user_data;
	size_t inflight;  /* tasks submitted and not yet completed */
	uint32_t npending;
	struct fake_transition pending[FAKE_MAX_PENDING]; /* reported during progress */
};

enum fake_task_state {
	FAKE_TASK_FREE = 0,   /* in the pool */
	FAKE_TASK_OWNED,      /* allocated, owned by the user (not submitted / completed) */
	FAKE_TASK_QUEUED,     /* submitted, waiting to be sent */
};

struct doca_task {
	struct doca_ctx *ctx;
	union doca_data user_data;
	doca_error_t status;
	enum fake_task_state state;
};

struct doca_pe {
	struct doca_ctx *head, *tail;
	int notify_fd;       /* an eventfd nobody ever writes */
	int busy;            /* inside doca_pe_progress */
};

/* ---- helpers shared by both libraries (static, not exported) ---- */

/* A misuse that would be memory corruption with the real library: report and abort. */
#define FAKE_FATAL(...)                                                                          \
	do {                                                                                     \
		fprintf(stderr, "fake DOCA Comch: fatal misuse: " __VA_ARGS__);                  \
		fputc('\n', stderr);                                                             \
		abort();                                                                         \
	} while (0)

/* Changes the state of `ctx` now and queues the state-changed notification, which is delivered
 * by fake_ctx_fire_pending() during progress. */
static inline void fake_ctx_set_state(struct doca_ctx *ctx, enum doca_ctx_states next)
{
	enum doca_ctx_states prev = ctx->state;

	if (prev == next)
		return;
	ctx->state = next;
	if (ctx->npending == FAKE_MAX_PENDING) {
		/* Full: fold into the last entry (prev of the last, this next). */
		ctx->pending[FAKE_MAX_PENDING - 1].next = (uint8_t)next;
		return;
	}
	ctx->pending[ctx->npending].prev = (uint8_t)prev;
	ctx->pending[ctx->npending].next = (uint8_t)next;
	ctx->npending++;
}

/* Delivers queued state-changed notifications in order; returns 1 when any was delivered. */
static inline uint8_t fake_ctx_fire_pending(struct doca_ctx *ctx)
{
	uint8_t did = 0;

	while (ctx->npending > 0) {
		struct fake_transition t = ctx->pending[0];
		uint32_t i;

		for (i = 1; i < ctx->npending; i++)
			ctx->pending[i - 1] = ctx->pending[i];
		ctx->npending--;
		did = 1;
		if (ctx->state_cb != NULL && t.prev != t.next)
			ctx->state_cb(ctx->user_data, ctx, (enum doca_ctx_states)t.prev,
				      (enum doca_ctx_states)t.next);
	}
	return did;
}

/* Removes `ctx` from its progress engine's list (used by the *_destroy functions). */
static inline void fake_ctx_detach(struct doca_ctx *ctx)
{
	struct doca_pe *pe = ctx->pe;

	if (pe == NULL)
		return;
	if (ctx->pe_prev)
		ctx->pe_prev->pe_next = ctx->pe_next;
	else
		pe->head = ctx->pe_next;
	if (ctx->pe_next)
		ctx->pe_next->pe_prev = ctx->pe_prev;
	else
		pe->tail = ctx->pe_prev;
	ctx->pe = NULL;
	ctx->pe_prev = ctx->pe_next = NULL;
}

/* ---- exported API: libdoca_common (devices and error strings: fake_devices.h) ---- */
const char *doca_version_runtime(void);

doca_error_t doca_pe_create(struct doca_pe **pe);
doca_error_t doca_pe_destroy(struct doca_pe *pe);
uint8_t doca_pe_progress(struct doca_pe *pe);
doca_error_t doca_pe_get_notification_handle(const struct doca_pe *pe,
					     doca_notification_handle_t *handle);
doca_error_t doca_pe_request_notification(struct doca_pe *pe);
doca_error_t doca_pe_clear_notification(struct doca_pe *pe, doca_notification_handle_t handle);
doca_error_t doca_pe_get_num_inflight_tasks(const struct doca_pe *pe, size_t *num_inflight_tasks);
doca_error_t doca_pe_connect_ctx(struct doca_pe *pe, struct doca_ctx *ctx);

doca_error_t doca_ctx_start(struct doca_ctx *ctx);
doca_error_t doca_ctx_stop(struct doca_ctx *ctx);
doca_error_t doca_ctx_get_state(const struct doca_ctx *ctx, enum doca_ctx_states *state);
doca_error_t doca_ctx_set_state_changed_cb(struct doca_ctx *ctx,
					   doca_ctx_state_changed_callback_t cb);
doca_error_t doca_ctx_set_user_data(struct doca_ctx *ctx, union doca_data user_data);
doca_error_t doca_ctx_get_user_data(const struct doca_ctx *ctx, union doca_data *user_data);
doca_error_t doca_ctx_get_num_inflight_tasks(const struct doca_ctx *ctx,
					     size_t *num_inflight_tasks);

doca_error_t doca_task_submit(struct doca_task *task);
doca_error_t doca_task_try_submit(struct doca_task *task);
void doca_task_free(struct doca_task *task);
doca_error_t doca_task_get_status(const struct doca_task *task);
void doca_task_set_user_data(struct doca_task *task, union doca_data user_data);
union doca_data doca_task_get_user_data(const struct doca_task *task);
struct doca_ctx *doca_task_get_ctx(const struct doca_task *task);

/* ---- exported API: libdoca_comch ---- */
struct doca_comch_server;
struct doca_comch_client;
struct doca_comch_connection;
struct doca_comch_task_send;
struct doca_comch_event_msg_recv;
struct doca_comch_event_connection_status_changed;

typedef void (*doca_comch_task_send_completion_cb_t)(struct doca_comch_task_send *task,
						     union doca_data task_user_data,
						     union doca_data ctx_user_data);
typedef void (*doca_comch_event_msg_recv_cb_t)(struct doca_comch_event_msg_recv *event,
					       uint8_t *recv_buffer, uint32_t msg_len,
					       struct doca_comch_connection *comch_connection);
typedef void (*doca_comch_event_connection_status_changed_cb_t)(
	struct doca_comch_event_connection_status_changed *event,
	struct doca_comch_connection *comch_connection, uint8_t change_successful);

enum doca_comch_counter {
	DOCA_COMCH_COUNTER_SENT_MESSAGES = 1,
	DOCA_COMCH_COUNTER_SENT_BYTES = 2,
	DOCA_COMCH_COUNTER_RECV_MESSAGES = 3,
	DOCA_COMCH_COUNTER_RECV_BYTES = 4,
};

doca_error_t doca_comch_cap_get_max_name_len(const struct doca_devinfo *devinfo,
					     uint32_t *max_name_len);
doca_error_t doca_comch_cap_get_max_msg_size(const struct doca_devinfo *devinfo, uint32_t *size);
doca_error_t doca_comch_cap_get_max_recv_queue_size(const struct doca_devinfo *devinfo,
						    uint32_t *size);
doca_error_t doca_comch_cap_get_max_clients(const struct doca_devinfo *devinfo,
					    uint32_t *num_clients);
doca_error_t doca_comch_cap_get_max_send_tasks(const struct doca_devinfo *devinfo,
					       uint32_t *max_send_tasks);
doca_error_t doca_comch_cap_server_is_supported(const struct doca_devinfo *devinfo);
doca_error_t doca_comch_cap_client_is_supported(const struct doca_devinfo *devinfo);

doca_error_t doca_comch_connection_set_user_data(struct doca_comch_connection *connection,
						 union doca_data user_data);
union doca_data doca_comch_connection_get_user_data(const struct doca_comch_connection *connection);
struct doca_comch_server *
doca_comch_server_get_server_ctx(const struct doca_comch_connection *connection);
struct doca_comch_client *
doca_comch_client_get_client_ctx(const struct doca_comch_connection *connection);
doca_error_t doca_comch_connection_update_info(struct doca_comch_connection *comch_connection);
doca_error_t doca_comch_connection_get_counter(const struct doca_comch_connection *comch_connection,
					       enum doca_comch_counter counter_type,
					       uint64_t *counter_value);

doca_error_t doca_comch_server_create(struct doca_dev *dev, struct doca_dev_rep *repr,
				      const char *name, struct doca_comch_server **comch_server);
doca_error_t doca_comch_server_destroy(struct doca_comch_server *comch_server);
doca_error_t doca_comch_server_set_max_msg_size(struct doca_comch_server *comch_server,
						uint32_t size);
doca_error_t doca_comch_server_get_max_msg_size(const struct doca_comch_server *comch_server,
						uint32_t *size);
doca_error_t doca_comch_server_set_recv_queue_size(struct doca_comch_server *comch_server,
						   uint32_t size);
doca_error_t doca_comch_server_get_recv_queue_size(const struct doca_comch_server *comch_server,
						   uint32_t *size);
doca_error_t doca_comch_server_get_device(const struct doca_comch_server *comch_server,
					  struct doca_dev **dev);
#if FAKE_COMCH_API >= 29
doca_error_t doca_comch_server_get_device_rep(const struct doca_comch_server *comch_server,
					      struct doca_dev_rep **rep);
#else
doca_error_t doca_comch_server_get_device_repr(const struct doca_comch_server *comch_server,
					       struct doca_dev_rep **repr);
#endif
struct doca_ctx *doca_comch_server_as_ctx(struct doca_comch_server *comch_server);
doca_error_t doca_comch_server_disconnect(struct doca_comch_server *comch_server,
					  struct doca_comch_connection *connection);
doca_error_t doca_comch_server_task_send_set_conf(struct doca_comch_server *comch_server,
						  doca_comch_task_send_completion_cb_t task_completion_cb,
						  doca_comch_task_send_completion_cb_t task_error_cb,
						  uint32_t num_send_tasks);
doca_error_t doca_comch_server_task_send_alloc_init(struct doca_comch_server *comch_server,
						    struct doca_comch_connection *peer,
						    const void *msg, uint32_t len,
						    struct doca_comch_task_send **task);
doca_error_t doca_comch_server_event_msg_recv_register(struct doca_comch_server *comch_server,
						       doca_comch_event_msg_recv_cb_t recv_event_cb);
#if FAKE_COMCH_API >= 29
doca_error_t doca_comch_server_event_connection_status_changed_register(
	struct doca_comch_server *comch_server,
	doca_comch_event_connection_status_changed_cb_t connect_event_cb,
	doca_comch_event_connection_status_changed_cb_t disconnect_event_cb);
#else
doca_error_t doca_comch_server_event_connection_register(
	struct doca_comch_server *comch_server,
	doca_comch_event_connection_status_changed_cb_t connect_event_cb,
	doca_comch_event_connection_status_changed_cb_t disconnect_event_cb);
#endif

doca_error_t doca_comch_client_create(struct doca_dev *dev, const char *name,
				      struct doca_comch_client **comch_client);
doca_error_t doca_comch_client_destroy(struct doca_comch_client *comch_client);
doca_error_t doca_comch_client_set_max_msg_size(struct doca_comch_client *comch_client,
						uint32_t size);
doca_error_t doca_comch_client_get_max_msg_size(const struct doca_comch_client *comch_client,
						uint32_t *size);
doca_error_t doca_comch_client_set_recv_queue_size(struct doca_comch_client *comch_client,
						   uint32_t size);
doca_error_t doca_comch_client_get_recv_queue_size(const struct doca_comch_client *comch_client,
						   uint32_t *size);
doca_error_t doca_comch_client_get_device(const struct doca_comch_client *comch_client,
					  struct doca_dev **dev);
struct doca_ctx *doca_comch_client_as_ctx(struct doca_comch_client *comch_client);
doca_error_t doca_comch_client_get_connection(const struct doca_comch_client *comch_client,
					      struct doca_comch_connection **connection);
doca_error_t doca_comch_client_task_send_set_conf(struct doca_comch_client *comch_client,
						  doca_comch_task_send_completion_cb_t task_completion_cb,
						  doca_comch_task_send_completion_cb_t task_error_cb,
						  uint32_t num_send_tasks);
doca_error_t doca_comch_client_task_send_alloc_init(struct doca_comch_client *comch_client,
						    struct doca_comch_connection *peer,
						    const void *msg, uint32_t len,
						    struct doca_comch_task_send **task);
doca_error_t doca_comch_client_event_msg_recv_register(struct doca_comch_client *comch_client,
						       doca_comch_event_msg_recv_cb_t recv_event_cb);
struct doca_task *doca_comch_task_send_as_task(struct doca_comch_task_send *task);

#endif /* FAKE_COMCH_H */
