/* The front end: streaming in any chunk sizes equals one-shot exactly, for every padding mode,
 * with dither and sliding CMVN; input formats agree; bad input and misuse give statuses. */
#include <stdlib.h>
#include <string.h>

#include "edge_speech/es_frontend.h"
#include "es_test.h"

#define NUM_SAMPLES 8123

static float signal_f32[NUM_SAMPLES];
static int16_t signal_s16[NUM_SAMPLES];

/* Feeds the signal in chunks of `chunk` (0: all at once); returns frames written. */
static size_t run(es_frontend *fe, size_t chunk, float *out, size_t capacity) {
  size_t total = 0, written = 0, pos = 0;
  es_frontend_reset(fe);
  if (chunk == 0) chunk = NUM_SAMPLES;
  while (pos < NUM_SAMPLES) {
    size_t n = pos + chunk <= NUM_SAMPLES ? chunk : NUM_SAMPLES - pos;
    es_samples s = {signal_f32 + pos, n, 1, ES_SAMPLE_F32};
    size_t expect = es_frontend_frames_after(fe, n, 0);
    CHECK(es_frontend_accept(fe, &s, out + total * fe->dim, capacity - total, &written) == ES_OK);
    CHECK(written == expect);
    total += written;
    pos += n;
  }
  CHECK(es_frontend_finish(fe, out + total * fe->dim, capacity - total, &written) == ES_OK);
  return total + written;
}

static void check_streaming(es_frontend_config cfg, const char *label) {
  es_frontend fe;
  CHECK(es_frontend_init(&fe, &cfg) == ES_OK);
  const size_t capacity = NUM_SAMPLES;
  float *whole = malloc(sizeof(float) * capacity * fe.dim), *chunked = malloc(sizeof(float) * capacity * fe.dim);
  size_t n_whole = run(&fe, 0, whole, capacity);
  CHECK(n_whole > 10);
  const size_t chunks[] = {1, 17, 160, 509, 4000};
  for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
    memset(chunked, 0, sizeof(float) * capacity * fe.dim);
    size_t n = run(&fe, chunks[i], chunked, capacity);
    int same = n == n_whole && memcmp(whole, chunked, sizeof(float) * n * fe.dim) == 0;
    if (!same) fprintf(stderr, "%s: chunk %zu differs from one-shot\n", label, chunks[i]);
    CHECK(same);
  }
  free(whole);
  free(chunked);
  es_frontend_free(&fe);
}

int main(void) {
  for (int i = 0; i < NUM_SAMPLES; i++) {
    signal_s16[i] = (int16_t)(8000 * sin(i * 0.031) + (rand() % 2001) - 1000);
    signal_f32[i] = signal_s16[i] / 32768.0f;
  }
  es_frontend_config kaldi = es_frontend_config_default();
  check_streaming(kaldi, "kaldi mfcc");
  es_frontend_config centred = kaldi;
  centred.padding = ES_PADDING_REFLECT;
  centred.kind = ES_FEATURES_FBANK;
  centred.mel.num_bins = 40;
  centred.use_energy = 1;
  check_streaming(centred, "reflect fbank");
  centred.padding = ES_PADDING_CONSTANT;
  centred.dither = 0.5f;
  centred.dither_seed = 99;
  centred.cmvn.mode = ES_CMVN_SLIDING;
  centred.cmvn.window_frames = 37;
  centred.cmvn.normalize_variance = 1;
  check_streaming(centred, "constant fbank, dither, sliding cmvn");
  es_frontend_config wide_shift = kaldi;
  wide_shift.frame_shift_ms = 40.0f; /* shift longer than the frame: samples between frames are skipped */
  check_streaming(wide_shift, "shift > length");

  /* int16 input scaled by 1/32768 equals the float32 signal; a strided view works too. */
  es_frontend fe;
  CHECK(es_frontend_init(&fe, &kaldi) == ES_OK);
  float *a = malloc(sizeof(float) * 1000 * fe.dim), *b = malloc(sizeof(float) * 1000 * fe.dim);
  size_t na, nb;
  es_samples s16 = {signal_s16, NUM_SAMPLES, 1, ES_SAMPLE_S16};
  es_samples f32 = {signal_f32, NUM_SAMPLES, 1, ES_SAMPLE_F32};
  CHECK(es_frontend_accept(&fe, &s16, a, 1000, &na) == ES_OK);
  es_frontend_reset(&fe);
  CHECK(es_frontend_accept(&fe, &f32, b, 1000, &nb) == ES_OK);
  CHECK(na == nb && na > 0 && memcmp(a, b, sizeof(float) * na * fe.dim) == 0);
  es_frontend_reset(&fe);
  es_samples every_other = {signal_f32, NUM_SAMPLES / 2, 2, ES_SAMPLE_F32};
  CHECK(es_frontend_accept(&fe, &every_other, a, 1000, &na) == ES_OK);
  CHECK(na == (NUM_SAMPLES / 2 - 400) / 160 + 1);

  /* NaN: rejected before anything is consumed. */
  es_frontend_reset(&fe);
  float bad[500];
  for (int i = 0; i < 500; i++) bad[i] = 0.01f * i;
  bad[321] = NAN;
  es_samples nan_input = {bad, 500, 1, ES_SAMPLE_F32};
  CHECK(es_frontend_accept(&fe, &nan_input, a, 1000, &na) == ES_ERR_NON_FINITE_INPUT);
  CHECK(na == 0 && fe.framer.samples_seen == 0);
  bad[321] = INFINITY;
  CHECK(es_frontend_accept(&fe, &nan_input, a, 1000, &na) == ES_ERR_NON_FINITE_INPUT);
  /* Output too small: rejected up front, nothing consumed. */
  CHECK(es_frontend_accept(&fe, &f32, a, 3, &na) == ES_ERR_BUFFER_TOO_SMALL);
  CHECK(fe.framer.samples_seen == 0);
  /* Empty input: no frames, fine. */
  es_samples empty = {NULL, 0, 1, ES_SAMPLE_F32};
  CHECK(es_frontend_accept(&fe, &empty, NULL, 0, &na) == ES_OK && na == 0);
  CHECK(es_frontend_finish(&fe, NULL, 0, &na) == ES_OK && na == 0);
  /* After finish, input is refused until reset. */
  CHECK(es_frontend_accept(&fe, &f32, a, 1000, &na) == ES_ERR_FINISHED);
  es_frontend_reset(&fe);
  CHECK(es_frontend_accept(&fe, &f32, a, 1000, &na) == ES_OK && na > 0);
  CHECK(es_frontend_accept(NULL, &f32, a, 1000, &na) == ES_ERR_INVALID_ARGUMENT);
  es_frontend_free(&fe);
  CHECK(es_frontend_accept(&fe, &f32, a, 1000, &na) == ES_ERR_STATE); /* after free */
  es_frontend_free(&fe);

  /* Configs that cannot work are explained. */
  char why[256];
  es_frontend_config c = kaldi;
  c.sample_rate_hz = 0;
  CHECK(es_frontend_config_check(&c, why, sizeof why) == ES_ERR_INVALID_CONFIG && strstr(why, "sample rate"));
  c = kaldi;
  c.fft_size = 384;
  CHECK(es_frontend_config_check(&c, why, sizeof why) == ES_ERR_INVALID_CONFIG && strstr(why, "power of two"));
  c = kaldi;
  c.fft_size = 256;
  CHECK(es_frontend_config_check(&c, why, sizeof why) == ES_ERR_INVALID_CONFIG && strstr(why, "shorter"));
  c = kaldi;
  c.num_ceps = 40;
  CHECK(es_frontend_config_check(&c, why, sizeof why) == ES_ERR_INVALID_CONFIG && strstr(why, "num_ceps"));
  c = kaldi;
  c.cmvn.mode = ES_CMVN_GLOBAL;
  CHECK(es_frontend_config_check(&c, why, sizeof why) == ES_ERR_INVALID_CONFIG && strstr(why, "mean"));
  CHECK(es_frontend_init(&fe, &c) == ES_ERR_INVALID_CONFIG);
  es_frontend_free(&fe);
  es_frontend zeroed;
  memset(&zeroed, 0, sizeof zeroed);
  es_frontend_free(&zeroed);
  CHECK(strcmp(es_status_message(ES_ERR_NON_FINITE_INPUT), "input contains NaN or Inf samples") == 0);
  free(a);
  free(b);
  ES_TEST_MAIN_END();
}
