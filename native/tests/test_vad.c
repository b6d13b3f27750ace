/* Energy VAD: silence and steady noise stay silent, a burst is detected with onset and
 * hangover, chunking does not change decisions, digital silence does not drag the noise floor
 * down, the floor follows steps of the background both ways, speech with pauses does not drag it
 * up, bad input is rejected. */
#include <stdlib.h>
#include <string.h>

#include "edge_speech/es_vad.h"
#include "es_test.h"

#define RATE 16000
#define SECONDS 8
#define FRAMES (SECONDS * 100)

static float signal[RATE * SECONDS];
static uint8_t decisions[FRAMES];

static size_t run(es_vad *vad, size_t chunk, uint8_t *out) {
  es_vad_reset(vad);
  size_t total = 0, written;
  for (size_t pos = 0; pos < RATE * SECONDS; pos += chunk) {
    size_t n = pos + chunk <= RATE * SECONDS ? chunk : RATE * SECONDS - pos;
    CHECK(es_vad_accept(vad, signal + pos, n, out + total, FRAMES, &written) == ES_OK);
    total += written;
  }
  return total;
}

/* Uniform noise with an RMS of level_db dBFS. */
static float noise(float level_db) { return (float)((es_test_uniform() - 0.5) * 3.4641 * pow(10.0, level_db / 20.0)); }

static int speech_frames(size_t from, size_t to) {
  int count = 0;
  for (size_t i = from; i < to && i < FRAMES; i++) count += decisions[i];
  return count;
}

int main(void) {
  es_test_seed(3);
  es_vad_config c = es_vad_config_default();
  es_vad vad;
  CHECK(es_vad_init(&vad, &c) == ES_OK);
  CHECK(isnan(vad.noise_floor_db));
  const int smooth = (int)(c.smooth_ms / c.frame_ms + 0.5f);

  /* Quiet noise (-65 dBFS) with a loud tone burst from 1.5 s to 2.5 s. */
  for (int i = 0; i < RATE * SECONDS; i++) {
    float tone = (i >= RATE * 3 / 2 && i < RATE * 5 / 2) ? 0.3f * (float)sin(i * 0.1) : 0.0f;
    signal[i] = noise(-65) + tone;
  }
  uint8_t chunked[FRAMES];
  size_t n = run(&vad, RATE * SECONDS, decisions);
  CHECK(n == FRAMES);
  int first = -1, last = -1;
  for (size_t i = 0; i < n; i++) {
    if (decisions[i] && first < 0) first = (int)i;
    if (decisions[i]) last = (int)i;
  }
  CHECK(first >= 150 && first <= 150 + c.onset_frames); /* onset: a few frames after 1.5 s */
  /* hangover, after the averaged energy has let go of the burst */
  CHECK(last >= 250 + c.hangover_frames - 2 && last <= 250 + c.hangover_frames + smooth + 1);
  CHECK(speech_frames(0, 140) == 0);
  CHECK_NEAR(vad.noise_floor_db, -65.0, 3.0);
  const size_t chunks[] = {1, 17, 160, 509};
  for (size_t k = 0; k < 4; k++) {
    CHECK(run(&vad, chunks[k], chunked) == n);
    CHECK(memcmp(decisions, chunked, n) == 0);
  }

  /* Steady loud noise becomes the floor: no endless speech. */
  for (int i = 0; i < RATE * SECONDS; i++) signal[i] = noise(-20);
  run(&vad, 320, decisions);
  CHECK(speech_frames(0, FRAMES) == 0);

  /* A noise gate: digital silence and a -54 dBFS noise tail alternating (0.4 s each). The old
   * floor, learned on the zeros, took the faint noise for speech. */
  for (int i = 0; i < RATE * SECONDS; i++) signal[i] = (i / (RATE * 2 / 5)) % 2 ? noise(-54) : 0.0f;
  run(&vad, 320, decisions);
  CHECK(speech_frames(0, FRAMES) == 0);
  CHECK_NEAR(vad.noise_floor_db, -54.0, 3.0);
  /* ... and speech after the zeros is still heard at once (the floor was remembered). */
  for (int i = RATE * 4; i < RATE * 5; i++) signal[i] = 0.0f;
  for (int i = RATE * 5; i < RATE * 6; i++) signal[i] = noise(-54) + 0.1f * (float)sin(i * 0.07);
  run(&vad, 320, decisions);
  CHECK(speech_frames(500, 500 + c.onset_frames + 1) >= 1);
  CHECK(speech_frames(0, 400) == 0);

  /* The background steps up by 20 dB at 2 s and down again at 5 s: speech for at most the
   * floor window (plus averaging and hangover) after the step up, never after the step down. */
  for (int i = 0; i < RATE * SECONDS; i++) signal[i] = noise(i >= RATE * 2 && i < RATE * 5 ? -40 : -60);
  run(&vad, 320, decisions);
  const int window = (int)(c.floor_window_ms / c.frame_ms);
  CHECK(speech_frames(0, 200) == 0);
  CHECK(speech_frames(200 + window + smooth + c.hangover_frames + 1, FRAMES) == 0);

  /* AGC: the gain ramps the background up by 12 dB over 4 s (3 dB/s) and back: no speech. */
  for (int i = 0; i < RATE * SECONDS; i++) {
    double t = (double)i / RATE;
    signal[i] = noise((float)(-62 + 3.0 * (t < 4 ? t : 8 - t)));
  }
  run(&vad, 320, decisions);
  CHECK(speech_frames(0, FRAMES) == 0);

  /* Speech-like: 6 s of syllables (a 4 Hz envelope whose pauses dip to the background) cannot
   * drag the floor up: speech all along. */
  for (int i = 0; i < RATE * SECONDS; i++) {
    double t = (double)i / RATE, env = sin(2 * 3.14159265 * 4 * t);
    signal[i] = noise(-60) + (t >= 1 && t < 7 ? (float)(0.1 * env * env * sin(i * 0.08)) : 0.0f);
  }
  run(&vad, 320, decisions);
  CHECK(speech_frames(100 + c.onset_frames + 1, 700) == 700 - (100 + c.onset_frames + 1));
  CHECK(speech_frames(0, 100) == 0);
  CHECK(speech_frames(700 + c.hangover_frames + smooth + 1, FRAMES) == 0);
  CHECK_NEAR(vad.noise_floor_db, -60.0, 3.0);

  /* Bad input and misuse. */
  es_vad_reset(&vad);
  float bad[200] = {0};
  bad[50] = NAN;
  size_t w;
  CHECK(es_vad_accept(&vad, bad, 200, decisions, 10, &w) == ES_ERR_NON_FINITE_INPUT && w == 0);
  CHECK(es_vad_accept(&vad, signal, 16000, decisions, 10, &w) == ES_ERR_BUFFER_TOO_SMALL);
  char why[200];
  es_vad_config badc = c;
  badc.onset_frames = 0;
  CHECK(es_vad_config_check(&badc, why, sizeof why) == ES_ERR_INVALID_CONFIG && strstr(why, "onset"));
  badc = c;
  badc.silence_level_db = -50.0f;
  CHECK(es_vad_config_check(&badc, why, sizeof why) == ES_ERR_INVALID_CONFIG && strstr(why, "silence_level_db"));
  badc = c;
  badc.floor_window_ms = 5.0f;
  CHECK(es_vad_config_check(&badc, why, sizeof why) == ES_ERR_INVALID_CONFIG && strstr(why, "floor_window_ms"));
  badc = c;
  badc.smooth_ms = 1000.0f;
  CHECK(es_vad_config_check(&badc, why, sizeof why) == ES_ERR_INVALID_CONFIG && strstr(why, "smooth_ms"));
  badc = c;
  badc.highpass_hz = NAN;
  CHECK(es_vad_config_check(&badc, why, sizeof why) == ES_ERR_INVALID_CONFIG && strstr(why, "highpass_hz"));
  badc = c;
  badc.frame_ms = 1e30f;
  CHECK(es_vad_config_check(&badc, why, sizeof why) == ES_ERR_INVALID_CONFIG && strstr(why, "frame_ms"));
  es_vad_free(&vad);
  es_vad_free(&vad);
  CHECK(es_vad_accept(&vad, signal, 10, decisions, 10, &w) == ES_ERR_STATE);
  ES_TEST_MAIN_END();
}
