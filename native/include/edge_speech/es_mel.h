/* Mel filterbank over a one-sided spectrum, stored sparsely (each filter's non-zero run). */
#ifndef EDGE_SPEECH_ES_MEL_H
#define EDGE_SPEECH_ES_MEL_H

#include "es_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum es_mel_scale {
  ES_MEL_SCALE_HTK = 0,    /* 1127 ln(1 + f / 700), as Kaldi and HTK */
  ES_MEL_SCALE_SLANEY = 1  /* linear below 1 kHz, logarithmic above (Slaney's Auditory Toolbox, librosa) */
} es_mel_scale;

typedef enum es_mel_triangles {
  ES_MEL_TRIANGLES_MEL = 0, /* weights linear in mel between the band edges (Kaldi) */
  ES_MEL_TRIANGLES_HZ = 1   /* weights linear in Hz between mel-spaced edges (librosa, HTK) */
} es_mel_triangles;

typedef enum es_mel_norm {
  ES_MEL_NORM_NONE = 0,    /* peak weight 1 */
  ES_MEL_NORM_SLANEY = 1   /* each filter scaled by 2 / bandwidth in Hz: constant energy per band */
} es_mel_norm;

typedef struct es_mel_config {
  int num_bins;
  float low_freq_hz;
  float high_freq_hz;      /* > 0: absolute; <= 0: offset from Nyquist (0 is Nyquist), as Kaldi */
  es_mel_scale scale;
  es_mel_triangles triangles;
  es_mel_norm norm;
} es_mel_config;

es_mel_config es_mel_config_default(void); /* Kaldi's: 23 bins, 20 Hz .. Nyquist, htk, mel triangles */

typedef struct es_mel_filterbank {
  int num_bins;
  int num_fft_bins;        /* fft_size / 2 + 1 */
  int *first_bin;          /* per filter: first spectrum bin with a non-zero weight */
  int *num_weights;        /* per filter: length of the run (0 for an empty filter) */
  int *weight_offset;      /* per filter: index of its run in `weights` */
  float *weights;
} es_mel_filterbank;

/* Explains (into why) and rejects configs that cannot work at this rate and FFT size. */
es_status es_mel_config_check(const es_mel_config *config, float sample_rate_hz, int fft_size,
                              char *why, size_t why_size);
es_status es_mel_init(es_mel_filterbank *bank, const es_mel_config *config, float sample_rate_hz,
                      int fft_size);
void es_mel_free(es_mel_filterbank *bank);

/* out[b] = sum_k weights[b][k] * spectrum[k]; spectrum holds num_fft_bins values. */
void es_mel_apply(const es_mel_filterbank *bank, const float *spectrum, float *out);

/* Dense copy of the weights, num_bins x num_fft_bins row-major, for inspection and tests. */
void es_mel_dense(const es_mel_filterbank *bank, float *out);

double es_hz_to_mel(double hz, es_mel_scale scale);
double es_mel_to_hz(double mel, es_mel_scale scale);

#ifdef __cplusplus
}
#endif
#endif
