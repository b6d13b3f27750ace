/* Cepstral mean (and variance) normalisation: global statistics, or a causal sliding window
 * (the mean of the current frame and the window_frames - 1 before it; no look-ahead, so it
 * streams with zero latency). */
#ifndef EDGE_SPEECH_ES_CMVN_H
#define EDGE_SPEECH_ES_CMVN_H

#include "es_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum es_cmvn_mode {
  ES_CMVN_NONE = 0,
  ES_CMVN_GLOBAL = 1,   /* x = (x - mean) / std with caller-given statistics */
  ES_CMVN_SLIDING = 2   /* x = x - window mean (and / window std if normalize_variance) */
} es_cmvn_mode;

/* Bounds on global statistics: a smaller std or a larger mean makes features overflow to Inf at
 * the feature scales the front end allows (output_scale and output_offset within +-1e6). */
#define ES_CMVN_MIN_STD 1e-6f
#define ES_CMVN_MAX_ABS_MEAN 1e9f

typedef struct es_cmvn_config {
  es_cmvn_mode mode;
  int window_frames;        /* sliding: window length in frames (Kaldi's default 600) */
  int normalize_variance;   /* sliding: also divide by the window's standard deviation */
  const float *mean;        /* global: dim values; copied by init */
  const float *stddev;      /* global: dim values, each > 0; copied by init; NULL means all 1 */
} es_cmvn_config;

es_cmvn_config es_cmvn_config_default(void);

typedef struct es_cmvn {
  es_cmvn_mode mode;
  int dim;
  int window_frames;
  int normalize_variance;
  float *offset;        /* global: mean */
  float *scale;         /* global: 1 / std */
  float *history;       /* sliding: ring of window_frames x dim raw frames */
  double *sum;          /* sliding: running sums over the ring */
  double *sum_squares;
  int64_t frames_seen;
} es_cmvn;

es_status es_cmvn_config_check(const es_cmvn_config *config, int dim, char *why, size_t why_size);
es_status es_cmvn_init(es_cmvn *cmvn, const es_cmvn_config *config, int dim);
void es_cmvn_free(es_cmvn *cmvn);
void es_cmvn_reset(es_cmvn *cmvn);
/* Normalises one frame in place. */
void es_cmvn_apply(es_cmvn *cmvn, float *frame);

#ifdef __cplusplus
}
#endif
#endif
