/*
 * Fake libdoca_common.so.2 for the tests of doca-socket-relay: device and representor
 * discovery driven by environment variables, and the error-code strings.
 *
 *   FAKE_DOCA_PCI      comma-separated device PCI addresses   (default 0000:03:00.0)
 *   FAKE_DOCA_REP_PCI  comma-separated representor addresses  (default 0000:b1:00.0)
 *   FAKE_DOCA_MAX_MSG  max message size of every device       (default 4080)
 *
 * The variables are read when a list is created. An empty variable gives an empty list;
 * malformed entries are skipped.
 *
 * Everything but the max message size is shared with the Comch fake in
 * ../fake_common/fake_devices.c.
 */
#include "fake_doca.h"

/* Comm Channel devices also carry their max message size, read once per new list. */
static void fill_max_msg(struct doca_devinfo **list, uint32_t n)
{
	uint64_t max_msg = fake_env_u64("FAKE_DOCA_MAX_MSG", FAKE_DEFAULT_MAX_MSG);
	uint32_t i;

	if (max_msg < FAKE_MIN_MSG)
		max_msg = FAKE_MIN_MSG;
	if (max_msg > FAKE_MAX_MSG_LIMIT)
		max_msg = FAKE_MAX_MSG_LIMIT;
	for (i = 0; i < n; i++)
		list[i]->max_msg = (uint32_t)max_msg;
}

/* This fake's wording of two error descriptions (a test checks "Not Connected"). */
#define FAKE_DESCR_NOT_CONNECTED "Not Connected"
#define FAKE_DESCR_IO_FAILED "Input/Output operation failed"
#define FAKE_DEVINFO_FILL fill_max_msg
#include "../fake_common/fake_devices.c"
