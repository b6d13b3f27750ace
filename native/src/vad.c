#include "edge_speech/es_vad.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "es_internal.h"

es_vad_config es_vad_config_default(void) {
  es_vad_config c;
  c.sample_rate_hz = 16000.0f;
  c.frame_ms = 10.0f;
  c.threshold_db = 9.0f;
  c.min_level_db = -55.0f;
  c.onset_frames = 3;
  c.hangover_frames = 25;
  c.floor_rise_db_per_s = 3.0f;
  return c;
}

static int frame_samples(const es_vad_config *c) { return (int)(c->sample_rate_hz * c->frame_ms * 0.001f + 0.5f); }

es_status es_vad_config_check(const es_vad_config *c, char *why, size_t why_size) {
  char msg[200];
  if (c == NULL) return ES_ERR_INVALID_ARGUMENT;
  if (!(c->sample_rate_hz > 0.0f) || !isfinite(c->sample_rate_hz))
    snprintf(msg, sizeof msg, "VAD sample rate must be > 0, got %g", c->sample_rate_hz);
  else if (!(c->frame_ms > 0.0f) || frame_samples(c) < 1 || frame_samples(c) > 1 << 20)
    snprintf(msg, sizeof msg, "VAD frame_ms %g gives %d samples", c->frame_ms, frame_samples(c));
  else if (!(c->threshold_db >= 0.0f) || !isfinite(c->threshold_db) || !isfinite(c->min_level_db))
    snprintf(msg, sizeof msg, "VAD thresholds must be finite, threshold_db >= 0");
  else if (c->onset_frames < 1 || c->hangover_frames < 0)
    snprintf(msg, sizeof msg, "VAD onset_frames must be >= 1 and hangover_frames >= 0");
  else if (!(c->floor_rise_db_per_s >= 0.0f) || !isfinite(c->floor_rise_db_per_s))
    snprintf(msg, sizeof msg, "VAD floor_rise_db_per_s must be finite and >= 0");
  else
    return ES_OK;
  es_explain(why, why_size, msg);
  return ES_ERR_INVALID_CONFIG;
}

void es_vad_free(es_vad *vad) {
  if (vad == NULL) return;
  free(vad->frame);
  memset(vad, 0, sizeof(*vad));
}

void es_vad_reset(es_vad *vad) {
  vad->filled = 0;
  vad->noise_floor_db = 0.0f; /* set by the first frame */
  vad->run = vad->hold = vad->speaking = 0;
  vad->frames_done = 0;
}

es_status es_vad_init(es_vad *vad, const es_vad_config *c) {
  if (vad == NULL) return ES_ERR_INVALID_ARGUMENT;
  memset(vad, 0, sizeof(*vad));
  es_status s = es_vad_config_check(c, NULL, 0);
  if (s != ES_OK) return s;
  vad->config = *c;
  vad->frame_length = frame_samples(c);
  vad->frame = malloc(sizeof(float) * (size_t)vad->frame_length);
  if (vad->frame == NULL) return ES_ERR_OUT_OF_MEMORY;
  es_vad_reset(vad);
  return ES_OK;
}

size_t es_vad_frames_after(const es_vad *vad, size_t num_samples) {
  return (vad->filled + num_samples) / (size_t)vad->frame_length;
}

static uint8_t decide(es_vad *vad) {
  const es_vad_config *c = &vad->config;
  double energy = 0.0;
  for (int i = 0; i < vad->frame_length; i++) energy += (double)vad->frame[i] * vad->frame[i];
  float level = (float)(10.0 * log10(energy / vad->frame_length + 1e-12));
  if (vad->frames_done == 0) vad->noise_floor_db = level;
  const float rise = c->floor_rise_db_per_s * c->frame_ms * 0.001f;
  /* The floor follows quiet frames down at once and creeps up slowly, so speech cannot drag it. */
  vad->noise_floor_db = level < vad->noise_floor_db ? level : ES_MIN(level, vad->noise_floor_db + rise);
  const int loud = level >= c->min_level_db && level >= vad->noise_floor_db + c->threshold_db;
  vad->run = loud ? vad->run + 1 : 0;
  if (vad->run >= c->onset_frames) {
    vad->speaking = 1;
    vad->hold = c->hangover_frames;
  } else if (vad->speaking && !loud) {
    if (vad->hold > 0) vad->hold--;
    else vad->speaking = 0;
  }
  vad->frames_done++;
  return (uint8_t)vad->speaking;
}

es_status es_vad_accept(es_vad *vad, const float *samples, size_t count, uint8_t *out, size_t capacity,
                        size_t *written) {
  if (written) *written = 0;
  if (vad == NULL || written == NULL || (count > 0 && samples == NULL)) return ES_ERR_INVALID_ARGUMENT;
  if (vad->frame == NULL) return ES_ERR_STATE;
  const size_t needed = es_vad_frames_after(vad, count);
  if (needed > capacity || (needed > 0 && out == NULL)) return ES_ERR_BUFFER_TOO_SMALL;
  float check = 0.0f;
  for (size_t i = 0; i < count; i++) check += samples[i] - samples[i];
  if (check != 0.0f) return ES_ERR_NON_FINITE_INPUT;
  size_t n = 0;
  for (size_t i = 0; i < count; i++) {
    vad->frame[vad->filled++] = samples[i];
    if (vad->filled == vad->frame_length) {
      out[n++] = decide(vad);
      vad->filled = 0;
    }
  }
  *written = n;
  return ES_OK;
}
