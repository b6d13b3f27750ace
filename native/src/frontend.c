#include "edge_speech/es_frontend.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge_speech/es_config.h"
#include "es_internal.h"

/* Enums are written through int pointers by the config table. */
_Static_assert(sizeof(es_feature_kind) == sizeof(int) && sizeof(es_padding) == sizeof(int) &&
                   sizeof(es_window_type) == sizeof(int) && sizeof(es_mel_scale) == sizeof(int) &&
                   sizeof(es_mel_triangles) == sizeof(int) && sizeof(es_mel_norm) == sizeof(int) &&
                   sizeof(es_log_scale) == sizeof(int) && sizeof(es_log_floor_mode) == sizeof(int) &&
                   sizeof(es_output_clamp) == sizeof(int) && sizeof(es_cmvn_mode) == sizeof(int),
               "config enums are int-sized");

static const char *const kind_names[] = {"fbank", "mfcc"};
static const char *const padding_names[] = {"none", "reflect", "constant"};
static const char *const window_names[] = {"povey", "hann", "hamming", "rectangular", "blackman"};
static const char *const spectrum_names[] = {"magnitude", "power"}; /* the value of use_power */
static const char *const mel_scale_names[] = {"htk", "slaney"};
static const char *const mel_triangle_names[] = {"mel", "hz"};
static const char *const mel_norm_names[] = {"none", "slaney"};
static const char *const log_scale_names[] = {"natural", "db", "log10"};
static const char *const log_floor_mode_names[] = {"max", "add"};
static const char *const output_clamp_names[] = {"none", "utterance", "fixed"};
static const char *const cmvn_names[] = {"none", "global", "sliding"};

#define AT(member) offsetof(es_frontend_config, member)
#define NUMBER(name, member, def, lo, hi, flags) {name, ES_FIELD_FLOAT, AT(member), def, lo, hi, flags, NULL}
#define INTEGER(name, member, def, lo, hi) {name, ES_FIELD_INT, AT(member), def, lo, hi, 0, NULL}
#define BOOLEAN(name, member, def) {name, ES_FIELD_BOOL, AT(member), def, 0, 1, 0, NULL}
#define CHOICE(name, member, def, names) \
  {name, ES_FIELD_ENUM, AT(member), def, 0, sizeof(names) / sizeof(names[0]) - 1, 0, names}
#define LOW_OPEN ES_FIELD_MIN_EXCLUSIVE
#define HIGH_OPEN ES_FIELD_MAX_EXCLUSIVE /* an infinite bound left open: the value must be finite */
/* The defaults are Kaldi's 80-bin log-mel filterbank at 16 kHz (what FeatureConfig() gives). */
static const es_config_field frontend_fields[] = {
    NUMBER("sample_rate_hz", sample_rate_hz, 16000.0, 0.0, INFINITY, LOW_OPEN | HIGH_OPEN),
    CHOICE("kind", kind, ES_FEATURES_FBANK, kind_names),
    NUMBER("frame_length_ms", frame_length_ms, 25.0, 0.0, INFINITY, LOW_OPEN | HIGH_OPEN),
    NUMBER("frame_shift_ms", frame_shift_ms, 10.0, 0.0, INFINITY, LOW_OPEN | HIGH_OPEN),
    INTEGER("fft_size", fft_size, 0, 0, 65536), /* 0 or a power of two >= 4 */
    BOOLEAN("round_to_power_of_two", round_to_power_of_two, 1),
    CHOICE("padding", padding, ES_PADDING_NONE, padding_names),
    BOOLEAN("drop_last_frame", drop_last_frame, 0),
    /* scales within +-1e6 (Kaldi's int16 range is 32768): near FLT_MAX the features overflow to inf */
    NUMBER("input_scale", input_scale, 1.0, -1e6, 1e6, 0), /* and non-zero */
    NUMBER("dither", dither, 0.0, 0.0, 1e6, 0), /* input units, as the scales: 1e30 overflowed the energy */
    {"dither_seed", ES_FIELD_U64, AT(dither_seed), 0, 0, 18446744073709551616.0, ES_FIELD_MAX_EXCLUSIVE, NULL},
    BOOLEAN("remove_dc_offset", remove_dc_offset, 1),
    NUMBER("preemphasis", preemphasis, 0.97, 0.0, 1.0, 0),
    CHOICE("window", window, ES_WINDOW_POVEY, window_names),
    BOOLEAN("periodic_window", periodic_window, 0),
    CHOICE("spectrum", use_power, 1, spectrum_names),
    INTEGER("num_mel_bins", mel.num_bins, 80, 1, INT_MAX),
    NUMBER("low_freq_hz", mel.low_freq_hz, 20.0, 0.0, INFINITY, HIGH_OPEN),
    NUMBER("high_freq_hz", mel.high_freq_hz, 0.0, -INFINITY, INFINITY, LOW_OPEN | HIGH_OPEN), /* <= 0: offset from Nyquist */
    CHOICE("mel_scale", mel.scale, ES_MEL_SCALE_HTK, mel_scale_names),
    CHOICE("mel_triangles", mel.triangles, ES_MEL_TRIANGLES_MEL, mel_triangle_names),
    CHOICE("mel_norm", mel.norm, ES_MEL_NORM_NONE, mel_norm_names),
    CHOICE("log_scale", log_scale, ES_LOG_NATURAL, log_scale_names),
    CHOICE("log_floor_mode", log_floor_mode, ES_LOG_FLOOR_MAX, log_floor_mode_names),
    NUMBER("log_floor", log_floor, FLT_EPSILON, FLT_MIN, INFINITY, HIGH_OPEN),
    INTEGER("num_ceps", num_ceps, 13, INT_MIN, INT_MAX), /* MFCC: 1..num_mel_bins, checked with kind */
    NUMBER("cepstral_lifter", cepstral_lifter, 22.0, 0.0, INFINITY, HIGH_OPEN),
    BOOLEAN("use_energy", use_energy, 0),
    BOOLEAN("raw_energy", raw_energy, 1),
    NUMBER("energy_floor", energy_floor, 0.0, 0.0, INFINITY, HIGH_OPEN),
    NUMBER("output_scale", output_scale, 1.0, -1e6, 1e6, 0), /* and non-zero */
    NUMBER("output_offset", output_offset, 0.0, -1e6, 1e6, 0),
    CHOICE("output_clamp", output_clamp, ES_OUTPUT_CLAMP_NONE, output_clamp_names),
    NUMBER("output_clamp_range", output_clamp_range, 8.0, 0.0, INFINITY, LOW_OPEN | HIGH_OPEN), /* Whisper's, in log10 units */
    NUMBER("output_clamp_floor", output_clamp_floor, 0.0, -INFINITY, INFINITY, LOW_OPEN | HIGH_OPEN),
    CHOICE("cmvn", cmvn.mode, ES_CMVN_NONE, cmvn_names),
    INTEGER("cmvn_window_frames", cmvn.window_frames, 600, 1, 1000000),
    BOOLEAN("cmvn_normalize_variance", cmvn.normalize_variance, 0),
};
#undef AT
#undef NUMBER
#undef INTEGER
#undef BOOLEAN
#undef CHOICE
#undef LOW_OPEN
#undef HIGH_OPEN

static const es_config_table frontend_table = {"frontend", frontend_fields,
                                               (int)(sizeof frontend_fields / sizeof frontend_fields[0])};

const es_config_table *es_frontend_config_table(void) { return &frontend_table; }

es_frontend_config es_frontend_config_default(void) {
  es_frontend_config c;
  memset(&c, 0, sizeof c); /* the CMVN statistics pointers stay NULL */
  es_config_set_defaults(&frontend_table, &c);
  return c;
}

/* Frames and shifts longer than this are refused (the FFT stops at 65536 anyway); it keeps every
 * later size computation (framer capacity, sample counts) far from int overflow. */
#define ES_MAX_FRAME_SAMPLES (1 << 20)

/* Samples per frame and per shift, rounded as Kaldi does (truncation of rate * ms / 1000).
 * Saturates instead of converting an out-of-range double to int (undefined behaviour). */
static int ms_to_samples(float sample_rate_hz, float ms) {
  const double samples = (double)sample_rate_hz * 0.001 * (double)ms + 1e-6;
  if (!(samples >= 0.0)) return 0; /* negative or NaN: refused as "need at least" */
  if (samples > (double)ES_MAX_FRAME_SAMPLES) return ES_MAX_FRAME_SAMPLES + 1;
  return (int)samples;
}

static int resolved_fft_size(const es_frontend_config *c, int frame_length) {
  if (c->fft_size > 0) return c->fft_size;
  if (!c->round_to_power_of_two) return frame_length;
  int n = 4;
  while (n < frame_length && n < (1 << 30)) n *= 2;
  return n;
}

int es_frontend_config_dim(const es_frontend_config *c) {
  if (c->kind == ES_FEATURES_MFCC) return c->num_ceps;
  /* saturates: an unchecked num_mel_bins may be INT_MAX (the mel check refuses it later) */
  return c->use_energy && c->mel.num_bins < INT_MAX ? c->mel.num_bins + 1 : c->mel.num_bins;
}

/* Everything but the mel and CMVN stages, which validate themselves in their init. */
static es_status check_own_fields(const es_frontend_config *c, char *why, size_t why_size) {
  char msg[256];
  if (c == NULL) return ES_ERR_INVALID_ARGUMENT;
  const int length = ms_to_samples(c->sample_rate_hz, c->frame_length_ms);
  const int shift = ms_to_samples(c->sample_rate_hz, c->frame_shift_ms);
  const int fft_size = resolved_fft_size(c, length);
  if (!(c->sample_rate_hz > 0.0f) || !isfinite(c->sample_rate_hz)) {
    snprintf(msg, sizeof msg, "sample rate must be > 0 Hz, got %g", c->sample_rate_hz);
  } else if (!(c->frame_length_ms > 0.0f) || length < 2) {
    snprintf(msg, sizeof msg, "frame_length_ms %g gives %d samples at %g Hz; need at least 2",
             c->frame_length_ms, length, c->sample_rate_hz);
  } else if (!(c->frame_shift_ms > 0.0f) || shift < 1) {
    snprintf(msg, sizeof msg, "frame_shift_ms %g gives %d samples at %g Hz; need at least 1",
             c->frame_shift_ms, shift, c->sample_rate_hz);
  } else if (length > ES_MAX_FRAME_SAMPLES || shift > ES_MAX_FRAME_SAMPLES) {
    snprintf(msg, sizeof msg, "frame_length_ms %g / frame_shift_ms %g at %g Hz give more than %d samples",
             c->frame_length_ms, c->frame_shift_ms, c->sample_rate_hz, ES_MAX_FRAME_SAMPLES);
  } else if (c->fft_size < 0) {
    snprintf(msg, sizeof msg, "fft_size must be 0 (automatic) or a power of two in 4..65536, got %d", c->fft_size);
  } else if (c->fft_size == 0 && !c->round_to_power_of_two &&
             !es_fft_mixed_radix_size_is_supported(fft_size)) {
    snprintf(msg, sizeof msg,
             "an FFT of exactly the %d-sample frame needs an even length in 4..65536 whose half has "
             "no prime factor above 7; change frame_length_ms or set round_to_power_of_two",
             fft_size);
  } else if ((c->fft_size != 0 || c->round_to_power_of_two) && !es_fft_size_is_supported(fft_size)) {
    snprintf(msg, sizeof msg, "fft_size %d is not a power of two in 4..65536", fft_size);
  } else if (fft_size < length) {
    snprintf(msg, sizeof msg, "fft_size %d is shorter than the %d-sample frame", fft_size, length);
  } else if ((unsigned)c->padding > ES_PADDING_CONSTANT) {
    snprintf(msg, sizeof msg, "unknown padding mode %d", (int)c->padding);
  } else if ((unsigned)c->window > ES_WINDOW_BLACKMAN) {
    snprintf(msg, sizeof msg, "unknown window type %d", (int)c->window);
  } else if (!(fabsf(c->input_scale) <= 1e6f) || c->input_scale == 0.0f) {
    snprintf(msg, sizeof msg, "input_scale must be non-zero and in [-1e6, 1e6], got %g", c->input_scale);
  } else if (!(c->dither >= 0.0f && c->dither <= 1e6f)) {
    snprintf(msg, sizeof msg, "dither must be in [0, 1e6] (input units), got %g", c->dither);
  } else if (!(c->preemphasis >= 0.0f && c->preemphasis <= 1.0f)) {
    snprintf(msg, sizeof msg, "preemphasis must be in [0, 1], got %g", c->preemphasis);
  } else if (!(c->log_floor >= FLT_MIN) || !isfinite(c->log_floor)) {
    snprintf(msg, sizeof msg, "log_floor must be finite and >= %g, got %g", FLT_MIN, c->log_floor);
  } else if ((unsigned)c->log_scale > ES_LOG_LOG10 || (unsigned)c->log_floor_mode > ES_LOG_FLOOR_ADD) {
    snprintf(msg, sizeof msg, "unknown log scale or floor mode");
  } else if ((unsigned)c->kind > ES_FEATURES_MFCC) {
    snprintf(msg, sizeof msg, "unknown feature kind %d", (int)c->kind);
  } else if (c->kind == ES_FEATURES_MFCC && (c->num_ceps < 1 || c->num_ceps > c->mel.num_bins)) {
    snprintf(msg, sizeof msg, "num_ceps must be in 1..num_mel_bins (%d), got %d", c->mel.num_bins,
             c->num_ceps);
  } else if (!(c->cepstral_lifter >= 0.0f) || !isfinite(c->cepstral_lifter)) {
    snprintf(msg, sizeof msg, "cepstral_lifter must be finite and >= 0, got %g", c->cepstral_lifter);
  } else if (!(c->energy_floor >= 0.0f) || !isfinite(c->energy_floor)) {
    snprintf(msg, sizeof msg, "energy_floor must be finite and >= 0, got %g", c->energy_floor);
  } else if (!(fabsf(c->output_scale) <= 1e6f) || c->output_scale == 0.0f || !(fabsf(c->output_offset) <= 1e6f)) {
    snprintf(msg, sizeof msg, "output_scale must be non-zero and output_offset any, both in [-1e6, 1e6], got %g, %g",
             c->output_scale, c->output_offset);
  } else if ((unsigned)c->output_clamp > ES_OUTPUT_CLAMP_FIXED) {
    snprintf(msg, sizeof msg, "unknown output clamp mode %d", (int)c->output_clamp);
  } else if (!(c->output_clamp_range > 0.0f) || !isfinite(c->output_clamp_range) ||
             !isfinite(c->output_clamp_floor)) {
    snprintf(msg, sizeof msg, "output_clamp_range must be finite and > 0 and output_clamp_floor finite, got %g, %g",
             c->output_clamp_range, c->output_clamp_floor);
  } else if (c->output_clamp == ES_OUTPUT_CLAMP_UTTERANCE && c->cmvn.mode != ES_CMVN_NONE) {
    snprintf(msg, sizeof msg, "the utterance output clamp comes after every frame is computed, so it "
             "cannot be combined with CMVN; use the fixed clamp");
  } else {
    return ES_OK;
  }
  es_explain(why, why_size, msg);
  return ES_ERR_INVALID_CONFIG;
}

es_status es_frontend_config_check(const es_frontend_config *c, char *why, size_t why_size) {
  es_status s = check_own_fields(c, why, why_size);
  if (s != ES_OK) return s;
  const int fft_size = resolved_fft_size(c, ms_to_samples(c->sample_rate_hz, c->frame_length_ms));
  s = es_mel_config_check(&c->mel, c->sample_rate_hz, fft_size, why, why_size);
  if (s != ES_OK) return s;
  return es_cmvn_config_check(&c->cmvn, es_frontend_config_dim(c), why, why_size);
}

void es_frontend_free(es_frontend *fe) {
  if (fe == NULL) return;
  es_framer_free(&fe->framer);
  es_rfft_free(&fe->fft);
  es_mel_free(&fe->mel);
  es_cepstrum_free(&fe->cepstrum);
  es_cmvn_free(&fe->cmvn);
  free(fe->window);
  free(fe->frame);
  free(fe->spectrum);
  free(fe->mel_energies);
  memset(fe, 0, sizeof(*fe));
}

es_status es_frontend_init(es_frontend *fe, const es_frontend_config *c) {
  if (fe == NULL || c == NULL) return ES_ERR_INVALID_ARGUMENT;
  memset(fe, 0, sizeof(*fe));
  es_status s = check_own_fields(c, NULL, 0); /* the stages' inits check the rest, once */
  if (s != ES_OK) return s;
  fe->config = *c;
  fe->config.cmvn.mean = NULL; /* the caller's arrays are copied by the CMVN stage */
  fe->config.cmvn.stddev = NULL;
  fe->frame_length = ms_to_samples(c->sample_rate_hz, c->frame_length_ms);
  fe->fft_size = resolved_fft_size(c, fe->frame_length);
  fe->dim = es_frontend_config_dim(c);
  const int shift = ms_to_samples(c->sample_rate_hz, c->frame_shift_ms);
  if ((s = es_framer_init(&fe->framer, fe->frame_length, shift, c->padding, fe->fft_size, c->input_scale)) ||
      (s = es_rfft_init_mixed_radix(&fe->fft, fe->fft_size)) ||
      (s = es_mel_init(&fe->mel, &c->mel, c->sample_rate_hz, fe->fft_size)) ||
      (c->kind == ES_FEATURES_MFCC &&
       (s = es_cepstrum_init(&fe->cepstrum, c->mel.num_bins, c->num_ceps, c->cepstral_lifter))) ||
      (s = es_cmvn_init(&fe->cmvn, &c->cmvn, fe->dim)))
    goto fail;
  fe->window = malloc(sizeof(float) * (size_t)fe->frame_length);
  fe->frame = calloc((size_t)fe->fft_size, sizeof(float));
  fe->spectrum = malloc(sizeof(float) * (size_t)(fe->fft_size + 2));
  fe->mel_energies = malloc(sizeof(float) * (size_t)c->mel.num_bins);
  if (!fe->window || !fe->frame || !fe->spectrum || !fe->mel_energies) {
    s = ES_ERR_OUT_OF_MEMORY;
    goto fail;
  }
  if ((s = es_window_fill(c->window, c->periodic_window, fe->frame_length, fe->window))) goto fail;
  es_framer_set_drop_last(&fe->framer, c->drop_last_frame);
  fe->log_floor = c->log_floor;
  fe->log_energy_floor = c->energy_floor > 0.0f ? logf(c->energy_floor) : -INFINITY;
  return ES_OK;
fail:
  es_frontend_free(fe);
  return s;
}

void es_frontend_reset(es_frontend *fe) {
  es_framer_reset(&fe->framer);
  es_cmvn_reset(&fe->cmvn);
}

int es_frontend_dim(const es_frontend *fe) { return fe->dim; }

int64_t es_frontend_frames_done(const es_frontend *fe) { return fe->framer.next_frame; }

size_t es_frontend_frames_after(const es_frontend *fe, size_t num_samples, int finishing) {
  return (size_t)(es_framer_total_frames(&fe->framer, num_samples, finishing) - fe->framer.next_frame);
}

static uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

/* A standard normal draw that depends only on (seed, frame, sample): dither is reproducible and
 * independent of how the signal was chunked. */
static float gaussian(uint64_t seed, int64_t frame, int sample) {
  uint64_t h = splitmix64(seed ^ splitmix64(((uint64_t)frame << 20) ^ (uint64_t)sample));
  double u1 = ((double)(h >> 40) + 1.0) / 16777217.0; /* (0, 1] */
  double u2 = (double)(h & 0xFFFFFF) / 16777216.0;
  return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * ES_PI * u2));
}

/* ln(x) times this gives the configured log. */
static float log_multiplier(es_log_scale scale) {
  if (scale == ES_LOG_DECIBEL) return 4.3429448190325175f; /* 10 / ln 10 */
  if (scale == ES_LOG_LOG10) return 0.43429448190325175f;  /* 1 / ln 10 */
  return 1.0f;
}

static float log_of(float x, es_log_scale scale) { return logf(x) * log_multiplier(scale); }

/* ln(x) for finite normal x > 0, accurate to about 1e-7 relative, in a loop the compiler
 * vectorises (libm's logf is a call per value). x = 2^e * m with m in [sqrt(1/2), sqrt(2)),
 * found without a branch by offsetting the bits by those of sqrt(1/2) (as musl's logf does);
 * ln m = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.1716, by its odd series to s^9. */
static void log_in_place(float *x, int n, float multiplier) {
  const uint32_t sqrt_half = 0x3F3504F3u; /* bits of sqrt(1/2) */
  for (int i = 0; i < n; i++) {
    int32_t bits;
    memcpy(&bits, &x[i], sizeof bits);
    bits = ES_MIN(bits, 0x7F7FFFFF); /* +inf to FLT_MAX: positive floats order as their bits */
    uint32_t ix = (uint32_t)bits - sqrt_half + 0x40000000u; /* + 2^30 (128 << 23): no wrap for normal x */
    int32_t e = (int32_t)(ix >> 23) - 128;
    uint32_t mbits = (ix & 0x007FFFFFu) + sqrt_half;
    float m;
    memcpy(&m, &mbits, sizeof m);
    float s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
    float series = 1.0f + s2 * (1.0f / 3 + s2 * (1.0f / 5 + s2 * (1.0f / 7 + s2 * (1.0f / 9))));
    x[i] = ((float)e * 0.69314718056f + 2.0f * s * series) * multiplier;
  }
}

/* |X[k]|^2 of interleaved bins into a separate buffer: written in place, GCC's alias check
 * sends the loop down its scalar path. */
static void power_spectrum(const float *restrict spectrum, float *restrict power, int bins) {
  for (int k = 0; k < bins; k++) {
    const float re = spectrum[2 * k], im = spectrum[2 * k + 1];
    power[k] = re * re + im * im;
  }
}

/* Sums in 8 interleaved lanes, added pairwise at the end: one running sum is a serial chain of
 * adds the compiler may not reorder (no -ffast-math), about 3 cycles a sample. */
static float sum_of(const float *x, int n) {
  float lane[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  int j = 0;
  for (; j + 8 <= n; j += 8)
    for (int l = 0; l < 8; l++) lane[l] += x[j + l];
  for (; j < n; j++) lane[j % 8] += x[j];
  return ((lane[0] + lane[4]) + (lane[1] + lane[5])) + ((lane[2] + lane[6]) + (lane[3] + lane[7]));
}

static float sum_of_squares(const float *x, int n) {
  float lane[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  int j = 0;
  for (; j + 8 <= n; j += 8)
    for (int l = 0; l < 8; l++) lane[l] += x[j + l] * x[j + l];
  for (; j < n; j++) lane[j % 8] += x[j] * x[j];
  return ((lane[0] + lane[4]) + (lane[1] + lane[5])) + ((lane[2] + lane[6]) + (lane[3] + lane[7]));
}

static void compute_frame(es_frontend *fe, float *out) {
  const es_frontend_config *c = &fe->config;
  const int n = fe->frame_length;
  const int64_t index = fe->framer.next_frame;
  float *x = fe->frame;
  es_framer_pop(&fe->framer, x);
  if (c->dither > 0.0f)
    for (int j = 0; j < n; j++) x[j] += c->dither * gaussian(c->dither_seed, index, j);
  if (c->remove_dc_offset) {
    const float mean = sum_of(x, n) / (float)n;
    for (int j = 0; j < n; j++) x[j] -= mean;
  }
  float energy = 0.0f;
  if (c->use_energy && c->raw_energy) energy = sum_of_squares(x, n);
  const float *window = fe->window;
  if (c->preemphasis != 0.0f) { /* fused with the window: one pass, the same arithmetic */
    const float k = c->preemphasis;
    for (int j = n - 1; j > 0; j--) x[j] = (x[j] - k * x[j - 1]) * window[j];
    x[0] = (x[0] - k * x[0]) * window[0];
  } else {
    for (int j = 0; j < n; j++) x[j] *= window[j];
  }
  if (c->use_energy && !c->raw_energy) energy = sum_of_squares(x, n);
  /* x[n .. fft_size) stays zero: set by init, never written. */
  es_rfft_forward(&fe->fft, x, fe->spectrum);
  const int bins = fe->fft_size / 2 + 1;
  float *power;
  if (c->use_power && bins <= n) {
    power = x; /* the frame is spent, and the next pop rewrites x[0 .. n) */
    power_spectrum(fe->spectrum, power, bins);
  } else {
    power = fe->spectrum; /* bin k's power overwrites slot k; slots 2k, 2k+1 are read first */
    for (int k = 0; k < bins; k++) {
      float re = fe->spectrum[2 * k], im = fe->spectrum[2 * k + 1];
      float p = re * re + im * im;
      power[k] = c->use_power ? p : sqrtf(p);
    }
  }
  float *mel = fe->mel_energies;
  es_mel_apply(&fe->mel, power, mel);
  const int nb = fe->mel.num_bins;
  if (c->log_floor_mode == ES_LOG_FLOOR_ADD)
    for (int b = 0; b < nb; b++) mel[b] += fe->log_floor;
  else
    for (int b = 0; b < nb; b++) mel[b] = ES_MAX(mel[b], fe->log_floor);
  log_in_place(mel, nb, log_multiplier(c->log_scale));
  float log_energy = 0.0f;
  if (c->use_energy) {
    log_energy = log_of(ES_MAX(energy, FLT_EPSILON), c->log_scale);
    if (log_energy < fe->log_energy_floor) log_energy = fe->log_energy_floor;
  }
  if (c->kind == ES_FEATURES_MFCC) {
    es_cepstrum_apply(&fe->cepstrum, mel, out);
    if (c->use_energy) out[0] = log_energy;
  } else if (c->use_energy) {
    out[0] = log_energy;
    memcpy(out + 1, mel, sizeof(float) * (size_t)nb);
  } else {
    memcpy(out, mel, sizeof(float) * (size_t)nb);
  }
  if (c->output_scale != 1.0f || c->output_offset != 0.0f)
    for (int i = 0; i < fe->dim; i++) out[i] = out[i] * c->output_scale + c->output_offset;
  if (c->output_clamp == ES_OUTPUT_CLAMP_FIXED)
    for (int i = 0; i < fe->dim; i++) out[i] = ES_MAX(out[i], c->output_clamp_floor);
  es_cmvn_apply(&fe->cmvn, out);
}

void es_frontend_clamp_utterance(const es_frontend *fe, float *frames, size_t num_frames) {
  if (fe == NULL || frames == NULL || fe->config.output_clamp != ES_OUTPUT_CLAMP_UTTERANCE) return;
  const size_t n = num_frames * (size_t)fe->dim;
  if (n == 0) return;
  float peak = frames[0];
  for (size_t i = 1; i < n; i++) peak = ES_MAX(peak, frames[i]);
  const float floor_value = peak - fe->config.output_clamp_range;
  for (size_t i = 0; i < n; i++) frames[i] = ES_MAX(frames[i], floor_value);
}

static es_status check_finite(const es_samples *in) {
  size_t bad = 0;
  if (in->format == ES_SAMPLE_F32 && in->stride == 1) {
    /* x - x is 0 for finite x and NaN for NaN/Inf; a plain sum of those vectorises. */
    const float *p = in->data;
    float acc = 0.0f;
    for (size_t i = 0; i < in->count; i++) acc += p[i] - p[i];
    bad = acc != 0.0f;
  } else if (in->format == ES_SAMPLE_F32) {
    const float *p = in->data;
    for (size_t i = 0; i < in->count; i++) bad |= !isfinite(p[(ptrdiff_t)i * in->stride]);
  } else if (in->format == ES_SAMPLE_F64) {
    const double *p = in->data;
    for (size_t i = 0; i < in->count; i++) bad |= !isfinite(p[(ptrdiff_t)i * in->stride]);
  }
  return bad ? ES_ERR_NON_FINITE_INPUT : ES_OK;
}

es_status es_frontend_accept(es_frontend *fe, const es_samples *in, float *out, size_t capacity_frames,
                             size_t *frames_written) {
  if (frames_written) *frames_written = 0;
  if (fe == NULL || in == NULL || frames_written == NULL || (in->count > 0 && in->data == NULL) ||
      (unsigned)in->format > ES_SAMPLE_S16)
    return ES_ERR_INVALID_ARGUMENT;
  if (fe->framer.buffer == NULL) return ES_ERR_STATE;
  if (fe->framer.finished) return ES_ERR_FINISHED;
  const size_t needed = es_frontend_frames_after(fe, in->count, 0);
  if (needed > capacity_frames) return ES_ERR_BUFFER_TOO_SMALL;
  if (needed > 0 && out == NULL) return ES_ERR_INVALID_ARGUMENT;
  es_status s = check_finite(in);
  if (s != ES_OK) return s;
  size_t done = 0, written = 0;
  while (done < in->count) {
    size_t taken = es_framer_push(&fe->framer, in, done);
    if (taken == 0) return ES_ERR_STATE; /* cannot happen: compaction always frees room */
    done += taken;
    while (es_framer_frame_ready(&fe->framer)) compute_frame(fe, out + (written++) * (size_t)fe->dim);
  }
  *frames_written = written;
  return ES_OK;
}

es_status es_frontend_finish(es_frontend *fe, float *out, size_t capacity_frames, size_t *frames_written) {
  if (frames_written) *frames_written = 0;
  if (fe == NULL || frames_written == NULL) return ES_ERR_INVALID_ARGUMENT;
  if (fe->framer.buffer == NULL) return ES_ERR_STATE;
  if (fe->framer.finished) return ES_OK;
  const size_t needed = es_frontend_frames_after(fe, 0, 1);
  if (needed > capacity_frames) return ES_ERR_BUFFER_TOO_SMALL;
  if (needed > 0 && out == NULL) return ES_ERR_INVALID_ARGUMENT;
  es_framer_finish(&fe->framer);
  size_t written = 0;
  while (es_framer_frame_ready(&fe->framer)) compute_frame(fe, out + (written++) * (size_t)fe->dim);
  *frames_written = written;
  return ES_OK;
}
