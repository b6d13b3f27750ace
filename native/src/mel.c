#include "edge_speech/es_mel.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "es_internal.h"

es_mel_config es_mel_config_default(void) {
  es_mel_config c;
  c.num_bins = 23;
  c.low_freq_hz = 20.0f;
  c.high_freq_hz = 0.0f;
  c.scale = ES_MEL_SCALE_HTK;
  c.triangles = ES_MEL_TRIANGLES_MEL;
  c.norm = ES_MEL_NORM_NONE;
  return c;
}

/* Slaney: 200/3 Hz per mel up to 1 kHz (15 mel), then log steps of ln(6.4) / 27 per mel. */
#define SLANEY_HZ_PER_MEL (200.0 / 3.0)
#define SLANEY_BREAK_HZ 1000.0
#define SLANEY_BREAK_MEL (SLANEY_BREAK_HZ / SLANEY_HZ_PER_MEL)
#define SLANEY_LOG_STEP 0.06875177742094912 /* ln(6.4) / 27 */

double es_hz_to_mel(double hz, es_mel_scale scale) {
  if (scale == ES_MEL_SCALE_SLANEY) {
    if (hz < SLANEY_BREAK_HZ) return hz / SLANEY_HZ_PER_MEL;
    return SLANEY_BREAK_MEL + log(hz / SLANEY_BREAK_HZ) / SLANEY_LOG_STEP;
  }
  return 1127.0 * log(1.0 + hz / 700.0);
}

double es_mel_to_hz(double mel, es_mel_scale scale) {
  if (scale == ES_MEL_SCALE_SLANEY) {
    if (mel < SLANEY_BREAK_MEL) return mel * SLANEY_HZ_PER_MEL;
    return SLANEY_BREAK_HZ * exp(SLANEY_LOG_STEP * (mel - SLANEY_BREAK_MEL));
  }
  return 700.0 * (exp(mel / 1127.0) - 1.0);
}

static double resolved_high_freq(const es_mel_config *c, float sample_rate_hz) {
  double nyquist = 0.5 * sample_rate_hz;
  return c->high_freq_hz > 0.0f ? c->high_freq_hz : nyquist + c->high_freq_hz;
}

/* Dense weights, num_bins x (fft_size/2 + 1), computed as the reference implementations do:
 * Kaldi in single precision with strict band edges, librosa in double precision. Transcendental
 * calls are per bin and per band edge, not per weight. */
static es_status compute_weights(const es_mel_config *c, float sample_rate_hz, int fft_size, float *out) {
  const int nb = c->num_bins, nf = fft_size / 2 + 1;
  const double low = c->low_freq_hz, high = resolved_high_freq(c, sample_rate_hz);
  if (c->triangles == ES_MEL_TRIANGLES_MEL) {
    const float mel_low = (float)es_hz_to_mel(low, c->scale), mel_high = (float)es_hz_to_mel(high, c->scale);
    const float delta = (mel_high - mel_low) / (float)(nb + 1);
    const float bin_width = sample_rate_hz / (float)fft_size;
    for (int k = 0; k < nf; k++) {
      const float mel = (float)es_hz_to_mel(bin_width * (float)k, c->scale);
      for (int b = 0; b < nb; b++) {
        float left = mel_low + (float)b * delta, center = mel_low + (float)(b + 1) * delta,
              right = mel_low + (float)(b + 2) * delta, w = 0.0f;
        if (mel > left && mel < right)
          w = mel <= center ? (mel - left) / (center - left) : (right - mel) / (right - center);
        out[(size_t)b * nf + k] = w;
      }
    }
    return ES_OK;
  }
  double *edges = malloc(sizeof(double) * (size_t)(nb + 2));
  if (edges == NULL) return ES_ERR_OUT_OF_MEMORY;
  const double mel_low = es_hz_to_mel(low, c->scale), mel_high = es_hz_to_mel(high, c->scale);
  const double step = (mel_high - mel_low) / (nb + 1);
  for (int i = 0; i < nb + 2; i++) edges[i] = es_mel_to_hz(mel_low + i * step, c->scale);
  edges[nb + 1] = high; /* linspace ends exactly on its endpoint */
  for (int b = 0; b < nb; b++) {
    const double f0 = edges[b], f1 = edges[b + 1], f2 = edges[b + 2];
    for (int k = 0; k < nf; k++) {
      double freq = (double)k * sample_rate_hz / fft_size;
      double w = ES_MIN((freq - f0) / (f1 - f0), (f2 - freq) / (f2 - f1));
      out[(size_t)b * nf + k] = w > 0.0 ? (float)w : 0.0f;
    }
  }
  free(edges);
  return ES_OK;
}

/* The first filter without a positive weight, or -1. */
static int first_empty_filter(const float *dense, int nb, int nf) {
  for (int b = 0; b < nb; b++) {
    int any = 0;
    for (int k = 0; k < nf && !any; k++) any = dense[(size_t)b * nf + k] > 0.0f;
    if (!any) return b;
  }
  return -1;
}

static double band_width_hz(const es_mel_config *c, float sample_rate_hz, int b) {
  double low = c->low_freq_hz, high = resolved_high_freq(c, sample_rate_hz);
  double mel_low = es_hz_to_mel(low, c->scale), mel_high = es_hz_to_mel(high, c->scale);
  double step = (mel_high - mel_low) / (c->num_bins + 1);
  double top = b + 2 == c->num_bins + 1 ? high : es_mel_to_hz(mel_low + (b + 2) * step, c->scale);
  return top - es_mel_to_hz(mel_low + b * step, c->scale);
}

static es_status check_basic(const es_mel_config *c, float sample_rate_hz, int fft_size, char *why,
                             size_t why_size) {
  char msg[256];
  double nyquist = 0.5 * sample_rate_hz, high = resolved_high_freq(c, sample_rate_hz);
  int num_fft_bins = fft_size / 2 + 1;
  if (c->num_bins < 1) {
    snprintf(msg, sizeof msg, "num_mel_bins must be >= 1, got %d", c->num_bins);
  } else if (c->num_bins > num_fft_bins) {
    snprintf(msg, sizeof msg, "num_mel_bins (%d) exceeds the %d FFT bins of a %d-point FFT",
             c->num_bins, num_fft_bins, fft_size);
  } else if (!(c->low_freq_hz >= 0.0f)) {
    snprintf(msg, sizeof msg, "low_freq_hz must be >= 0, got %g", c->low_freq_hz);
  } else if (!(high <= nyquist + 1e-3)) {
    snprintf(msg, sizeof msg, "high_freq_hz (%g) is above the Nyquist frequency (%g Hz)", high, nyquist);
  } else if (!(high > c->low_freq_hz)) {
    snprintf(msg, sizeof msg, "the mel band is empty: high frequency %g Hz <= low_freq_hz %g Hz", high,
             (double)c->low_freq_hz);
  } else if ((unsigned)c->scale > ES_MEL_SCALE_SLANEY || (unsigned)c->triangles > ES_MEL_TRIANGLES_HZ ||
             (unsigned)c->norm > ES_MEL_NORM_SLANEY) {
    snprintf(msg, sizeof msg, "unknown mel scale, triangle or norm value");
  } else {
    return ES_OK;
  }
  es_explain(why, why_size, msg);
  return ES_ERR_INVALID_CONFIG;
}

static es_status explain_empty_filter(int b, const es_mel_config *c, int fft_size, char *why, size_t why_size) {
  char msg[256];
  snprintf(msg, sizeof msg,
           "mel filter %d covers no FFT bin: use fewer mel bins (%d), a larger fft_size (%d) or a "
           "higher low_freq_hz",
           b, c->num_bins, fft_size);
  es_explain(why, why_size, msg);
  return ES_ERR_INVALID_CONFIG;
}

es_status es_mel_config_check(const es_mel_config *c, float sample_rate_hz, int fft_size, char *why,
                              size_t why_size) {
  if (c == NULL) return ES_ERR_INVALID_ARGUMENT;
  es_status s = check_basic(c, sample_rate_hz, fft_size, why, why_size);
  if (s != ES_OK) return s;
  const int nf = fft_size / 2 + 1;
  float *dense = malloc(sizeof(float) * (size_t)c->num_bins * (size_t)nf);
  if (dense == NULL) return ES_ERR_OUT_OF_MEMORY;
  s = compute_weights(c, sample_rate_hz, fft_size, dense);
  int empty = s == ES_OK ? first_empty_filter(dense, c->num_bins, nf) : -1;
  free(dense);
  if (s == ES_OK && empty >= 0) s = explain_empty_filter(empty, c, fft_size, why, why_size);
  return s;
}

void es_mel_free(es_mel_filterbank *bank) {
  if (bank == NULL) return;
  free(bank->first_bin);
  free(bank->num_weights);
  free(bank->weight_offset);
  free(bank->weights);
  memset(bank, 0, sizeof(*bank));
}

es_status es_mel_init(es_mel_filterbank *bank, const es_mel_config *c, float sample_rate_hz, int fft_size) {
  if (bank == NULL || c == NULL) return ES_ERR_INVALID_ARGUMENT;
  memset(bank, 0, sizeof(*bank));
  es_status s = check_basic(c, sample_rate_hz, fft_size, NULL, 0);
  if (s != ES_OK) return s;
  const int nb = c->num_bins, nf = fft_size / 2 + 1;
  float *dense = malloc(sizeof(float) * (size_t)nb * (size_t)nf);
  if (dense == NULL) return ES_ERR_OUT_OF_MEMORY;
  s = compute_weights(c, sample_rate_hz, fft_size, dense);
  if (s == ES_OK && first_empty_filter(dense, nb, nf) >= 0) s = ES_ERR_INVALID_CONFIG;
  if (s != ES_OK) {
    free(dense);
    return s;
  }
  bank->num_bins = nb;
  bank->num_fft_bins = nf;
  bank->first_bin = calloc((size_t)nb, sizeof(int));
  bank->num_weights = calloc((size_t)nb, sizeof(int));
  bank->weight_offset = calloc((size_t)nb, sizeof(int));
  bank->weights = malloc(sizeof(float) * (size_t)nb * (size_t)nf);
  if (!bank->first_bin || !bank->num_weights || !bank->weight_offset || !bank->weights) {
    free(dense);
    es_mel_free(bank);
    return ES_ERR_OUT_OF_MEMORY;
  }
  int total = 0;
  for (int b = 0; b < nb; b++) {
    const float *row = dense + (size_t)b * nf;
    int first = 0, last = nf - 1;
    while (row[first] == 0.0f) first++;
    while (row[last] == 0.0f) last--;
    double norm = c->norm == ES_MEL_NORM_SLANEY ? 2.0 / band_width_hz(c, sample_rate_hz, b) : 1.0;
    bank->first_bin[b] = first;
    bank->num_weights[b] = last - first + 1;
    bank->weight_offset[b] = total;
    for (int k = first; k <= last; k++) bank->weights[total++] = (float)(row[k] * norm);
  }
  free(dense);
  return ES_OK;
}
void es_mel_apply(const es_mel_filterbank *bank, const float *spectrum, float *out) {
  for (int b = 0; b < bank->num_bins; b++) {
    const float *w = bank->weights + bank->weight_offset[b];
    const float *s = spectrum + bank->first_bin[b];
    float acc = 0.0f;
    for (int j = 0; j < bank->num_weights[b]; j++) acc += w[j] * s[j];
    out[b] = acc;
  }
}

void es_mel_dense(const es_mel_filterbank *bank, float *out) {
  memset(out, 0, sizeof(float) * (size_t)bank->num_bins * (size_t)bank->num_fft_bins);
  for (int b = 0; b < bank->num_bins; b++) {
    const float *w = bank->weights + bank->weight_offset[b];
    for (int j = 0; j < bank->num_weights[b]; j++)
      out[(size_t)b * bank->num_fft_bins + bank->first_bin[b] + j] = w[j];
  }
}
