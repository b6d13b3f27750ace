/*
 * The feature front end: samples in, one feature vector per frame out (fbank or MFCC), streaming.
 *
 *   es_frontend_config cfg = es_frontend_config_default();   // Kaldi's 80-bin fbank at 16 kHz
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
 * CMVN, in the order Kaldi uses; between the log (or DCT) and CMVN an optional affine map
 * (output_scale, output_offset) and clamp (output_clamp). After init nothing allocates.
 * Thread safety: see es_common.h.
 *
 * ES_OUTPUT_CLAMP_UTTERANCE (Whisper's max(x, x.max() - 8)) needs the whole utterance: the frames
 * accept and finish write are final only after es_frontend_clamp_utterance has run over all of
 * them. Streaming callers use ES_OUTPUT_CLAMP_FIXED, which is per frame.
 */
#ifndef EDGE_SPEECH_ES_FRONTEND_H
#define EDGE_SPEECH_ES_FRONTEND_H

#include "es_common.h"
#include "es_config.h"
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
  ES_LOG_DECIBEL = 1,     /* 10 log10(x), as librosa.power_to_db with ref 1 */
  ES_LOG_LOG10 = 2        /* log10(x), as Whisper */
} es_log_scale;

typedef enum es_log_floor_mode {
  ES_LOG_FLOOR_MAX = 0,   /* log(max(x, floor)), as Kaldi and power_to_db */
  ES_LOG_FLOOR_ADD = 1    /* log(x + floor) */
} es_log_floor_mode;

typedef enum es_output_clamp {
  ES_OUTPUT_CLAMP_NONE = 0,
  ES_OUTPUT_CLAMP_UTTERANCE = 1, /* y = max(y, max over the utterance - output_clamp_range) */
  ES_OUTPUT_CLAMP_FIXED = 2      /* y = max(y, output_clamp_floor): per frame, causal */
} es_output_clamp;

typedef struct es_frontend_config {
  float sample_rate_hz;
  float frame_length_ms;
  float frame_shift_ms;
  int fft_size;               /* 0: automatic (see round_to_power_of_two); else a power of two
                                 >= the frame length, which is zero-padded to it */
  int round_to_power_of_two;  /* fft_size 0 and 1: the next power of two >= the frame length;
                                 0: an FFT of exactly the frame length, which
                                 must be even with no prime factor above 7 in its half (Kaldi's
                                 round_to_power_of_two=false; Whisper's n_fft 400) */
  int drop_last_frame;        /* 1: the signal's last frame is not produced (Whisper) */
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
  float output_scale;         /* every value y = output_scale * y + output_offset after the log */
  float output_offset;        /* (or DCT), before the clamp: Whisper's (x + 4) / 4 is 0.25, 1 */
  es_output_clamp output_clamp;
  float output_clamp_range;   /* > 0, in output units: UTTERANCE floors at max - range */
  float output_clamp_floor;   /* in output units: FIXED floors every value at this */
  es_cmvn_config cmvn;        /* with ES_OUTPUT_CLAMP_UTTERANCE only ES_CMVN_NONE (the clamp comes last) */
} es_frontend_config;

/* Kaldi's 80-bin log-mel filterbank at 16 kHz: the defaults of es_frontend_config_table() (es_config.h),
 * which also names each field's range and enum values. */
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

/* ES_OUTPUT_CLAMP_UTTERANCE: floors all num_frames x dim values (a whole utterance's frames, as
 * accept and finish wrote them) at their maximum minus output_clamp_range, in place. Does
 * nothing for the other modes. Allocates nothing; reads fe's config only. */
void es_frontend_clamp_utterance(const es_frontend *fe, float *frames, size_t num_frames);

#ifdef __cplusplus
}
#endif
#endif
