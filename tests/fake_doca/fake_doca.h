/*
 * Private header of the fake DOCA libraries used by the tests of doca-socket-relay.
 *
 * Written by hand from the API facts in the project's reference notes (signatures, numeric
 * error codes, documented semantics). It is not an NVIDIA header and is only shared by
 * fake_common.c and fake_comm_channel.c. The devices and error codes both fake common
 * libraries have in common are in ../fake_common/fake_devices.h.
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

/* Comm Channel devices carry their max message size (FAKE_DOCA_MAX_MSG, see fake_common.c). */
#define FAKE_DEVICE_API FAKE_DOCA_API
#define FAKE_DEVINFO_EXTRA uint32_t max_msg;
#include "../fake_common/fake_devices.h"

/* ---- limits of the fake device ---- */
#define FAKE_DEFAULT_MAX_MSG 4080u /* device max message size unless FAKE_DOCA_MAX_MSG */
#define FAKE_MIN_MSG 64u           /* smaller requested sizes are raised to this */
#define FAKE_MAX_MSG_LIMIT 65535u  /* the API carries sizes in uint16_t */
#define FAKE_MAX_QUEUE 8192u       /* device max send/receive queue size */
#define FAKE_MIN_QUEUE 8u          /* queue sizes are raised to this, then rounded up to 2^k */
#define FAKE_DEFAULT_QUEUE 64u     /* queue size when the user sets none */
#define FAKE_DEFAULT_CONNECT_POLLS 3u

struct doca_comm_channel_ep_t;
struct doca_comm_channel_addr_t;

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
doca_error_t doca_comm_channel_ep_update_service_state_info(struct doca_comm_channel_ep_t *ep);

#endif /* FAKE_DOCA_H */
