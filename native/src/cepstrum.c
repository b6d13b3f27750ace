#include "edge_speech/es_cepstrum.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "es_internal.h"

void es_cepstrum_free(es_cepstrum *cep) {
  if (cep == NULL) return;
  free(cep->matrix);
  memset(cep, 0, sizeof(*cep));
}

es_status es_cepstrum_init(es_cepstrum *cep, int num_inputs, int num_ceps, float lifter) {
  if (cep == NULL) return ES_ERR_INVALID_ARGUMENT;
  memset(cep, 0, sizeof(*cep));
  if (num_inputs < 1 || num_ceps < 1 || num_ceps > num_inputs || !(lifter >= 0.0f))
    return ES_ERR_INVALID_CONFIG;
  cep->matrix = malloc(sizeof(float) * (size_t)num_ceps * (size_t)num_inputs);
  if (cep->matrix == NULL) return ES_ERR_OUT_OF_MEMORY;
  cep->num_inputs = num_inputs;
  cep->num_ceps = num_ceps;
  for (int k = 0; k < num_ceps; k++) {
    /* Orthonormal DCT-II row k (Kaldi's ComputeDctMatrix, scipy's norm='ortho'). */
    double norm = k == 0 ? sqrt(1.0 / num_inputs) : sqrt(2.0 / num_inputs);
    double lift = lifter > 0.0f ? 1.0 + 0.5 * lifter * sin(ES_PI * k / lifter) : 1.0;
    for (int n = 0; n < num_inputs; n++)
      cep->matrix[(size_t)k * num_inputs + n] = (float)(lift * norm * cos(ES_PI / num_inputs * (n + 0.5) * k));
  }
  return ES_OK;
}

void es_cepstrum_apply(const es_cepstrum *cep, const float *log_mel, float *ceps) {
  for (int k = 0; k < cep->num_ceps; k++) {
    const float *row = cep->matrix + (size_t)k * cep->num_inputs;
    float acc = 0.0f;
    for (int n = 0; n < cep->num_inputs; n++) acc += row[n] * log_mel[n];
    ceps[k] = acc;
  }
}
