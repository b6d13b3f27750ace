#include "edge_speech/es_cmvn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "es_internal.h"

es_cmvn_config es_cmvn_config_default(void) {
  es_cmvn_config c;
  memset(&c, 0, sizeof c);
  c.mode = ES_CMVN_NONE;
  c.window_frames = 600;
  return c;
}

es_status es_cmvn_config_check(const es_cmvn_config *c, int dim, char *why, size_t why_size) {
  char msg[200];
  if (c == NULL || dim < 1) return ES_ERR_INVALID_ARGUMENT;
  switch (c->mode) {
    case ES_CMVN_NONE: return ES_OK;
    case ES_CMVN_SLIDING:
      if (c->window_frames >= 1 && c->window_frames <= 1000000) return ES_OK;
      snprintf(msg, sizeof msg, "cmvn_window_frames must be in 1..1000000, got %d", c->window_frames);
      break;
    case ES_CMVN_GLOBAL:
      if (c->mean == NULL) {
        snprintf(msg, sizeof msg, "global CMVN needs the mean vector");
        break;
      }
      for (int i = 0; i < dim; i++) {
        if (!(fabsf(c->mean[i]) <= ES_CMVN_MAX_ABS_MEAN) ||
            (c->stddev && !(c->stddev[i] >= ES_CMVN_MIN_STD && isfinite(c->stddev[i])))) {
          snprintf(msg, sizeof msg,
                   "global CMVN statistics at dimension %d: the mean must be within +-1e9 and the std finite "
                   "and >= 1e-6 (features would overflow)",
                   i);
          es_explain(why, why_size, msg);
          return ES_ERR_INVALID_CONFIG;
        }
      }
      return ES_OK;
    default:
      snprintf(msg, sizeof msg, "unknown CMVN mode %d", (int)c->mode);
  }
  es_explain(why, why_size, msg);
  return ES_ERR_INVALID_CONFIG;
}

void es_cmvn_free(es_cmvn *cmvn) {
  if (cmvn == NULL) return;
  free(cmvn->offset);
  free(cmvn->scale);
  free(cmvn->history);
  free(cmvn->sum);
  free(cmvn->sum_squares);
  memset(cmvn, 0, sizeof(*cmvn));
}

es_status es_cmvn_init(es_cmvn *cmvn, const es_cmvn_config *c, int dim) {
  if (cmvn == NULL) return ES_ERR_INVALID_ARGUMENT;
  memset(cmvn, 0, sizeof(*cmvn));
  es_status status = es_cmvn_config_check(c, dim, NULL, 0);
  if (status != ES_OK) return status;
  cmvn->mode = c->mode;
  cmvn->dim = dim;
  cmvn->window_frames = c->window_frames;
  cmvn->normalize_variance = c->normalize_variance;
  if (c->mode == ES_CMVN_GLOBAL) {
    cmvn->offset = malloc(sizeof(float) * (size_t)dim);
    cmvn->scale = malloc(sizeof(float) * (size_t)dim);
    if (!cmvn->offset || !cmvn->scale) goto oom;
    for (int i = 0; i < dim; i++) {
      cmvn->offset[i] = c->mean[i];
      cmvn->scale[i] = c->stddev ? 1.0f / c->stddev[i] : 1.0f;
    }
  } else if (c->mode == ES_CMVN_SLIDING) {
    cmvn->history = malloc(sizeof(float) * (size_t)dim * (size_t)c->window_frames);
    cmvn->sum = calloc((size_t)dim, sizeof(double));
    cmvn->sum_squares = calloc((size_t)dim, sizeof(double));
    if (!cmvn->history || !cmvn->sum || !cmvn->sum_squares) goto oom;
  }
  return ES_OK;
oom:
  es_cmvn_free(cmvn);
  return ES_ERR_OUT_OF_MEMORY;
}

void es_cmvn_reset(es_cmvn *cmvn) {
  if (cmvn->mode != ES_CMVN_SLIDING) return;
  memset(cmvn->sum, 0, sizeof(double) * (size_t)cmvn->dim);
  memset(cmvn->sum_squares, 0, sizeof(double) * (size_t)cmvn->dim);
  cmvn->frames_seen = 0;
}

void es_cmvn_apply(es_cmvn *cmvn, float *frame) {
  const int dim = cmvn->dim;
  if (cmvn->mode == ES_CMVN_GLOBAL) {
    for (int i = 0; i < dim; i++) frame[i] = (frame[i] - cmvn->offset[i]) * cmvn->scale[i];
    return;
  }
  if (cmvn->mode != ES_CMVN_SLIDING) return;
  float *slot = cmvn->history + (size_t)(cmvn->frames_seen % cmvn->window_frames) * dim;
  const int full = cmvn->frames_seen >= cmvn->window_frames;
  for (int i = 0; i < dim; i++) {
    if (full) {  /* the oldest frame leaves the window */
      cmvn->sum[i] -= slot[i];
      cmvn->sum_squares[i] -= (double)slot[i] * slot[i];
    }
    cmvn->sum[i] += frame[i];
    cmvn->sum_squares[i] += (double)frame[i] * frame[i];
    slot[i] = frame[i];
  }
  cmvn->frames_seen++;
  const double count = (double)ES_MIN(cmvn->frames_seen, (int64_t)cmvn->window_frames);
  for (int i = 0; i < dim; i++) {
    double mean = cmvn->sum[i] / count;
    double x = frame[i] - mean;
    if (cmvn->normalize_variance) {
      double var = cmvn->sum_squares[i] / count - mean * mean;
      x = var > 1e-20 ? x / sqrt(var) : x; /* a constant window leaves the centred value alone */
    }
    frame[i] = (float)x;
  }
}
