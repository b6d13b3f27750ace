/* Energy voice activity detection with an adaptive noise floor, for gating the acoustic model
 * while nothing is said. Per 10 ms frame (configurable): frame energy in dB; speech when it is
 * `threshold_db` above the tracked noise floor and above `min_level_db`, confirmed after
 * `onset_frames` consecutive speech frames and held for `hangover_frames` after the last one.
 * Streaming: samples in chunks of any size give the decisions of one-shot processing. */
#ifndef EDGE_SPEECH_ES_VAD_H
#define EDGE_SPEECH_ES_VAD_H

#include "es_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct es_vad_config {
  float sample_rate_hz;
  float frame_ms;           /* decision period (default 10) */
  float threshold_db;       /* above the noise floor (default 9) */
  float min_level_db;       /* absolute floor, dBFS (default -55) */
  int onset_frames;         /* consecutive speech frames to start (default 3) */
  int hangover_frames;      /* frames speech is held after energy drops (default 25) */
  float floor_rise_db_per_s;  /* how fast the noise floor may rise (default 3); it falls at once */
} es_vad_config;

es_vad_config es_vad_config_default(void);
es_status es_vad_config_check(const es_vad_config *config, char *why, size_t why_size);

typedef struct es_vad {
  es_vad_config config;
  int frame_length;
  float *frame;             /* frame_length samples being filled */
  int filled;
  float noise_floor_db;
  int run;                  /* consecutive loud frames */
  int hold;                 /* frames of hangover left */
  int speaking;
  int64_t frames_done;
} es_vad;

es_status es_vad_init(es_vad *vad, const es_vad_config *config);
void es_vad_free(es_vad *vad);
void es_vad_reset(es_vad *vad);
/* Frames the next accept of num_samples will decide. */
size_t es_vad_frames_after(const es_vad *vad, size_t num_samples);
/* Consumes float samples in [-1, 1]; writes one decision per completed frame (1 speech, 0 not)
 * into out (capacity entries). NaN/Inf input is rejected before anything is consumed. */
es_status es_vad_accept(es_vad *vad, const float *samples, size_t count, uint8_t *out, size_t capacity,
                        size_t *written);

#ifdef __cplusplus
}
#endif
#endif
