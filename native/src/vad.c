#include "edge_speech/es_vad.h"

#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge_speech/es_config.h"
#include "es_internal.h"

#define NO_LEVEL 1e30f /* an empty sub-block's minimum */

#define AT(member) offsetof(es_vad_config, member)
#define NUMBER(name, def, lo, hi, flags) {#name, ES_FIELD_FLOAT, AT(name), def, lo, hi, flags, NULL}
#define INTEGER(name, def, lo, hi) {#name, ES_FIELD_INT, AT(name), def, lo, hi, 0, NULL}
/* Ranges of single fields; es_vad_config_check adds those between fields (silence below
 * min_level, the floor window at least a frame, smoothing up to 16 frames, high-pass to rate / 16). */
static const es_config_field vad_fields[] = {
    NUMBER(sample_rate_hz, 16000.0, 0.0, INFINITY, ES_FIELD_MIN_EXCLUSIVE | ES_FIELD_MAX_EXCLUSIVE),
    NUMBER(frame_ms, 10.0, 0.0, 1000.0, ES_FIELD_MIN_EXCLUSIVE),
    NUMBER(threshold_db, 9.0, 0.0, INFINITY, ES_FIELD_MAX_EXCLUSIVE),
    NUMBER(min_level_db, -55.0, -INFINITY, INFINITY, ES_FIELD_MIN_EXCLUSIVE | ES_FIELD_MAX_EXCLUSIVE),
    INTEGER(onset_frames, 3, 1, INT_MAX),
    INTEGER(hangover_frames, 25, 0, INT_MAX),
    NUMBER(silence_level_db, -85.0, -INFINITY, INFINITY, ES_FIELD_MIN_EXCLUSIVE | ES_FIELD_MAX_EXCLUSIVE),
    NUMBER(floor_window_ms, 1500.0, 0.0, 600000.0, ES_FIELD_MIN_EXCLUSIVE),
    NUMBER(smooth_ms, 40.0, 0.0, INFINITY, ES_FIELD_MAX_EXCLUSIVE),
    NUMBER(highpass_hz, 80.0, 0.0, INFINITY, ES_FIELD_MAX_EXCLUSIVE),
};
#undef AT
#undef NUMBER
#undef INTEGER

static const es_config_table vad_table = {"vad", vad_fields, (int)(sizeof vad_fields / sizeof vad_fields[0])};

const es_config_table *es_vad_config_table(void) { return &vad_table; }

es_vad_config es_vad_config_default(void) {
  es_vad_config c;
  memset(&c, 0, sizeof c);
  es_config_set_defaults(&vad_table, &c);
  return c;
}

static int frame_samples(const es_vad_config *c) { return (int)(c->sample_rate_hz * c->frame_ms * 0.001f + 0.5f); }

es_status es_vad_config_check(const es_vad_config *c, char *why, size_t why_size) {
  char msg[200];
  if (c == NULL) return ES_ERR_INVALID_ARGUMENT;
  if (!(c->sample_rate_hz > 0.0f) || !isfinite(c->sample_rate_hz))
    snprintf(msg, sizeof msg, "VAD sample rate must be > 0, got %g", c->sample_rate_hz);
  else if (!(c->frame_ms > 0.0f) || !(c->frame_ms <= 1000.0f) || frame_samples(c) < 1 || frame_samples(c) > 1 << 20)
    snprintf(msg, sizeof msg, "VAD frame_ms %g gives %d samples", c->frame_ms,
             c->frame_ms > 0.0f && c->frame_ms <= 1000.0f ? frame_samples(c) : 0);
  else if (!(c->threshold_db >= 0.0f) || !isfinite(c->threshold_db) || !isfinite(c->min_level_db))
    snprintf(msg, sizeof msg, "VAD thresholds must be finite, threshold_db >= 0");
  else if (c->onset_frames < 1 || c->hangover_frames < 0)
    snprintf(msg, sizeof msg, "VAD onset_frames must be >= 1 and hangover_frames >= 0");
  else if (!isfinite(c->silence_level_db) || !(c->silence_level_db < c->min_level_db))
    snprintf(msg, sizeof msg, "VAD silence_level_db must be finite and below min_level_db (%g), got %g",
             c->min_level_db, c->silence_level_db);
  else if (!(c->floor_window_ms >= c->frame_ms) || !(c->floor_window_ms <= 600000.0f))
    snprintf(msg, sizeof msg, "VAD floor_window_ms must be from frame_ms (%g) to 600000, got %g", c->frame_ms,
             c->floor_window_ms);
  else if (!(c->smooth_ms >= 0.0f) || !(c->smooth_ms <= ES_VAD_MAX_SMOOTH_FRAMES * c->frame_ms))
    snprintf(msg, sizeof msg, "VAD smooth_ms must be from 0 to %d frames (%g ms), got %g", ES_VAD_MAX_SMOOTH_FRAMES,
             ES_VAD_MAX_SMOOTH_FRAMES * c->frame_ms, c->smooth_ms);
  else if (!(c->highpass_hz >= 0.0f) || !(c->highpass_hz <= c->sample_rate_hz / 16.0f))
    snprintf(msg, sizeof msg, "VAD highpass_hz must be from 0 to sample_rate_hz / 16 (%g), got %g",
             c->sample_rate_hz / 16.0f, c->highpass_hz);
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
  vad->hp_in = vad->hp_out = 0.0f;
  vad->recent_count = vad->recent_next = 0;
  for (int b = 0; b < ES_VAD_FLOOR_BLOCKS; b++) vad->block_min[b] = NO_LEVEL;
  vad->block_next = 0;
  vad->current_min = NO_LEVEL;
  vad->current_frames = 0;
  vad->noise_floor_db = NAN;
  vad->level_db = NAN;
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
  const double blocks = c->floor_window_ms / c->frame_ms / ES_VAD_FLOOR_BLOCKS;
  vad->block_frames = blocks < 1.0 ? 1 : (int)(blocks + 0.5);
  const int smooth = (int)(c->smooth_ms / c->frame_ms + 0.5f);
  vad->smooth_frames = smooth < 1 ? 1 : smooth > ES_VAD_MAX_SMOOTH_FRAMES ? ES_VAD_MAX_SMOOTH_FRAMES : smooth;
  vad->highpass = c->highpass_hz > 0.0f ? 1.0f - 2.0f * 3.14159265f * c->highpass_hz / c->sample_rate_hz : 0.0f;
  vad->frame = malloc(sizeof(float) * (size_t)vad->frame_length);
  if (vad->frame == NULL) return ES_ERR_OUT_OF_MEMORY;
  es_vad_reset(vad);
  return ES_OK;
}

size_t es_vad_frames_after(const es_vad *vad, size_t num_samples) {
  return (vad->filled + num_samples) / (size_t)vad->frame_length;
}

/* Minimum statistics: the smoothed level enters the current sub-block; a full sub-block joins
 * the ring, replacing the oldest. The floor is the minimum over the ring and the current one. */
static float track_floor(es_vad *vad, float level) {
  if (level < vad->current_min) vad->current_min = level;
  if (++vad->current_frames >= vad->block_frames) {
    vad->block_min[vad->block_next] = vad->current_min;
    vad->block_next = (vad->block_next + 1) % ES_VAD_FLOOR_BLOCKS;
    vad->current_min = NO_LEVEL;
    vad->current_frames = 0;
  }
  float floor = vad->current_min;
  for (int b = 0; b < ES_VAD_FLOOR_BLOCKS; b++) floor = ES_MIN(floor, vad->block_min[b]);
  return floor;
}

static uint8_t decide(es_vad *vad) {
  const es_vad_config *c = &vad->config;
  double energy = 0.0;
  if (vad->highpass > 0.0f) {
    float in = vad->hp_in, out = vad->hp_out;
    for (int i = 0; i < vad->frame_length; i++) {
      out = vad->frame[i] - in + vad->highpass * out;
      in = vad->frame[i];
      energy += (double)out * out;
    }
    vad->hp_in = in;
    vad->hp_out = fabsf(out) < 1e-20f ? 0.0f : out; /* no denormals after long digital silence */
  } else {
    for (int i = 0; i < vad->frame_length; i++) energy += (double)vad->frame[i] * vad->frame[i];
  }
  energy /= vad->frame_length;
  int loud = 0;
  if (10.0 * log10(energy + 1e-20) >= c->silence_level_db) {
    /* digital silence (below the level) changes nothing: no average, no floor, never speech */
    vad->recent[vad->recent_next] = energy;
    vad->recent_next = (vad->recent_next + 1) % vad->smooth_frames;
    if (vad->recent_count < vad->smooth_frames) vad->recent_count++;
    double sum = 0.0;
    for (int k = 0; k < vad->recent_count; k++) sum += vad->recent[k];
    const float level = (float)(10.0 * log10(sum / vad->recent_count + 1e-20));
    vad->level_db = level;
    vad->noise_floor_db = track_floor(vad, level);
    loud = level >= c->min_level_db && level >= vad->noise_floor_db + c->threshold_db;
  }
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
