/*
 * Private header of the fake DOCA libraries used by the tests of doca-socket-relay.
 *
 * Written by hand from the API facts in the project's reference notes (signatures, numeric
 * error codes, documented semantics). It is not an NVIDIA header and is only shared by
 * fake_common.c and fake_comm_channel.c.
 *
 * Compile with -DFAKE_DOCA_API=22 (DOCA 2.2 device/error names) or -DFAKE_DOCA_API=27
 * (DOCA 2.7 names).
 */
#ifndef FAKE_DOCA_H
#define FAKE_DOCA_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#ifndef FAKE_DOCA_API
#error "compile with -DFAKE_DOCA_API=22 or -DFAKE_DOCA_API=27"
#endif
#if FAKE_DOCA_API != 22 && FAKE_DOCA_API != 27
#error "FAKE_DOCA_API must be 22 or 27"
#endif

/* ---- error codes (numeric values as documented; TOO_BIG exists from 2.5 on) ---- */
typedef enum fake_doca_error {
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

/* ---- limits of the fake device ---- */
#define FAKE_DEFAULT_PCI "0000:03:00.0"
#define FAKE_DEFAULT_REP_PCI "0000:b1:00.0"
#define FAKE_DEFAULT_MAX_MSG 4080u /* device max message size unless FAKE_DOCA_MAX_MSG */
#define FAKE_MIN_MSG 64u           /* smaller requested sizes are raised to this */
#define FAKE_MAX_MSG_LIMIT 65535u  /* the API carries sizes in uint16_t */
#define FAKE_MAX_QUEUE 8192u       /* device max send/receive queue size */
#define FAKE_MIN_QUEUE 8u          /* queue sizes are raised to this, then rounded up to 2^k */
#define FAKE_DEFAULT_QUEUE 64u     /* queue size when the user sets none */
#define FAKE_DEFAULT_CONNECT_POLLS 3u

/* ---- device objects (opaque to users; shared layout between the two fake libraries) ---- */
struct fake_pci {
	uint32_t domain;
	uint32_t bus;
	uint32_t device;
	uint32_t function;
};

struct doca_devinfo {
	struct fake_pci pci;
	char pci_str[16]; /* "dddd:bb:dd.f" */
	uint32_t max_msg;
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

struct doca_comm_channel_ep_t;
struct doca_comm_channel_addr_t;

/* ---- helpers ---- */

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

/* ---- exported API: libdoca_common ---- */
#if FAKE_DOCA_API == 22
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

/* ---- exported API: libdoca_comm_channel ---- */
doca_error_t doca_comm_channel_get_max_message_size(struct doca_devinfo *devinfo, uint32_t *max);
doca_error_t doca_comm_channel_get_max_send_queue_size(struct doca_devinfo *devinfo, uint32_t *max);
doca_error_t doca_comm_channel_get_max_recv_queue_size(struct doca_devinfo *devinfo, uint32_t *max);
doca_error_t doca_comm_channel_ep_create(struct doca_comm_channel_ep_t **ep);
doca_error_t doca_comm_channel_ep_destroy(struct doca_comm_channel_ep_t *ep);
doca_error_t doca_comm_channel_ep_set_device(struct doca_comm_channel_ep_t *ep, struct doca_dev *dev);
doca_error_t doca_comm_channel_ep_set_device_rep(struct doca_comm_channel_ep_t *ep,
						 struct doca_dev_rep *dev_rep);
doca_error_t doca_comm_channel_ep_set_max_msg_size(struct doca_comm_channel_ep_t *ep, uint16_t size);
doca_error_t doca_comm_channel_ep_set_send_queue_size(struct doca_comm_channel_ep_t *ep, uint16_t size);
doca_error_t doca_comm_channel_ep_set_recv_queue_size(struct doca_comm_channel_ep_t *ep, uint16_t size);
doca_error_t doca_comm_channel_ep_get_max_msg_size(struct doca_comm_channel_ep_t *ep, uint16_t *size);
doca_error_t doca_comm_channel_ep_get_send_queue_size(struct doca_comm_channel_ep_t *ep,
						      uint16_t *size);
doca_error_t doca_comm_channel_ep_get_recv_queue_size(struct doca_comm_channel_ep_t *ep,
						      uint16_t *size);
doca_error_t doca_comm_channel_ep_listen(struct doca_comm_channel_ep_t *ep, const char *name);
doca_error_t doca_comm_channel_ep_connect(struct doca_comm_channel_ep_t *ep, const char *name,
					  struct doca_comm_channel_addr_t **peer_addr);
doca_error_t doca_comm_channel_peer_addr_update_info(struct doca_comm_channel_addr_t *peer_addr);
doca_error_t doca_comm_channel_ep_get_event_channel(struct doca_comm_channel_ep_t *ep, int *send_fd,
						    int *recv_fd);
doca_error_t doca_comm_channel_ep_event_handle_arm_send(struct doca_comm_channel_ep_t *ep);
doca_error_t doca_comm_channel_ep_event_handle_arm_recv(struct doca_comm_channel_ep_t *ep);
doca_error_t doca_comm_channel_ep_sendto(struct doca_comm_channel_ep_t *ep, const void *msg, size_t len,
					 int flags, struct doca_comm_channel_addr_t *peer_addr);
doca_error_t doca_comm_channel_ep_recvfrom(struct doca_comm_channel_ep_t *ep, void *msg, size_t *len,
					   int flags, struct doca_comm_channel_addr_t **peer_addr);
doca_error_t doca_comm_channel_ep_disconnect(struct doca_comm_channel_ep_t *ep,
					     struct doca_comm_channel_addr_t *peer_addr);
doca_error_t doca_comm_channel_peer_addr_get_user_data(struct doca_comm_channel_addr_t *peer_addr,
						       uint64_t *user_data);
doca_error_t doca_comm_channel_peer_addr_set_user_data(struct doca_comm_channel_addr_t *peer_addr,
						       uint64_t user_data);

#endif /* FAKE_DOCA_H */
