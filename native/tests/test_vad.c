/* Energy VAD: silence and steady noise stay silent, a burst is detected with onset and
 * hangover, chunking does not change decisions, bad input is rejected. */
#include <stdlib.h>
#include <string.h>

#include "edge_speech/es_vad.h"
#include "es_test.h"

#define RATE 16000
#define SECONDS 4

static float signal[RATE * SECONDS];

static size_t run(es_vad *vad, size_t chunk, uint8_t *out) {
  es_vad_reset(vad);
  size_t total = 0, written;
  for (size_t pos = 0; pos < RATE * SECONDS; pos += chunk) {
    size_t n = pos + chunk <= RATE * SECONDS ? chunk : RATE * SECONDS - pos;
    CHECK(es_vad_accept(vad, signal + pos, n, out + total, 1000, &written) == ES_OK);
    total += written;
  }
  return total;
}

int main(void) {
  srand(3);
  /* Quiet noise (-60 dBFS-ish) with a loud tone burst from 1.5 s to 2.5 s. */
  for (int i = 0; i < RATE * SECONDS; i++) {
    float noise = 0.001f * ((float)rand() / RAND_MAX - 0.5f);
    float tone = (i >= RATE * 3 / 2 && i < RATE * 5 / 2) ? 0.3f * (float)sin(i * 0.1) : 0.0f;
    signal[i] = noise + tone;
  }
  es_vad_config c = es_vad_config_default();
  es_vad vad;
  CHECK(es_vad_init(&vad, &c) == ES_OK);
  uint8_t whole[1000], chunked[1000];
  size_t n = run(&vad, RATE * SECONDS, whole);
  CHECK(n == 400);
  int first = -1, last = -1;
  for (size_t i = 0; i < n; i++) {
    if (whole[i] && first < 0) first = (int)i;
    if (whole[i]) last = (int)i;
  }
  CHECK(first >= 150 && first <= 150 + c.onset_frames); /* onset: a few frames after 1.5 s */
  CHECK(last >= 250 + c.hangover_frames - 2 && last <= 250 + c.hangover_frames + 1); /* hangover */
  for (int i = 0; i < 140; i++) CHECK(whole[i] == 0);
  const size_t chunks[] = {1, 17, 160, 509};
  for (size_t k = 0; k < 4; k++) {
    CHECK(run(&vad, chunks[k], chunked) == n);
    CHECK(memcmp(whole, chunked, n) == 0);
  }
  /* Steady loud noise becomes the floor: no endless speech. */
  for (int i = 0; i < RATE * SECONDS; i++) signal[i] = 0.2f * ((float)rand() / RAND_MAX - 0.5f);
  n = run(&vad, 320, whole);
  int speech = 0;
  for (size_t i = 100; i < n; i++) speech += whole[i];
  CHECK(speech == 0);
  /* Bad input and misuse. */
  es_vad_reset(&vad);
  float bad[200] = {0};
  bad[50] = NAN;
  size_t w;
  CHECK(es_vad_accept(&vad, bad, 200, whole, 10, &w) == ES_ERR_NON_FINITE_INPUT && w == 0);
  CHECK(es_vad_accept(&vad, signal, 16000, whole, 10, &w) == ES_ERR_BUFFER_TOO_SMALL);
  es_vad_config badc = c;
  badc.onset_frames = 0;
  char why[200];
  CHECK(es_vad_config_check(&badc, why, sizeof why) == ES_ERR_INVALID_CONFIG && strstr(why, "onset"));
  es_vad_free(&vad);
  es_vad_free(&vad);
  CHECK(es_vad_accept(&vad, signal, 10, whole, 10, &w) == ES_ERR_STATE);
  ES_TEST_MAIN_END();
}
