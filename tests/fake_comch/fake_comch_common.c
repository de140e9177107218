/*
 * Fake libdoca_common.so.2 (DOCA 2.7+ names) for the Comch tests of doca-socket-relay:
 * device and representor discovery driven by environment variables, error strings, and the
 * progress engine / context / task front end that dispatches to the context implementations
 * in libdoca_comch.so.2 (see fake_comch.h).
 *
 *   FAKE_DOCA_PCI      comma-separated device PCI addresses   (default 0000:03:00.0)
 *   FAKE_DOCA_REP_PCI  comma-separated representor addresses  (default 0000:b1:00.0)
 *
 * The variables are read when a list is created; an empty variable gives an empty list and
 * malformed entries are skipped. Addresses match in both "bb:dd.f" and "dddd:bb:dd.f" forms.
 * That part is shared with the Comm Channel fake in ../fake_common/fake_devices.c.
 *
 * Progress engine: doca_pe_progress() runs one round of every connected context; all user
 * callbacks fire inside it. Calling doca_pe_progress() from one of its own callbacks aborts.
 * The notification handle is an eventfd that never becomes readable (Comch has no
 * event-triggered completions).
 */
#include "fake_comch.h"

#include <sys/eventfd.h>
#include <unistd.h>

/* Devices and error strings are shared with the Comm Channel fake; only the wording of two
 * error descriptions differs between the two. */
#define FAKE_DESCR_NOT_CONNECTED "Not connected"
#define FAKE_DESCR_IO_FAILED "Input/output operation failed"
#include "../fake_common/fake_devices.c"

/* ---- progress engine ---- */

doca_error_t doca_pe_create(struct doca_pe **pe)
{
	struct doca_pe *p;

	if (pe == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return DOCA_ERROR_NO_MEMORY;
	p->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (p->notify_fd < 0) {
		free(p);
		return DOCA_ERROR_OPERATING_SYSTEM;
	}
	*pe = p;
	return DOCA_SUCCESS;
}

doca_error_t doca_pe_destroy(struct doca_pe *pe)
{
	if (pe == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	if (pe->head != NULL || pe->busy)
		return DOCA_ERROR_IN_USE;
	close(pe->notify_fd);
	free(pe);
	return DOCA_SUCCESS;
}

uint8_t doca_pe_progress(struct doca_pe *pe)
{
	struct doca_ctx *ctx;
	uint8_t did = 0;

	if (pe == NULL)
		return 0;
	if (pe->busy)
		FAKE_FATAL("doca_pe_progress() called from inside a callback of the same engine");
	pe->busy = 1;
	/* Contexts are appended only (connect_ctx) and never removed while busy (destroy
	 * returns IN_USE), so following pe_next after each round is safe. */
	for (ctx = pe->head; ctx != NULL; ctx = ctx->pe_next)
		did |= ctx->ops->progress(ctx);
	pe->busy = 0;
	return did ? 1 : 0;
}

doca_error_t doca_pe_get_notification_handle(const struct doca_pe *pe,
					     doca_notification_handle_t *handle)
{
	if (pe == NULL || handle == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	*handle = pe->notify_fd;
	return DOCA_SUCCESS;
}

doca_error_t doca_pe_request_notification(struct doca_pe *pe)
{
	return pe == NULL ? DOCA_ERROR_INVALID_VALUE : DOCA_SUCCESS;
}

doca_error_t doca_pe_clear_notification(struct doca_pe *pe, doca_notification_handle_t handle)
{
	(void)handle; /* unused on Linux */
	return pe == NULL ? DOCA_ERROR_INVALID_VALUE : DOCA_SUCCESS;
}

doca_error_t doca_pe_get_num_inflight_tasks(const struct doca_pe *pe, size_t *num_inflight_tasks)
{
	const struct doca_ctx *ctx;
	size_t n = 0;

	if (pe == NULL || num_inflight_tasks == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	for (ctx = pe->head; ctx != NULL; ctx = ctx->pe_next)
		n += ctx->inflight;
	*num_inflight_tasks = n;
	return DOCA_SUCCESS;
}

doca_error_t doca_pe_connect_ctx(struct doca_pe *pe, struct doca_ctx *ctx)
{
	if (pe == NULL || ctx == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	if (ctx->pe != NULL)
		return DOCA_ERROR_NOT_PERMITTED;
	if (ctx->state != DOCA_CTX_STATE_IDLE)
		return DOCA_ERROR_BAD_STATE;
	ctx->pe = pe;
	ctx->pe_next = NULL;
	ctx->pe_prev = pe->tail;
	if (pe->tail)
		pe->tail->pe_next = ctx;
	else
		pe->head = ctx;
	pe->tail = ctx;
	return DOCA_SUCCESS;
}

/* ---- contexts ---- */

doca_error_t doca_ctx_start(struct doca_ctx *ctx)
{
	if (ctx == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	if (ctx->pe == NULL)
		return DOCA_ERROR_NOT_CONNECTED;
	if (ctx->state != DOCA_CTX_STATE_IDLE)
		return DOCA_ERROR_BAD_STATE;
	return ctx->ops->start(ctx);
}

doca_error_t doca_ctx_stop(struct doca_ctx *ctx)
{
	if (ctx == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	return ctx->ops->stop(ctx);
}

doca_error_t doca_ctx_get_state(const struct doca_ctx *ctx, enum doca_ctx_states *state)
{
	if (ctx == NULL || state == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	*state = ctx->state;
	return DOCA_SUCCESS;
}

doca_error_t doca_ctx_set_state_changed_cb(struct doca_ctx *ctx,
					   doca_ctx_state_changed_callback_t cb)
{
	if (ctx == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	if (ctx->state != DOCA_CTX_STATE_IDLE)
		return DOCA_ERROR_BAD_STATE;
	ctx->state_cb = cb;
	return DOCA_SUCCESS;
}

doca_error_t doca_ctx_set_user_data(struct doca_ctx *ctx, union doca_data user_data)
{
	if (ctx == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	ctx->user_data = user_data;
	return DOCA_SUCCESS;
}

doca_error_t doca_ctx_get_user_data(const struct doca_ctx *ctx, union doca_data *user_data)
{
	if (ctx == NULL || user_data == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	*user_data = ctx->user_data;
	return DOCA_SUCCESS;
}

doca_error_t doca_ctx_get_num_inflight_tasks(const struct doca_ctx *ctx,
					     size_t *num_inflight_tasks)
{
	if (ctx == NULL || num_inflight_tasks == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	*num_inflight_tasks = ctx->inflight;
	return DOCA_SUCCESS;
}

/* ---- tasks ---- */

doca_error_t doca_task_submit(struct doca_task *task)
{
	if (task == NULL || task->ctx == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	return task->ctx->ops->submit(task);
}

doca_error_t doca_task_try_submit(struct doca_task *task)
{
	return doca_task_submit(task);
}

void doca_task_free(struct doca_task *task)
{
	if (task == NULL)
		return;
	if (task->ctx == NULL)
		FAKE_FATAL("doca_task_free() on something that is not a task");
	task->ctx->ops->task_free(task);
}

doca_error_t doca_task_get_status(const struct doca_task *task)
{
	if (task == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	return task->status;
}

void doca_task_set_user_data(struct doca_task *task, union doca_data user_data)
{
	if (task != NULL)
		task->user_data = user_data;
}

union doca_data doca_task_get_user_data(const struct doca_task *task)
{
	union doca_data none = { .u64 = 0 };

	return task == NULL ? none : task->user_data;
}

struct doca_ctx *doca_task_get_ctx(const struct doca_task *task)
{
	return task == NULL ? NULL : task->ctx;
}

/* DOCA 3.x reports its version at run time; the relay logs it. */
const char *doca_version_runtime(void)
{
	return "3.0.0-fake";
}
