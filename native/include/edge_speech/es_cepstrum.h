/* DCT-II (orthonormal) from log mel energies to cepstra, with Kaldi's sinusoidal liftering. */
#ifndef EDGE_SPEECH_ES_CEPSTRUM_H
#define EDGE_SPEECH_ES_CEPSTRUM_H

#include "es_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct es_cepstrum {
  int num_inputs;   /* mel bins */
  int num_ceps;
  float *matrix;    /* num_ceps x num_inputs, lifter folded in */
} es_cepstrum;

/* lifter == 0 disables liftering; otherwise coefficient i is scaled by 1 + lifter/2 sin(pi i / lifter). */
es_status es_cepstrum_init(es_cepstrum *cep, int num_inputs, int num_ceps, float lifter);
void es_cepstrum_free(es_cepstrum *cep);
void es_cepstrum_apply(const es_cepstrum *cep, const float *log_mel, float *ceps);

#ifdef __cplusplus
}
#endif
#endif
