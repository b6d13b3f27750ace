/* The feature front end with a config decoded from the input (every field of the config table:
 * its default, its bounds, points between, and hostile values), fed fuzzed samples in fuzzed
 * formats, strides and chunks. es_frontend_config_check and es_frontend_init agree; accept writes
 * exactly the frames es_frontend_frames_after promised, or for NaN/Inf consumes nothing; from
 * samples in the nominal range [-1, 1] and a config without extreme scales, every feature is finite.
 *
 * Configs that are valid but need large tables (frames over MAX_FRAME samples, long CMVN windows)
 * are skipped before init: the front end sizes its buffers from the config by design, and the
 * fuzzer's time is better spent on many small configs. Huge and non-finite values still reach the
 * checks, which must refuse them before sizing anything. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "edge_speech/es_frontend.h"
#include "fuzz_input.h"

#define MAX_FRAME 2048
#define MAX_CMVN_VALUES (1 << 20)
#define MAX_SAMPLES 8192

static int too_big_to_run(const es_frontend_config *c) {
  const double rate = c->sample_rate_hz;
  const double length = rate * 0.001 * c->frame_length_ms, shift = rate * 0.001 * c->frame_shift_ms;
  if (length > MAX_FRAME || shift > MAX_FRAME || c->fft_size > MAX_FRAME) return 1;
  if (c->cmvn.mode == ES_CMVN_SLIDING &&
      (double)c->cmvn.window_frames * (double)es_frontend_config_dim(c) > MAX_CMVN_VALUES)
    return 1;
  return 0;
}

/* Folds float samples into [-1, 1], the nominal range (int16 samples are in it by construction). */
static void make_nominal(void *samples, es_sample_format format, size_t count) {
  if (format == ES_SAMPLE_F32) {
    float *x = samples;
    for (size_t i = 0; i < count; i++)
      if (isfinite(x[i]) && fabsf(x[i]) > 1.0f) x[i] = fmodf(x[i], 1.0f);
  } else if (format == ES_SAMPLE_F64) {
    double *x = samples;
    for (size_t i = 0; i < count; i++)
      if (isfinite(x[i]) && fabs(x[i]) > 1.0) x[i] = fmod(x[i], 1.0);
  }
}

/* Scales and offsets a caller would use: near FLT_MAX, output_scale or input_scale overflow floats
 * by design, so only moderate configs promise finite features. */
static int moderate(const es_frontend_config *c) {
  const float limit = 1e6f;
  return fabsf(c->input_scale) <= limit && fabsf(c->output_scale) <= limit && fabsf(c->output_offset) <= limit &&
         fabsf(c->output_clamp_floor) <= limit;
}

static void require_finite(const float *frames, size_t count) {
  for (size_t i = 0; i < count; i++) FUZZ_REQUIRE(isfinite(frames[i]));
}

/* Accepts `count` samples starting at `first`, in the input's format and stride. With nominal
 * samples (finite, in [-1, 1]) every feature a valid config computes must be finite. */
static void accept_chunk(es_frontend *fe, const es_samples *all, size_t first, size_t count, int finishing,
                         int nominal) {
  es_samples chunk = *all;
  const size_t width = all->format == ES_SAMPLE_F64 ? 8 : all->format == ES_SAMPLE_S16 ? 2 : 4;
  const ptrdiff_t step = all->stride * (ptrdiff_t)width;
  chunk.data = (const char *)all->data + (ptrdiff_t)first * step;
  chunk.count = count;
  const size_t expected = es_frontend_frames_after(fe, count, 0);
  const int dim = es_frontend_dim(fe);
  float *out = malloc(sizeof(float) * (expected ? expected : 1) * (size_t)dim);
  FUZZ_REQUIRE(out != NULL);
  size_t written = 0;
  const int64_t before = es_frontend_frames_done(fe);
  es_status s;
  if (expected > 0) { /* one frame short: refused, nothing consumed */
    s = es_frontend_accept(fe, &chunk, out, expected - 1, &written);
    FUZZ_REQUIRE(s == ES_ERR_BUFFER_TOO_SMALL && written == 0 && es_frontend_frames_done(fe) == before);
  }
  s = es_frontend_accept(fe, &chunk, out, expected, &written);
  FUZZ_REQUIRE(s == ES_OK || s == ES_ERR_NON_FINITE_INPUT);
  FUZZ_REQUIRE(written == (s == ES_OK ? expected : 0));
  FUZZ_REQUIRE(es_frontend_frames_done(fe) == before + (int64_t)written);
  if (nominal) require_finite(out, written * (size_t)dim);
  free(out);
  if (!finishing) return;
  const size_t tail = es_frontend_frames_after(fe, 0, 1);
  out = malloc(sizeof(float) * (tail ? tail : 1) * (size_t)dim);
  FUZZ_REQUIRE(out != NULL);
  s = es_frontend_finish(fe, out, tail, &written);
  FUZZ_REQUIRE(s == ES_OK && written == tail);
  es_frontend_clamp_utterance(fe, out, written);
  if (nominal) require_finite(out, written * (size_t)dim);
  free(out);
  FUZZ_REQUIRE(es_frontend_accept(fe, &chunk, NULL, 0, &written) == ES_ERR_FINISHED);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_input in = {data, size};
  const es_config_table *table = es_frontend_config_table();
  es_frontend_config config = es_frontend_config_default();
  for (int i = 0; i < table->num_fields; i++)
    set_field(&table->fields[i], &config, take_field_value(&in, &table->fields[i]));
  if (too_big_to_run(&config)) return 0;

  /* global CMVN statistics, when asked for: fuzzed, possibly with zeros or non-finite values */
  const int dim = es_frontend_config_dim(&config);
  float *mean = NULL, *stddev = NULL;
  if (config.cmvn.mode == ES_CMVN_GLOBAL && dim >= 1 && dim <= MAX_FRAME) {
    const uint8_t how = take_u8(&in);
    mean = calloc((size_t)dim, sizeof(float));
    stddev = calloc((size_t)dim, sizeof(float));
    FUZZ_REQUIRE(mean && stddev);
    for (int i = 0; i < dim; i++) {
      mean[i] = how & 1 ? take_raw_float(&in) : (float)take_u8(&in) - 128.0f;
      stddev[i] = how & 2 ? take_raw_float(&in) : (float)(take_u8(&in) + 1) / 64.0f;
    }
    config.cmvn.mean = how & 4 ? NULL : mean;
    config.cmvn.stddev = how & 8 ? NULL : stddev;
  }

  char why[256];
  why[0] = '\0';
  const es_status checked = es_frontend_config_check(&config, why, sizeof why);
  es_frontend fe;
  const es_status s = es_frontend_init(&fe, &config);
  FUZZ_REQUIRE(s == checked);
  if (s != ES_OK) {
    FUZZ_REQUIRE(s == ES_ERR_INVALID_CONFIG && why[0] != '\0');
    goto done;
  }
  FUZZ_REQUIRE(es_frontend_dim(&fe) == dim);

  /* the samples: format, stride and chunking from the input, values from the rest of it */
  const uint8_t layout = take_u8(&in);
  es_samples all;
  all.format = (es_sample_format)(layout % 3);
  const size_t width = all.format == ES_SAMPLE_F64 ? 8 : all.format == ES_SAMPLE_S16 ? 2 : 4;
  size_t count = in.size / width;
  if (count > MAX_SAMPLES) count = MAX_SAMPLES;
  void *samples = malloc(count * width + 1);
  FUZZ_REQUIRE(samples != NULL);
  memcpy(samples, in.data, count * width);
  const int nominal = (layout & 0x80) && moderate(&config);
  if (nominal) make_nominal(samples, all.format, count);
  in.data += count * width;
  in.size -= count * width;
  all.data = samples;
  all.count = count;
  all.stride = 1;
  if (layout & 8 && count > 0) { /* the same samples read backwards */
    all.stride = -1;
    all.data = (const char *)samples + (count - 1) * width;
  }
  size_t done = 0;
  unsigned chunk_seed = (layout >> 4) & 7;
  while (done < count) {
    const size_t sizes[] = {1, 17, 160, 400, 509, count};
    size_t n = sizes[chunk_seed++ % 6];
    if (n > count - done) n = count - done;
    accept_chunk(&fe, &all, done, n, 0, nominal);
    done += n;
  }
  accept_chunk(&fe, &all, done, 0, 1, nominal);
  es_frontend_reset(&fe);
  accept_chunk(&fe, &all, 0, count < 600 ? count : 600, layout & 4, nominal);
  free(samples);
done:
  es_frontend_free(&fe);
  es_frontend_free(&fe);
  free(mean);
  free(stddev);
  return 0;
}
