/*
 * Devices and error codes shared by the two fake libdoca_common.so.2 builds of the tests of
 * doca-socket-relay: the Comm Channel one (tests/fake_doca) and the Comch one
 * (tests/fake_comch). Both discover the same fake devices from the same environment
 * variables and report the same error codes, so that part is written once, here and in
 * fake_devices.c.
 *
 * Written by hand from the API facts in the project's reference notes; not an NVIDIA header.
 * Included by fake_doca.h and fake_comch.h, which define before it:
 *
 *   FAKE_DEVICE_API     22 (DOCA 2.2 device/error names) or 27 (DOCA 2.7+ names)
 *   FAKE_DEVINFO_EXTRA  optional further members of struct doca_devinfo
 */
#ifndef FAKE_DEVICES_H
#define FAKE_DEVICES_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#if !defined(FAKE_DEVICE_API) || (FAKE_DEVICE_API != 22 && FAKE_DEVICE_API != 27)
#error "define FAKE_DEVICE_API as 22 or 27 before including fake_devices.h"
#endif

/* ---- error codes (numeric values as documented; TOO_BIG exists from 2.5 on) ---- */
typedef enum doca_error {
	DOCA_SUCCESS = 0,
	DOCA_ERROR_UNKNOWN = 1,
	DOCA_ERROR_NOT_PERMITTED = 2,
	DOCA_ERROR_IN_USE = 3,
	DOCA_ERROR_NOT_SUPPORTED = 4,
	DOCA_ERROR_AGAIN = 5,
	DOCA_ERROR_INVALID_VALUE = 6,
	DOCA_ERROR_NO_MEMORY = 7,
	DOCA_ERROR_INITIALIZATION = 8,
	DOCA_ERROR_TIME_OUT = 9,
	DOCA_ERROR_SHUTDOWN = 10,
	DOCA_ERROR_CONNECTION_RESET = 11,
	DOCA_ERROR_CONNECTION_ABORTED = 12,
	DOCA_ERROR_CONNECTION_INPROGRESS = 13,
	DOCA_ERROR_NOT_CONNECTED = 14,
	DOCA_ERROR_NO_LOCK = 15,
	DOCA_ERROR_NOT_FOUND = 16,
	DOCA_ERROR_IO_FAILED = 17,
	DOCA_ERROR_BAD_STATE = 18,
	DOCA_ERROR_UNSUPPORTED_VERSION = 19,
	DOCA_ERROR_OPERATING_SYSTEM = 20,
	DOCA_ERROR_DRIVER = 21,
	DOCA_ERROR_UNEXPECTED = 22,
	DOCA_ERROR_ALREADY_EXIST = 23,
	DOCA_ERROR_FULL = 24,
	DOCA_ERROR_EMPTY = 25,
	DOCA_ERROR_IN_PROGRESS = 26,
	DOCA_ERROR_TOO_BIG = 27,
} doca_error_t;

/* ---- exported names: DOCA 2.7 renamed the device-list and error-string functions ---- */
#if FAKE_DEVICE_API == 22
#define FAKE_DEVINFO_CREATE_LIST doca_devinfo_list_create
#define FAKE_DEVINFO_DESTROY_LIST doca_devinfo_list_destroy
#define FAKE_DEVINFO_IS_EQUAL_PCI doca_devinfo_get_is_pci_addr_equal
#define FAKE_DEVINFO_REP_CREATE_LIST doca_devinfo_rep_list_create
#define FAKE_DEVINFO_REP_DESTROY_LIST doca_devinfo_rep_list_destroy
#define FAKE_DEVINFO_REP_IS_EQUAL_PCI doca_devinfo_rep_get_is_pci_addr_equal
#define FAKE_ERROR_DESCR doca_get_error_string
#define FAKE_ERROR_NAME doca_get_error_name
#define FAKE_LAST_ERROR DOCA_ERROR_IN_PROGRESS
#else
#define FAKE_DEVINFO_CREATE_LIST doca_devinfo_create_list
#define FAKE_DEVINFO_DESTROY_LIST doca_devinfo_destroy_list
#define FAKE_DEVINFO_IS_EQUAL_PCI doca_devinfo_is_equal_pci_addr
#define FAKE_DEVINFO_REP_CREATE_LIST doca_devinfo_rep_create_list
#define FAKE_DEVINFO_REP_DESTROY_LIST doca_devinfo_rep_destroy_list
#define FAKE_DEVINFO_REP_IS_EQUAL_PCI doca_devinfo_rep_is_equal_pci_addr
#define FAKE_ERROR_DESCR doca_error_get_descr
#define FAKE_ERROR_NAME doca_error_get_name
#define FAKE_LAST_ERROR DOCA_ERROR_TOO_BIG
#endif

/* ---- device objects (opaque to users; shared layout within each pair of libraries) ---- */
#define FAKE_DEFAULT_PCI "0000:03:00.0"
#define FAKE_DEFAULT_REP_PCI "0000:b1:00.0"

/* Only the Comm Channel fake keeps more per device (its max message size). */
#ifndef FAKE_DEVINFO_EXTRA
#define FAKE_DEVINFO_EXTRA
#endif

struct fake_pci {
	uint32_t domain;
	uint32_t bus;
	uint32_t device;
	uint32_t function;
};

struct doca_devinfo {
	struct fake_pci pci;
	char pci_str[16]; /* "dddd:bb:dd.f" */
	FAKE_DEVINFO_EXTRA
};

struct doca_devinfo_rep {
	struct fake_pci pci;
	char pci_str[16];
};

struct doca_dev {
	struct doca_devinfo info;
};

struct doca_dev_rep {
	struct doca_devinfo_rep info;
};

/* ---- helpers (static, not exported) ---- */

/* Reads an unsigned decimal environment variable; `def` when unset, empty or malformed. */
static inline uint64_t fake_env_u64(const char *name, uint64_t def)
{
	const char *s = getenv(name);
	char *end = NULL;
	unsigned long long v;

	if (s == NULL || *s == '\0' || *s == '-')
		return def;
	v = strtoull(s, &end, 10);
	if (end == s || *end != '\0')
		return def;
	return (uint64_t)v;
}

/* Whether a boolean environment knob is on: set, non-empty and not starting with 0, n or f
 * ("1", "yes", "true" are on; "0", "no", "false" are off). */
static inline int fake_env_flag(const char *name)
{
	const char *s = getenv(name);

	if (s == NULL || *s == '\0')
		return 0;
	return !(s[0] == '0' || s[0] == 'n' || s[0] == 'N' || s[0] == 'f' || s[0] == 'F');
}

/*
 * Locked memory. RDMA pins the memory of queues and buffers, and ib_uverbs charges it against
 * RLIMIT_MEMLOCK for a process without CAP_IPC_LOCK (the service user). The fakes charge
 * FAKE_PIN_PER_ENTRY bytes per queue entry or send task (an estimate; the real figure is not
 * published) to a per-library total and refuse with NO_MEMORY past the soft limit, as the real
 * libraries do when ibv_create_cq or the uverbs mmap fail with ENOMEM. They enforce the limit
 * even for root, so that tests running as root see what the service user would.
 */
#define FAKE_PIN_PER_ENTRY 1024u

static uint64_t fake_pinned_total;

static inline doca_error_t fake_pin(uint64_t bytes)
{
	struct rlimit lim;

	if (getrlimit(RLIMIT_MEMLOCK, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY &&
	    fake_pinned_total + bytes > (uint64_t)lim.rlim_cur)
		return DOCA_ERROR_NO_MEMORY;
	fake_pinned_total += bytes;
	return DOCA_SUCCESS;
}

static inline void fake_unpin(uint64_t bytes)
{
	fake_pinned_total -= bytes < fake_pinned_total ? bytes : fake_pinned_total;
}

/* Sleeps `ms` milliseconds: the fakes' stand-in for a DOCA call that blocks. */
static inline void fake_block_ms(uint64_t ms)
{
	struct timespec ts;

	ts.tv_sec = (time_t)(ms / 1000u);
	ts.tv_nsec = (long)(ms % 1000u) * 1000000L;
	while (nanosleep(&ts, &ts) != 0)
		;
}

/* ---- exported API: libdoca_common (devices and error strings) ---- */
doca_error_t FAKE_DEVINFO_CREATE_LIST(struct doca_devinfo ***dev_list, uint32_t *nb_devs);
doca_error_t FAKE_DEVINFO_DESTROY_LIST(struct doca_devinfo **dev_list);
doca_error_t FAKE_DEVINFO_IS_EQUAL_PCI(const struct doca_devinfo *devinfo, const char *pci_addr,
				       uint8_t *is_equal);
doca_error_t FAKE_DEVINFO_REP_CREATE_LIST(struct doca_dev *dev, int filter,
					  struct doca_devinfo_rep ***dev_list_rep,
					  uint32_t *nb_devs_rep);
doca_error_t FAKE_DEVINFO_REP_DESTROY_LIST(struct doca_devinfo_rep **dev_list_rep);
doca_error_t FAKE_DEVINFO_REP_IS_EQUAL_PCI(const struct doca_devinfo_rep *devinfo_rep,
					   const char *pci_addr, uint8_t *is_equal);
const char *FAKE_ERROR_DESCR(doca_error_t error);
const char *FAKE_ERROR_NAME(doca_error_t error);

doca_error_t doca_dev_open(struct doca_devinfo *devinfo, struct doca_dev **dev);
doca_error_t doca_dev_close(struct doca_dev *dev);
doca_error_t doca_dev_rep_open(struct doca_devinfo_rep *devinfo, struct doca_dev_rep **dev_rep);
doca_error_t doca_dev_rep_close(struct doca_dev_rep *dev_rep);
struct doca_devinfo *doca_dev_as_devinfo(const struct doca_dev *dev);

#endif /* FAKE_DEVICES_H */
