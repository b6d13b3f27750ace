/* Filterbank shapes: triangles that form a partition of unity (Kaldi, mel-linear), Slaney area
 * normalisation (librosa), and configs that cannot work. */
#include <stdlib.h>
#include <string.h>

#include "edge_speech/es_mel.h"
#include "es_test.h"

int main(void) {
  es_mel_config c = es_mel_config_default();
  c.num_bins = 40;
  es_mel_filterbank bank;
  CHECK(es_mel_init(&bank, &c, 16000.0f, 512) == ES_OK);
  const int nf = bank.num_fft_bins;
  CHECK(nf == 257);
  float *dense = malloc(sizeof(float) * 40 * nf);
  es_mel_dense(&bank, dense);
  /* Every filter is non-negative, peaks at most 1, and its non-zero run is contiguous. */
  for (int b = 0; b < 40; b++) {
    float peak = 0;
    int runs = 0, inside = 0;
    for (int k = 0; k < nf; k++) {
      float v = dense[b * nf + k];
      CHECK(v >= 0.0f);
      if (v > peak) peak = v;
      if (v > 0 && !inside) runs++;
      inside = v > 0;
    }
    CHECK(peak > 0.5f && peak <= 1.0f);
    CHECK(runs == 1);
  }
  /* Between the first and last centre, adjacent triangles sum to 1. */
  double hz_lo = es_mel_to_hz(es_hz_to_mel(20, ES_MEL_SCALE_HTK) + (es_hz_to_mel(8000, ES_MEL_SCALE_HTK) - es_hz_to_mel(20, ES_MEL_SCALE_HTK)) / 41, ES_MEL_SCALE_HTK);
  for (int k = (int)(hz_lo / 31.25) + 1; k < 240; k++) {
    double sum = 0;
    for (int b = 0; b < 40; b++) sum += dense[b * nf + k];
    CHECK_NEAR(sum, 1.0, 1e-4);
  }
  es_mel_free(&bank);

  /* Slaney: each filter's weights times the bin width integrate to ~1 (area 2/bandwidth * bandwidth/2). */
  c.num_bins = 40;
  c.low_freq_hz = 0;
  c.scale = ES_MEL_SCALE_SLANEY;
  c.triangles = ES_MEL_TRIANGLES_HZ;
  c.norm = ES_MEL_NORM_SLANEY;
  CHECK(es_mel_init(&bank, &c, 16000.0f, 2048) == ES_OK);
  float *dense2 = malloc(sizeof(float) * 40 * bank.num_fft_bins);
  es_mel_dense(&bank, dense2);
  for (int b = 0; b < 40; b++) {
    double area = 0;
    for (int k = 0; k < bank.num_fft_bins; k++) area += dense2[b * bank.num_fft_bins + k] * (16000.0 / 2048);
    CHECK_NEAR(area, 1.0, 0.05);
  }
  es_mel_free(&bank);
  es_mel_free(&bank);

  /* Slaney scale: linear below 1 kHz, and the inverse round-trips. */
  CHECK_NEAR(es_hz_to_mel(1000, ES_MEL_SCALE_SLANEY), 15.0, 1e-9);
  CHECK_NEAR(es_mel_to_hz(es_hz_to_mel(3456, ES_MEL_SCALE_SLANEY), ES_MEL_SCALE_SLANEY), 3456, 1e-6);
  CHECK_NEAR(es_mel_to_hz(es_hz_to_mel(3456, ES_MEL_SCALE_HTK), ES_MEL_SCALE_HTK), 3456, 1e-6);

  char why[256];
  es_mel_config bad = es_mel_config_default();
  bad.num_bins = 300;
  CHECK(es_mel_config_check(&bad, 16000, 512, why, sizeof why) == ES_ERR_INVALID_CONFIG);
  CHECK(strstr(why, "exceeds") != NULL);
  bad = es_mel_config_default();
  bad.high_freq_hz = 9000;
  CHECK(es_mel_config_check(&bad, 16000, 512, why, sizeof why) == ES_ERR_INVALID_CONFIG);
  CHECK(strstr(why, "Nyquist") != NULL);
  bad = es_mel_config_default();
  bad.num_bins = 200; /* fewer than 257 FFT bins, but the low filters are narrower than a bin */
  CHECK(es_mel_config_check(&bad, 16000, 512, why, sizeof why) == ES_ERR_INVALID_CONFIG);
  CHECK(strstr(why, "covers no FFT bin") != NULL);
  CHECK(es_mel_init(&bank, &bad, 16000, 512) == ES_ERR_INVALID_CONFIG);
  es_mel_free(&bank);
  free(dense);
  free(dense2);
  ES_TEST_MAIN_END();
}
