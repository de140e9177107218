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
 *
 * Progress engine: doca_pe_progress() runs one round of every connected context; all user
 * callbacks fire inside it. Calling doca_pe_progress() from one of its own callbacks aborts.
 * The notification handle is an eventfd that never becomes readable (Comch has no
 * event-triggered completions).
 */
#include "fake_comch.h"

#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* ---- PCI addresses ---- */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Reads 1..max hex digits from *p (not followed by another digit). */
static int read_hex(const char **p, unsigned max, uint32_t *out)
{
	uint32_t v = 0;
	unsigned n = 0;
	int d;

	while (n < max && (d = hexval(**p)) >= 0) {
		v = v * 16u + (uint32_t)d;
		(*p)++;
		n++;
	}
	if (n == 0 || hexval(**p) >= 0)
		return -1;
	*out = v;
	return 0;
}

/* Parses the address in [s, end): "bb:dd.f" or "dddd:bb:dd.f". Returns 0 on success. */
static int pci_parse(const char *s, const char *end, struct fake_pci *out)
{
	char buf[32];
	const char *p = buf;
	size_t len = (size_t)(end - s);
	uint32_t a, b, c, f;

	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (read_hex(&p, 4, &a) != 0 || *p++ != ':' || read_hex(&p, 2, &b) != 0)
		return -1;
	if (*p == ':') {
		p++;
		if (read_hex(&p, 2, &c) != 0 || *p++ != '.' || read_hex(&p, 1, &f) != 0)
			return -1;
		*out = (struct fake_pci){ a, b, c, f };
	} else if (*p == '.') {
		p++;
		if (a > 0xffu || read_hex(&p, 1, &f) != 0)
			return -1;
		*out = (struct fake_pci){ 0, a, b, f };
	} else {
		return -1;
	}
	if (*p != '\0' || out->device > 0x1fu || out->function > 7u)
		return -1;
	return 0;
}

static int pci_same(const struct fake_pci *a, const struct fake_pci *b)
{
	return a->domain == b->domain && a->bus == b->bus && a->device == b->device &&
	       a->function == b->function;
}

/* Parses the comma-separated list in env `name` (default `def`) into a malloc'd array;
 * returns the number of valid entries (array NULL when 0) or -1 when out of memory. */
static int pci_list(const char *name, const char *def, struct fake_pci **out)
{
	const char *s = getenv(name), *start, *end, *q;
	size_t cap = 1, n = 0;
	struct fake_pci *v;

	if (s == NULL)
		s = def;
	for (q = s; *q; q++)
		cap += *q == ',';
	v = calloc(cap, sizeof(*v));
	if (v == NULL)
		return -1;
	for (start = s;; start = end + 1) {
		end = strchr(start, ',');
		if (end == NULL)
			end = start + strlen(start);
		q = end;
		while (start < q && (*start == ' ' || *start == '\t'))
			start++;
		while (q > start && (q[-1] == ' ' || q[-1] == '\t'))
			q--;
		if (q > start && pci_parse(start, q, &v[n]) == 0)
			n++;
		if (*end == '\0')
			break;
	}
	if (n == 0) {
		free(v);
		v = NULL;
	}
	*out = v;
	return (int)n;
}

static void pci_format(const struct fake_pci *p, char out[16])
{
	snprintf(out, 16, "%04x:%02x:%02x.%x", (unsigned)(p->domain & 0xffffu),
		 (unsigned)(p->bus & 0xffu), (unsigned)(p->device & 0x1fu),
		 (unsigned)(p->function & 7u));
}

/* ---- device lists (NULL-terminated arrays of individually allocated entries) ---- */

doca_error_t doca_devinfo_create_list(struct doca_devinfo ***dev_list, uint32_t *nb_devs)
{
	struct fake_pci *pcis;
	struct doca_devinfo **list;
	int n, i;

	if (dev_list == NULL || nb_devs == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	n = pci_list("FAKE_DOCA_PCI", FAKE_DEFAULT_PCI, &pcis);
	if (n < 0)
		return DOCA_ERROR_NO_MEMORY;
	list = calloc((size_t)n + 1, sizeof(*list));
	if (list == NULL) {
		free(pcis);
		return DOCA_ERROR_NO_MEMORY;
	}
	for (i = 0; i < n; i++) {
		list[i] = calloc(1, sizeof(**list));
		if (list[i] == NULL) {
			doca_devinfo_destroy_list(list);
			free(pcis);
			return DOCA_ERROR_NO_MEMORY;
		}
		list[i]->pci = pcis[i];
		pci_format(&pcis[i], list[i]->pci_str);
	}
	free(pcis);
	*dev_list = list;
	*nb_devs = (uint32_t)n;
	return DOCA_SUCCESS;
}

doca_error_t doca_devinfo_destroy_list(struct doca_devinfo **dev_list)
{
	size_t i;

	if (dev_list == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	for (i = 0; dev_list[i] != NULL; i++)
		free(dev_list[i]);
	free(dev_list);
	return DOCA_SUCCESS;
}

doca_error_t doca_devinfo_is_equal_pci_addr(const struct doca_devinfo *devinfo,
					    const char *pci_addr_str, uint8_t *is_equal)
{
	struct fake_pci want;

	if (devinfo == NULL || pci_addr_str == NULL || is_equal == NULL ||
	    pci_parse(pci_addr_str, pci_addr_str + strlen(pci_addr_str), &want) != 0)
		return DOCA_ERROR_INVALID_VALUE;
	*is_equal = pci_same(&devinfo->pci, &want) ? 1 : 0;
	return DOCA_SUCCESS;
}

doca_error_t doca_devinfo_rep_create_list(struct doca_dev *dev, int filter,
					  struct doca_devinfo_rep ***dev_list_rep,
					  uint32_t *nb_devs_rep)
{
	struct fake_pci *pcis;
	struct doca_devinfo_rep **list;
	int n, i;

	(void)filter; /* every fake representor is a network one */
	if (dev == NULL || dev_list_rep == NULL || nb_devs_rep == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	n = pci_list("FAKE_DOCA_REP_PCI", FAKE_DEFAULT_REP_PCI, &pcis);
	if (n < 0)
		return DOCA_ERROR_NO_MEMORY;
	list = calloc((size_t)n + 1, sizeof(*list));
	if (list == NULL) {
		free(pcis);
		return DOCA_ERROR_NO_MEMORY;
	}
	for (i = 0; i < n; i++) {
		list[i] = calloc(1, sizeof(**list));
		if (list[i] == NULL) {
			doca_devinfo_rep_destroy_list(list);
			free(pcis);
			return DOCA_ERROR_NO_MEMORY;
		}
		list[i]->pci = pcis[i];
		pci_format(&pcis[i], list[i]->pci_str);
	}
	free(pcis);
	*dev_list_rep = list;
	*nb_devs_rep = (uint32_t)n;
	return DOCA_SUCCESS;
}

doca_error_t doca_devinfo_rep_destroy_list(struct doca_devinfo_rep **dev_list_rep)
{
	size_t i;

	if (dev_list_rep == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	for (i = 0; dev_list_rep[i] != NULL; i++)
		free(dev_list_rep[i]);
	free(dev_list_rep);
	return DOCA_SUCCESS;
}

doca_error_t doca_devinfo_rep_is_equal_pci_addr(const struct doca_devinfo_rep *devinfo_rep,
						const char *pci_addr_str, uint8_t *is_equal)
{
	struct fake_pci want;

	if (devinfo_rep == NULL || pci_addr_str == NULL || is_equal == NULL ||
	    pci_parse(pci_addr_str, pci_addr_str + strlen(pci_addr_str), &want) != 0)
		return DOCA_ERROR_INVALID_VALUE;
	*is_equal = pci_same(&devinfo_rep->pci, &want) ? 1 : 0;
	return DOCA_SUCCESS;
}

/* An opened device owns a copy of its devinfo, valid until closed. */
doca_error_t doca_dev_open(struct doca_devinfo *devinfo, struct doca_dev **dev)
{
	struct doca_dev *d;

	if (devinfo == NULL || dev == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	d = calloc(1, sizeof(*d));
	if (d == NULL)
		return DOCA_ERROR_NO_MEMORY;
	d->info = *devinfo;
	*dev = d;
	return DOCA_SUCCESS;
}

doca_error_t doca_dev_close(struct doca_dev *dev)
{
	if (dev == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	free(dev);
	return DOCA_SUCCESS;
}

doca_error_t doca_dev_rep_open(struct doca_devinfo_rep *devinfo, struct doca_dev_rep **dev_rep)
{
	struct doca_dev_rep *d;

	if (devinfo == NULL || dev_rep == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	d = calloc(1, sizeof(*d));
	if (d == NULL)
		return DOCA_ERROR_NO_MEMORY;
	d->info = *devinfo;
	*dev_rep = d;
	return DOCA_SUCCESS;
}

doca_error_t doca_dev_rep_close(struct doca_dev_rep *dev_rep)
{
	if (dev_rep == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	free(dev_rep);
	return DOCA_SUCCESS;
}

struct doca_devinfo *doca_dev_as_devinfo(const struct doca_dev *dev)
{
	return dev == NULL ? NULL : (struct doca_devinfo *)&dev->info;
}

/* ---- error strings (descriptions in our own words) ---- */

static const struct {
	const char *name, *descr;
} errors[] = {
	[DOCA_SUCCESS] = { "DOCA_SUCCESS", "Success" },
	[DOCA_ERROR_UNKNOWN] = { "DOCA_ERROR_UNKNOWN", "Unknown error" },
	[DOCA_ERROR_NOT_PERMITTED] = { "DOCA_ERROR_NOT_PERMITTED", "Operation not permitted" },
	[DOCA_ERROR_IN_USE] = { "DOCA_ERROR_IN_USE", "Resource in use" },
	[DOCA_ERROR_NOT_SUPPORTED] = { "DOCA_ERROR_NOT_SUPPORTED", "Operation not supported" },
	[DOCA_ERROR_AGAIN] = { "DOCA_ERROR_AGAIN", "Resource temporarily unavailable, try again" },
	[DOCA_ERROR_INVALID_VALUE] = { "DOCA_ERROR_INVALID_VALUE", "Invalid input" },
	[DOCA_ERROR_NO_MEMORY] = { "DOCA_ERROR_NO_MEMORY", "Memory allocation failure" },
	[DOCA_ERROR_INITIALIZATION] = { "DOCA_ERROR_INITIALIZATION",
					"Resource initialization failure" },
	[DOCA_ERROR_TIME_OUT] = { "DOCA_ERROR_TIME_OUT", "Timed out waiting for resource" },
	[DOCA_ERROR_SHUTDOWN] = { "DOCA_ERROR_SHUTDOWN", "Shut down in progress or completed" },
	[DOCA_ERROR_CONNECTION_RESET] = { "DOCA_ERROR_CONNECTION_RESET",
					  "Connection reset by peer" },
	[DOCA_ERROR_CONNECTION_ABORTED] = { "DOCA_ERROR_CONNECTION_ABORTED", "Connection aborted" },
	[DOCA_ERROR_CONNECTION_INPROGRESS] = { "DOCA_ERROR_CONNECTION_INPROGRESS",
					       "Connection in progress" },
	[DOCA_ERROR_NOT_CONNECTED] = { "DOCA_ERROR_NOT_CONNECTED", "Not connected" },
	[DOCA_ERROR_NO_LOCK] = { "DOCA_ERROR_NO_LOCK", "Unable to acquire required lock" },
	[DOCA_ERROR_NOT_FOUND] = { "DOCA_ERROR_NOT_FOUND", "Resource not found" },
	[DOCA_ERROR_IO_FAILED] = { "DOCA_ERROR_IO_FAILED", "Input/output operation failed" },
	[DOCA_ERROR_BAD_STATE] = { "DOCA_ERROR_BAD_STATE", "Bad state" },
	[DOCA_ERROR_UNSUPPORTED_VERSION] = { "DOCA_ERROR_UNSUPPORTED_VERSION",
					     "Unsupported version" },
	[DOCA_ERROR_OPERATING_SYSTEM] = { "DOCA_ERROR_OPERATING_SYSTEM",
					  "Operating system call failure" },
	[DOCA_ERROR_DRIVER] = { "DOCA_ERROR_DRIVER", "Driver call failure" },
	[DOCA_ERROR_UNEXPECTED] = { "DOCA_ERROR_UNEXPECTED", "Unexpected failure" },
	[DOCA_ERROR_ALREADY_EXIST] = { "DOCA_ERROR_ALREADY_EXIST", "Resource already exists" },
	[DOCA_ERROR_FULL] = { "DOCA_ERROR_FULL", "Resource is full" },
	[DOCA_ERROR_EMPTY] = { "DOCA_ERROR_EMPTY", "Resource is empty" },
	[DOCA_ERROR_IN_PROGRESS] = { "DOCA_ERROR_IN_PROGRESS", "Operation in progress" },
	[DOCA_ERROR_TOO_BIG] = { "DOCA_ERROR_TOO_BIG", "Requested size is too big" },
};

static const char unrecognized[] = "unrecognized error code";

static int known_error(doca_error_t error)
{
	long v = (long)error;

	return v >= 0 && v <= (long)FAKE_LAST_ERROR;
}

const char *doca_error_get_name(doca_error_t error)
{
	return known_error(error) ? errors[error].name : unrecognized;
}

const char *doca_error_get_descr(doca_error_t error)
{
	return known_error(error) ? errors[error].descr : unrecognized;
}

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
