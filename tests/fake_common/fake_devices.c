/*
 * Devices and error strings of both fake libdoca_common.so.2 builds (see fake_devices.h):
 * device and representor discovery driven by environment variables.
 *
 *   FAKE_DOCA_PCI      comma-separated device PCI addresses   (default 0000:03:00.0)
 *   FAKE_DOCA_REP_PCI  comma-separated representor addresses  (default 0000:b1:00.0)
 *
 * The variables are read when a list is created; an empty variable gives an empty list and
 * malformed entries are skipped. Addresses match in both "bb:dd.f" and "dddd:bb:dd.f" forms.
 *
 * Not compiled on its own: each common library #includes it after its own header, because
 * the exported names and the devinfo layout depend on that header. Before the #include the
 * library defines:
 *
 *   FAKE_DESCR_NOT_CONNECTED, FAKE_DESCR_IO_FAILED
 *                      its wording of those two error descriptions (the fakes differ there)
 *   FAKE_DEVINFO_FILL  optional: function(list, n) that fills the FAKE_DEVINFO_EXTRA members
 *                      of a new device list
 */
#ifndef FAKE_DEVICES_H
#error "include the fake library's header before fake_devices.c"
#endif
#if !defined(FAKE_DESCR_NOT_CONNECTED) || !defined(FAKE_DESCR_IO_FAILED)
#error "define FAKE_DESCR_NOT_CONNECTED and FAKE_DESCR_IO_FAILED before fake_devices.c"
#endif

#include <stdio.h>
#include <string.h>

/* ---- PCI address parsing: "bb:dd.f" or "dddd:bb:dd.f", hex digits in either case ---- */

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Parses 1..max_digits hex digits at *s (not followed by another digit); advances *s.
 * Returns 0 on success. */
static int parse_hex(const char **s, unsigned max_digits, uint32_t *out)
{
	unsigned n = 0;
	uint32_t v = 0;
	int d;

	while (n < max_digits && (d = hex_digit((*s)[0])) >= 0) {
		v = v * 16u + (uint32_t)d;
		(*s)++;
		n++;
	}
	if (n == 0 || hex_digit((*s)[0]) >= 0)
		return -1;
	*out = v;
	return 0;
}

/* Parses exactly one address occupying [s, end). Returns 0 on success. */
static int parse_pci_range(const char *s, const char *end, struct fake_pci *out)
{
	char buf[32];
	const char *p = buf;
	size_t len = (size_t)(end - s);
	uint32_t a, b, c, f;

	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (parse_hex(&p, 4, &a) != 0 || *p++ != ':' || parse_hex(&p, 2, &b) != 0)
		return -1;
	if (*p == ':') {
		/* domain:bus:device.function */
		p++;
		if (parse_hex(&p, 2, &c) != 0 || *p++ != '.' || parse_hex(&p, 1, &f) != 0)
			return -1;
		*out = (struct fake_pci){ a, b, c, f };
	} else if (*p == '.') {
		/* bus:device.function */
		p++;
		if (a > 0xffu || parse_hex(&p, 1, &f) != 0)
			return -1;
		*out = (struct fake_pci){ 0, a, b, f };
	} else {
		return -1;
	}
	if (*p != '\0' || out->device > 0x1fu || out->function > 7u)
		return -1;
	return 0;
}

static int parse_pci(const char *s, struct fake_pci *out)
{
	return parse_pci_range(s, s + strlen(s), out);
}

static int pci_equal(const struct fake_pci *a, const struct fake_pci *b)
{
	return a->domain == b->domain && a->bus == b->bus && a->device == b->device &&
	       a->function == b->function;
}

static void format_pci(const struct fake_pci *pci, char out[16])
{
	snprintf(out, 16, "%04x:%02x:%02x.%x", (unsigned)(pci->domain & 0xffffu),
		 (unsigned)(pci->bus & 0xffu), (unsigned)(pci->device & 0x1fu),
		 (unsigned)(pci->function & 7u));
}

/*
 * Splits the comma-separated list in env var `name` (default `def`) into parsed addresses.
 * Returns the number of valid entries written to a malloc'd array in *out (NULL when 0),
 * or -1 when out of memory.
 */
static int parse_pci_list(const char *name, const char *def, struct fake_pci **out)
{
	const char *s = getenv(name);
	const char *p, *start, *end;
	size_t cap = 1, n = 0;
	struct fake_pci *v;

	if (s == NULL)
		s = def;
	for (p = s; *p; p++)
		if (*p == ',')
			cap++;
	v = calloc(cap, sizeof(*v));
	if (v == NULL)
		return -1;
	for (start = s;; start = end + 1) {
		end = strchr(start, ',');
		if (end == NULL)
			end = start + strlen(start);
		/* trim blanks around the entry */
		while (start < end && (*start == ' ' || *start == '\t'))
			start++;
		p = end;
		while (p > start && (p[-1] == ' ' || p[-1] == '\t'))
			p--;
		if (p > start && parse_pci_range(start, p, &v[n]) == 0)
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

/* ---- device lists (NULL-terminated arrays of individually allocated entries) ---- */

doca_error_t FAKE_DEVINFO_CREATE_LIST(struct doca_devinfo ***dev_list, uint32_t *nb_devs)
{
	struct fake_pci *pcis = NULL;
	struct doca_devinfo **list;
	int n, i;

	if (dev_list == NULL || nb_devs == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	n = parse_pci_list("FAKE_DOCA_PCI", FAKE_DEFAULT_PCI, &pcis);
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
			FAKE_DEVINFO_DESTROY_LIST(list);
			free(pcis);
			return DOCA_ERROR_NO_MEMORY;
		}
		list[i]->pci = pcis[i];
		format_pci(&pcis[i], list[i]->pci_str);
	}
	free(pcis);
#ifdef FAKE_DEVINFO_FILL
	FAKE_DEVINFO_FILL(list, (uint32_t)n);
#endif
	*dev_list = list;
	*nb_devs = (uint32_t)n;
	return DOCA_SUCCESS;
}

doca_error_t FAKE_DEVINFO_DESTROY_LIST(struct doca_devinfo **dev_list)
{
	size_t i;

	if (dev_list == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	for (i = 0; dev_list[i] != NULL; i++)
		free(dev_list[i]);
	free(dev_list);
	return DOCA_SUCCESS;
}

doca_error_t FAKE_DEVINFO_IS_EQUAL_PCI(const struct doca_devinfo *devinfo, const char *pci_addr,
				       uint8_t *is_equal)
{
	struct fake_pci want;

	if (devinfo == NULL || pci_addr == NULL || is_equal == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	if (parse_pci(pci_addr, &want) != 0)
		return DOCA_ERROR_INVALID_VALUE;
	*is_equal = pci_equal(&devinfo->pci, &want) ? 1 : 0;
	return DOCA_SUCCESS;
}

doca_error_t FAKE_DEVINFO_REP_CREATE_LIST(struct doca_dev *dev, int filter,
					  struct doca_devinfo_rep ***dev_list_rep,
					  uint32_t *nb_devs_rep)
{
	struct fake_pci *pcis = NULL;
	struct doca_devinfo_rep **list;
	int n, i;

	(void)filter; /* every fake representor is a network one */
	if (dev == NULL || dev_list_rep == NULL || nb_devs_rep == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	n = parse_pci_list("FAKE_DOCA_REP_PCI", FAKE_DEFAULT_REP_PCI, &pcis);
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
			FAKE_DEVINFO_REP_DESTROY_LIST(list);
			free(pcis);
			return DOCA_ERROR_NO_MEMORY;
		}
		list[i]->pci = pcis[i];
		format_pci(&pcis[i], list[i]->pci_str);
	}
	free(pcis);
	*dev_list_rep = list;
	*nb_devs_rep = (uint32_t)n;
	return DOCA_SUCCESS;
}

doca_error_t FAKE_DEVINFO_REP_DESTROY_LIST(struct doca_devinfo_rep **dev_list_rep)
{
	size_t i;

	if (dev_list_rep == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	for (i = 0; dev_list_rep[i] != NULL; i++)
		free(dev_list_rep[i]);
	free(dev_list_rep);
	return DOCA_SUCCESS;
}

doca_error_t FAKE_DEVINFO_REP_IS_EQUAL_PCI(const struct doca_devinfo_rep *devinfo_rep,
					   const char *pci_addr, uint8_t *is_equal)
{
	struct fake_pci want;

	if (devinfo_rep == NULL || pci_addr == NULL || is_equal == NULL)
		return DOCA_ERROR_INVALID_VALUE;
	if (parse_pci(pci_addr, &want) != 0)
		return DOCA_ERROR_INVALID_VALUE;
	*is_equal = pci_equal(&devinfo_rep->pci, &want) ? 1 : 0;
	return DOCA_SUCCESS;
}

/* ---- devices: an opened device owns a copy of its devinfo, valid until closed ---- */

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
	[DOCA_ERROR_NOT_CONNECTED] = { "DOCA_ERROR_NOT_CONNECTED", FAKE_DESCR_NOT_CONNECTED },
	[DOCA_ERROR_NO_LOCK] = { "DOCA_ERROR_NO_LOCK", "Unable to acquire required lock" },
	[DOCA_ERROR_NOT_FOUND] = { "DOCA_ERROR_NOT_FOUND", "Resource not found" },
	[DOCA_ERROR_IO_FAILED] = { "DOCA_ERROR_IO_FAILED", FAKE_DESCR_IO_FAILED },
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

/* The 2.2 names know codes up to IN_PROGRESS; 2.7 also TOO_BIG. */
static int known_error(doca_error_t error)
{
	long v = (long)error;

	return v >= 0 && v <= (long)FAKE_LAST_ERROR;
}

const char *FAKE_ERROR_DESCR(doca_error_t error)
{
	return known_error(error) ? errors[error].descr : unrecognized;
}

const char *FAKE_ERROR_NAME(doca_error_t error)
{
	return known_error(error) ? errors[error].name : unrecognized;
}
