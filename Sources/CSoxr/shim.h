// libsoxr (Debian libsoxr-dev): the SoX resampler, used to bring WAV files of any rate to 48 kHz.
#ifndef PARLEY_CSOXR_SHIM_H
#define PARLEY_CSOXR_SHIM_H
#include <soxr.h>
#endif
