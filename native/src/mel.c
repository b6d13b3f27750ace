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

/* Weight of FFT bin `k` in filter `b`, computed as the reference implementations do:
 * Kaldi in single precision with strict band edges, librosa in double precision. */
static float filter_weight(const es_mel_config *c, float sample_rate_hz, int fft_size, int b, int k) {
  double low = c->low_freq_hz, high = resolved_high_freq(c, sample_rate_hz);
  if (c->triangles == ES_MEL_TRIANGLES_MEL) {
    float mel_low = (float)es_hz_to_mel(low, c->scale), mel_high = (float)es_hz_to_mel(high, c->scale);
    float delta = (mel_high - mel_low) / (float)(c->num_bins + 1);
    float left = mel_low + (float)b * delta, center = mel_low + (float)(b + 1) * delta,
          right = mel_low + (float)(b + 2) * delta;
    float freq = (sample_rate_hz / (float)fft_size) * (float)k;
    float mel = (float)es_hz_to_mel(freq, c->scale);
    if (!(mel > left && mel < right)) return 0.0f;
    return mel <= center ? (mel - left) / (center - left) : (right - mel) / (right - center);
  }
  double mel_low = es_hz_to_mel(low, c->scale), mel_high = es_hz_to_mel(high, c->scale);
  double step = (mel_high - mel_low) / (c->num_bins + 1);
  double f0 = es_mel_to_hz(mel_low + b * step, c->scale);
  double f1 = es_mel_to_hz(mel_low + (b + 1) * step, c->scale);
  double f2 = es_mel_to_hz(mel_low + (b + 2) * step, c->scale);
  if (b + 2 == c->num_bins + 1) f2 = high; /* linspace ends exactly on its endpoint */
  double freq = (double)k * sample_rate_hz / fft_size;
  double lower = (freq - f0) / (f1 - f0), upper = (f2 - freq) / (f2 - f1);
  double w = ES_MIN(lower, upper);
  return w > 0.0 ? (float)w : 0.0f;
}

static double band_width_hz(const es_mel_config *c, float sample_rate_hz, int b) {
  double low = c->low_freq_hz, high = resolved_high_freq(c, sample_rate_hz);
  double mel_low = es_hz_to_mel(low, c->scale), mel_high = es_hz_to_mel(high, c->scale);
  double step = (mel_high - mel_low) / (c->num_bins + 1);
  return es_mel_to_hz(mel_low + (b + 2) * step, c->scale) - es_mel_to_hz(mel_low + b * step, c->scale);
}

es_status es_mel_config_check(const es_mel_config *c, float sample_rate_hz, int fft_size, char *why,
                              size_t why_size) {
  char msg[256];
  if (c == NULL) return ES_ERR_INVALID_ARGUMENT;
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
    for (int b = 0; b < c->num_bins; b++) {
      int any = 0;
      for (int k = 0; k < num_fft_bins && !any; k++)
        any = filter_weight(c, sample_rate_hz, fft_size, b, k) > 0.0f;
      if (!any) {
        snprintf(msg, sizeof msg,
                 "mel filter %d covers no FFT bin: use fewer mel bins (%d), a larger fft_size (%d) "
                 "or a higher low_freq_hz",
                 b, c->num_bins, fft_size);
        es_explain(why, why_size, msg);
        return ES_ERR_INVALID_CONFIG;
      }
    }
    return ES_OK;
  }
  es_explain(why, why_size, msg);
  return ES_ERR_INVALID_CONFIG;
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
  es_status status = es_mel_config_check(c, sample_rate_hz, fft_size, NULL, 0);
  if (status != ES_OK) return status;
  const int nb = c->num_bins, nf = fft_size / 2 + 1;
  bank->num_bins = nb;
  bank->num_fft_bins = nf;
  bank->first_bin = calloc((size_t)nb, sizeof(int));
  bank->num_weights = calloc((size_t)nb, sizeof(int));
  bank->weight_offset = calloc((size_t)nb, sizeof(int));
  if (!bank->first_bin || !bank->num_weights || !bank->weight_offset) goto oom;
  int total = 0;
  for (int b = 0; b < nb; b++) {
    int first = -1, last = -1;
    for (int k = 0; k < nf; k++) {
      if (filter_weight(c, sample_rate_hz, fft_size, b, k) > 0.0f) {
        if (first < 0) first = k;
        last = k;
      }
    }
    bank->first_bin[b] = first < 0 ? 0 : first;
    bank->num_weights[b] = first < 0 ? 0 : last - first + 1;
    bank->weight_offset[b] = total;
    total += bank->num_weights[b];
  }
  bank->weights = malloc(sizeof(float) * (size_t)ES_MAX(total, 1));
  if (!bank->weights) goto oom;
  for (int b = 0; b < nb; b++) {
    double norm = c->norm == ES_MEL_NORM_SLANEY ? 2.0 / band_width_hz(c, sample_rate_hz, b) : 1.0;
    float *w = bank->weights + bank->weight_offset[b];
    for (int j = 0; j < bank->num_weights[b]; j++)
      w[j] = (float)(filter_weight(c, sample_rate_hz, fft_size, b, bank->first_bin[b] + j) * norm);
  }
  return ES_OK;
oom:
  es_mel_free(bank);
  return ES_ERR_OUT_OF_MEMORY;
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
