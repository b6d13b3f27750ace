/* The front end: streaming in any chunk sizes equals one-shot exactly, for every padding mode,
 * with dither and sliding CMVN; input formats agree; bad input and misuse give statuses.
 * Whisper's analysis: the mixed-radix FFT against a direct DFT, the frame count n / 160 with the
 * last frame dropped, the fixed clamp streaming, the utterance clamp. (Parity with Whisper's own
 * features is tested from Python, against transformers.) */
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

/* Direct DFT in double precision: the reference for the mixed-radix plans. */
static void naive_dft(const float *x, int n, double *out) {
  for (int k = 0; k <= n / 2; k++) {
    double re = 0, im = 0;
    for (int j = 0; j < n; j++) {
      double a = -2.0 * 3.14159265358979323846 * (double)((long long)k * j % n) / n;
      re += x[j] * cos(a);
      im += x[j] * sin(a);
    }
    out[2 * k] = re;
    out[2 * k + 1] = im;
  }
}

static void check_mixed_radix_fft(void) {
  const int sizes[] = {6, 10, 14, 30, 96, 200, 400, 480, 600, 840, 1200, 2 * 3 * 5 * 7 * 8};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    const int n = sizes[i];
    es_rfft fft;
    CHECK(es_fft_mixed_radix_size_is_supported(n) && !es_fft_size_is_supported(n));
    CHECK(es_rfft_init(&fft, n) == ES_ERR_INVALID_CONFIG); /* the power-of-two plan is unchanged */
    CHECK(es_rfft_init_mixed_radix(&fft, n) == ES_OK && fft.num_stages > 0);
    float *x = malloc(sizeof(float) * n), *spec = malloc(sizeof(float) * (n + 2));
    double *ref = malloc(sizeof(double) * (n + 2));
    for (int j = 0; j < n; j++) x[j] = (float)es_test_uniform() - 0.5f;
    es_rfft_forward(&fft, x, spec);
    naive_dft(x, n, ref);
    double err = 0, norm = 0;
    for (int k = 0; k < n + 2; k++) {
      err += (spec[k] - ref[k]) * (spec[k] - ref[k]);
      norm += ref[k] * ref[k];
    }
    if (!(sqrt(err / norm) < 1e-6)) fprintf(stderr, "mixed radix n=%d relative error %g\n", n, sqrt(err / norm));
    CHECK(sqrt(err / norm) < 1e-6);
    free(x);
    free(spec);
    free(ref);
    es_rfft_free(&fft);
    es_rfft_free(&fft);
  }
  /* A power of two through the mixed-radix init gets the power-of-two plan, bit for bit. */
  es_rfft a, b;
  float x[256], sa[258], sb[258];
  for (int j = 0; j < 256; j++) x[j] = (float)es_test_uniform() - 0.5f;
  CHECK(es_rfft_init(&a, 256) == ES_OK && es_rfft_init_mixed_radix(&b, 256) == ES_OK && b.num_stages == 0);
  es_rfft_forward(&a, x, sa);
  es_rfft_forward(&b, x, sb);
  CHECK(memcmp(sa, sb, sizeof sa) == 0);
  es_rfft_free(&a);
  es_rfft_free(&b);
  const int unsupported[] = {2, 5, 22, 401, 402, 1102, 65538};
  for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++) {
    CHECK(!es_fft_mixed_radix_size_is_supported(unsupported[i]));
    CHECK(es_rfft_init_mixed_radix(&a, unsupported[i]) == ES_ERR_INVALID_CONFIG);
  }
  es_rfft_free(&a);
}

/* openai-whisper's log_mel_spectrogram at 16 kHz, with the causal clamp. */
static es_frontend_config whisper_config(void) {
  es_frontend_config c = es_frontend_config_default();
  c.round_to_power_of_two = 0; /* 25 ms = 400 samples = the FFT */
  c.padding = ES_PADDING_REFLECT;
  c.drop_last_frame = 1;
  c.remove_dc_offset = 0;
  c.preemphasis = 0.0f;
  c.window = ES_WINDOW_HANN;
  c.periodic_window = 1;
  c.mel.num_bins = 80;
  c.mel.low_freq_hz = 0.0f;
  c.mel.high_freq_hz = 8000.0f;
  c.mel.scale = ES_MEL_SCALE_SLANEY;
  c.mel.triangles = ES_MEL_TRIANGLES_HZ;
  c.mel.norm = ES_MEL_NORM_SLANEY;
  c.log_scale = ES_LOG_LOG10;
  c.log_floor = 1e-10f;
  c.kind = ES_FEATURES_FBANK;
  c.use_energy = 0;
  c.output_scale = 0.25f;
  c.output_offset = 1.0f;
  c.output_clamp = ES_OUTPUT_CLAMP_FIXED;
  c.output_clamp_range = 2.0f;
  c.output_clamp_floor = 0.2f; /* reached by the test signal's quieter bands */
  return c;
}

static void check_whisper(void) {
  es_frontend_config c = whisper_config();
  char why[256];
  CHECK(es_frontend_config_check(&c, why, sizeof why) == ES_OK);
  check_streaming(c, "whisper, fixed clamp");

  es_frontend fe;
  CHECK(es_frontend_init(&fe, &c) == ES_OK && fe.fft_size == 400 && fe.dim == 80);
  const size_t capacity = NUM_SAMPLES / 160 + 2;
  float *fixed = malloc(sizeof(float) * capacity * 80), *raw = malloc(sizeof(float) * capacity * 80);
  /* n / 160 frames, and mid-stream never one that finish would drop. */
  size_t total = 0, written = 0;
  for (size_t pos = 0; pos < NUM_SAMPLES; pos += 7) {
    size_t n = pos + 7 <= NUM_SAMPLES ? 7 : NUM_SAMPLES - pos;
    es_samples s = {signal_f32 + pos, n, 1, ES_SAMPLE_F32};
    CHECK(es_frontend_accept(&fe, &s, fixed + total * 80, capacity - total, &written) == ES_OK);
    total += written;
    CHECK(total <= (pos + n) / 160);
  }
  CHECK(es_frontend_finish(&fe, fixed + total * 80, capacity - total, &written) == ES_OK);
  total += written;
  CHECK(total == NUM_SAMPLES / 160);
  int floored = 0;
  for (size_t i = 0; i < total * 80; i++) {
    CHECK(fixed[i] >= 0.2f);
    floored += fixed[i] == 0.2f;
  }
  CHECK(floored > 0); /* the signal has quiet bands: the floor is reached */
  es_frontend_free(&fe);

  /* Utterance clamp: accept and finish give the unclamped values; the clamp floors them all at
   * their maximum minus the range. */
  c.output_clamp = ES_OUTPUT_CLAMP_UTTERANCE;
  c.output_clamp_range = 0.5f; /* narrow, so this test signal reaches it */
  CHECK(es_frontend_init(&fe, &c) == ES_OK);
  size_t n = run(&fe, 509, raw, capacity);
  CHECK(n == total);
  float *clamped = malloc(sizeof(float) * n * 80);
  memcpy(clamped, raw, sizeof(float) * n * 80);
  es_frontend_clamp_utterance(&fe, clamped, n);
  float peak = raw[0];
  for (size_t i = 0; i < n * 80; i++) peak = raw[i] > peak ? raw[i] : peak;
  int raised = 0;
  for (size_t i = 0; i < n * 80; i++) {
    float expect = raw[i] > peak - 0.5f ? raw[i] : peak - 0.5f;
    CHECK(clamped[i] == expect);
    raised += clamped[i] != raw[i];
  }
  CHECK(raised > 0);
  es_frontend_clamp_utterance(&fe, clamped, 0); /* no frames: nothing to do */
  es_frontend_free(&fe);
  free(fixed);
  free(raw);
  free(clamped);

  /* Configs that cannot work are explained. */
  c = whisper_config();
  c.output_clamp = ES_OUTPUT_CLAMP_UTTERANCE;
  c.cmvn.mode = ES_CMVN_SLIDING;
  CHECK(es_frontend_config_check(&c, why, sizeof why) == ES_ERR_INVALID_CONFIG && strstr(why, "CMVN"));
  c = whisper_config();
  c.sample_rate_hz = 44100.0f; /* 1102 samples: 551 = 19 * 29 */
  c.mel.high_freq_hz = 0.0f;
  CHECK(es_frontend_config_check(&c, why, sizeof why) == ES_ERR_INVALID_CONFIG && strstr(why, "prime factor"));
  c = whisper_config();
  c.output_scale = 0.0f;
  CHECK(es_frontend_config_check(&c, why, sizeof why) == ES_ERR_INVALID_CONFIG && strstr(why, "output_scale"));
  c = whisper_config();
  c.output_clamp_range = 0.0f;
  CHECK(es_frontend_config_check(&c, why, sizeof why) == ES_ERR_INVALID_CONFIG && strstr(why, "output_clamp_range"));
  c = es_frontend_config_default(); /* sizes far past int: refused, no float-to-int overflow */
  c.frame_length_ms = 3e38f;
  CHECK(es_frontend_config_check(&c, why, sizeof why) == ES_ERR_INVALID_CONFIG && strstr(why, "more than"));
  c = es_frontend_config_default();
  c.frame_shift_ms = 1e30f;
  CHECK(es_frontend_config_check(&c, why, sizeof why) == ES_ERR_INVALID_CONFIG && strstr(why, "more than"));
  CHECK(es_frontend_init(&fe, &c) == ES_ERR_INVALID_CONFIG);
  c = es_frontend_config_default();
  c.frame_shift_ms = -1e30f;
  CHECK(es_frontend_config_check(&c, why, sizeof why) == ES_ERR_INVALID_CONFIG && strstr(why, "at least 1"));
  c = es_frontend_config_default();
  c.sample_rate_hz = 3e38f;
  CHECK(es_frontend_config_check(&c, why, sizeof why) == ES_ERR_INVALID_CONFIG);
  c = whisper_config();
  c.fft_size = 400; /* an explicit size is still a power of two */
  CHECK(es_frontend_config_check(&c, why, sizeof why) == ES_ERR_INVALID_CONFIG && strstr(why, "power of two"));
}

int main(void) {
  for (int i = 0; i < NUM_SAMPLES; i++) {
    signal_s16[i] = (int16_t)(8000 * sin(i * 0.031) + (rand() % 2001) - 1000);
    signal_f32[i] = signal_s16[i] / 32768.0f;
  }
  es_frontend_config kaldi = es_frontend_config_default(); /* Kaldi's fbank, made its MFCC */
  kaldi.kind = ES_FEATURES_MFCC;
  kaldi.mel.num_bins = 23;
  kaldi.use_energy = 1;
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
  check_mixed_radix_fft();
  check_whisper();
  free(a);
  free(b);
  ES_TEST_MAIN_END();
}
