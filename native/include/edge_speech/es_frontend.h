/*
 * The feature front end: samples in, one feature vector per frame out (fbank or MFCC), streaming.
 *
 *   es_frontend_config cfg = es_frontend_config_default();   // Kaldi's MFCC at 16 kHz
 *   es_frontend fe;
 *   if (es_frontend_init(&fe, &cfg) != ES_OK) ...;            // es_frontend_config_check says why
 *   size_t n;
 *   es_frontend_accept(&fe, &samples, out, capacity, &n);     // any chunk size, repeatedly
 *   es_frontend_finish(&fe, out, capacity, &n);               // flushes frames that overhang the end
 *   es_frontend_free(&fe);
 *
 * Output is identical whatever the chunking. Frames go into the caller's buffer of capacity
 * frames x es_frontend_dim() floats; es_frontend_frames_after() says how many a call can write.
 * Per frame: dither, DC removal, energy, pre-emphasis, window, FFT, power, mel, log, DCT,
 * CMVN, in the order Kaldi uses. After init nothing allocates. Thread safety: see es_common.h.
 */
#ifndef EDGE_SPEECH_ES_FRONTEND_H
#define EDGE_SPEECH_ES_FRONTEND_H

#include "es_common.h"
#include "es_cepstrum.h"
#include "es_cmvn.h"
#include "es_fft.h"
#include "es_framer.h"
#include "es_mel.h"
#include "es_window.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum es_feature_kind {
  ES_FEATURES_FBANK = 0,  /* log mel energies [+ log energy first if use_energy] */
  ES_FEATURES_MFCC = 1    /* cepstra; with use_energy, c0 is replaced by the log energy */
} es_feature_kind;

typedef enum es_log_scale {
  ES_LOG_NATURAL = 0,     /* ln(x) */
  ES_LOG_DECIBEL = 1      /* 10 log10(x), as librosa.power_to_db with ref 1 */
} es_log_scale;

typedef enum es_log_floor_mode {
  ES_LOG_FLOOR_MAX = 0,   /* log(max(x, floor)), as Kaldi and power_to_db */
  ES_LOG_FLOOR_ADD = 1    /* log(x + floor) */
} es_log_floor_mode;

typedef struct es_frontend_config {
  float sample_rate_hz;
  float frame_length_ms;
  float frame_shift_ms;
  int fft_size;               /* 0: the next power of two >= the frame length */
  es_padding padding;
  float input_scale;          /* samples are multiplied by this first (32768: Kaldi's int16 range) */
  float dither;               /* Gaussian noise amplitude; 0 disables */
  uint64_t dither_seed;       /* dither is a pure function of (seed, frame, sample): reproducible */
  int remove_dc_offset;
  float preemphasis;          /* x[i] -= coeff * x[i-1] inside each frame; 0 disables */
  es_window_type window;
  int periodic_window;
  int use_power;              /* 1: |X|^2; 0: |X| */
  es_mel_config mel;
  es_log_scale log_scale;
  es_log_floor_mode log_floor_mode;
  float log_floor;            /* > 0 */
  es_feature_kind kind;
  int num_ceps;
  float cepstral_lifter;
  int use_energy;
  int raw_energy;             /* energy before pre-emphasis and window (Kaldi's default) */
  float energy_floor;         /* > 0: log energy floored at log(energy_floor) */
  es_cmvn_config cmvn;
} es_frontend_config;

es_frontend_config es_frontend_config_default(void);
/* ES_OK, or ES_ERR_INVALID_CONFIG with the first problem explained in why. */
es_status es_frontend_config_check(const es_frontend_config *config, char *why, size_t why_size);
int es_frontend_config_dim(const es_frontend_config *config);

typedef struct es_frontend {
  int dim;
  int frame_length;
  int fft_size;
  es_frontend_config config;  /* cmvn.mean/stddev point into the cmvn stage's own copies */
  es_framer framer;
  es_rfft fft;
  es_mel_filterbank mel;
  es_cepstrum cepstrum;
  es_cmvn cmvn;
  float *window;              /* frame_length */
  float *frame;               /* fft_size: the padded, conditioned frame */
  float *spectrum;            /* fft_size + 2: complex bins, then reused for power */
  float *mel_energies;        /* mel.num_bins */
  float log_energy_floor;
  float log_floor;
} es_frontend;

es_status es_frontend_init(es_frontend *fe, const es_frontend_config *config);
void es_frontend_free(es_frontend *fe);
/* Forgets all input: the next sample is sample 0 of a new signal. */
void es_frontend_reset(es_frontend *fe);
int es_frontend_dim(const es_frontend *fe);

/* Frames the next accept of `num_samples` (or finish, if finishing) will write. */
size_t es_frontend_frames_after(const es_frontend *fe, size_t num_samples, int finishing);

/* Consumes all of `input`, writing completed frames to out (capacity_frames x dim floats).
 * Checks first that every sample is finite and that out is large enough; on error nothing is
 * consumed. Frames are numbered from 0 since init/reset; *frames_written is their count. */
es_status es_frontend_accept(es_frontend *fe, const es_samples *input, float *out,
                             size_t capacity_frames, size_t *frames_written);
/* Ends the signal: writes the frames that overhang its end. Then only reset accepts input. */
es_status es_frontend_finish(es_frontend *fe, float *out, size_t capacity_frames,
                             size_t *frames_written);
/* Total frames produced since init/reset. */
int64_t es_frontend_frames_done(const es_frontend *fe);

#ifdef __cplusplus
}
#endif
#endif
