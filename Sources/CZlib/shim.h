// zlib's CRC-32 (IEEE 802.3 polynomial), used by the STUN FINGERPRINT attribute (RFC 8489 §14.7).
#include <zlib.h>
