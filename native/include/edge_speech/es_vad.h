/* Energy voice activity detection with a robust adaptive noise floor, for gating the acoustic
 * model while nothing is said. Per 10 ms frame (configurable):
 *   - the samples pass a one-pole high-pass (`highpass_hz`: DC offset and rumble carry no speech);
 *   - a frame below `silence_level_db` is digital silence (a noise gate, a muted or power-saving
 *     device): never speech, and invisible to the noise floor, which keeps what it had learned;
 *   - the frame energy is averaged over the last `smooth_ms` and the noise floor is its minimum over the last
 *     `floor_window_ms` (minimum statistics over ES_VAD_FLOOR_BLOCKS sub-blocks): the floor
 *     follows a quieter background at once and a louder one (a step, AGC) within the window,
 *     while speech, whose pauses and closures dip to the background, cannot drag it up;
 *   - speech when the smoothed level is `threshold_db` above the floor and above `min_level_db`,
 *     confirmed after `onset_frames` consecutive speech frames and held for `hangover_frames`.
 * Streaming: samples in chunks of any size give the decisions of one-shot processing.
 * Thread safety: one es_vad per thread; distinct states share nothing. */
#ifndef EDGE_SPEECH_ES_VAD_H
#define EDGE_SPEECH_ES_VAD_H

#include "es_common.h"
#include "es_config.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ES_VAD_FLOOR_BLOCKS 6
#define ES_VAD_MAX_SMOOTH_FRAMES 16

typedef struct es_vad_config {
  float sample_rate_hz;
  float frame_ms;           /* decision period (default 10) */
  float threshold_db;       /* above the noise floor (default 9) */
  float min_level_db;       /* absolute floor, dBFS (default -55) */
  int onset_frames;         /* consecutive speech frames to start (default 3) */
  int hangover_frames;      /* frames speech is held after energy drops (default 25) */
  float silence_level_db;   /* frames below this (dBFS) are digital silence (default -85) */
  float floor_window_ms;    /* minimum-statistics window of the noise floor (default 1500) */
  float smooth_ms;          /* energy averaged over this, up to 16 frames (default 40) */
  float highpass_hz;        /* cut-off of the high-pass before the energy, 0 = none (default 80) */
} es_vad_config;

/* The defaults above, from es_vad_config_table() (es_config.h). */
es_vad_config es_vad_config_default(void);
es_status es_vad_config_check(const es_vad_config *config, char *why, size_t why_size);

typedef struct es_vad {
  es_vad_config config;
  int frame_length;
  int block_frames;         /* non-silent frames per floor sub-block */
  int smooth_frames;        /* non-silent frames averaged (1..ES_VAD_MAX_SMOOTH_FRAMES) */
  float highpass;           /* one-pole high-pass pole (0: off) */
  float *frame;             /* frame_length samples being filled */
  int filled;
  float hp_in, hp_out;      /* high-pass state: last input and output sample */
  double recent[ES_VAD_MAX_SMOOTH_FRAMES]; /* energies (mean squares) of the last non-silent frames */
  int recent_count, recent_next;
  float block_min[ES_VAD_FLOOR_BLOCKS]; /* smoothed level minimum of each finished sub-block, dBFS */
  int block_next;           /* sub-block to overwrite next */
  float current_min;        /* minimum of the sub-block being filled */
  int current_frames;
  float noise_floor_db;     /* the tracked floor; NaN until a non-silent frame was seen */
  float level_db;           /* smoothed level of the last non-silent frame (NaN before) */
  int run;                  /* consecutive loud frames */
  int hold;                 /* frames of hangover left */
  int speaking;
  int64_t frames_done;
} es_vad;

es_status es_vad_init(es_vad *vad, const es_vad_config *config);
void es_vad_free(es_vad *vad);
/* Forgets everything, the learned noise floor included. */
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
