#include "edge_speech/es_ctc_greedy.h"

#include <math.h>
#include <string.h>

es_status es_ctc_greedy_init(es_ctc_greedy *g, int vocab_size, int blank_id) {
  if (g == NULL) return ES_ERR_INVALID_ARGUMENT;
  memset(g, 0, sizeof(*g));
  if (vocab_size < 1 || blank_id < 0 || blank_id >= vocab_size) return ES_ERR_INVALID_CONFIG;
  g->vocab_size = vocab_size;
  g->blank_id = blank_id;
  g->previous = -1;
  return ES_OK;
}

void es_ctc_greedy_reset(es_ctc_greedy *g) {
  g->previous = -1;
  g->frames_done = 0;
  g->path_log_prob = 0.0;
}

void es_ctc_greedy_free(es_ctc_greedy *g) {
  if (g != NULL) memset(g, 0, sizeof(*g));
}

int es_log_probs_valid(const float *x, size_t count) {
  for (size_t i = 0; i < count; i++)
    if (isnan(x[i]) || x[i] == INFINITY) return 0;
  return 1;
}

es_status es_ctc_greedy_accept(es_ctc_greedy *g, const float *log_probs, size_t num_frames, es_ctc_token *out,
                               size_t capacity, size_t *written) {
  if (written) *written = 0;
  if (g == NULL || written == NULL || (num_frames > 0 && (log_probs == NULL || out == NULL)))
    return ES_ERR_INVALID_ARGUMENT;
  if (g->vocab_size < 1) return ES_ERR_STATE;
  const size_t V = (size_t)g->vocab_size;
  if (!es_log_probs_valid(log_probs, num_frames * V)) return ES_ERR_NON_FINITE_INPUT;
  if (capacity < num_frames) return ES_ERR_BUFFER_TOO_SMALL;
  size_t n = 0;
  int32_t previous = g->previous;
  double path = g->path_log_prob;
  for (size_t t = 0; t < num_frames; t++) {
    const float *row = log_probs + t * V;
    int32_t best = 0;
    float best_value = row[0];
    for (size_t v = 1; v < V; v++)
      if (row[v] > best_value) {
        best_value = row[v];
        best = (int32_t)v;
      }
    if (best != previous && best != g->blank_id) {
      out[n].id = best;
      out[n].log_prob = best_value;
      out[n].frame = g->frames_done + (int64_t)t;
      n++;
    }
    previous = best;
    path += best_value;
  }
  g->path_log_prob = path;
  g->previous = previous;
  g->frames_done += (int64_t)num_frames;
  *written = n;
  return ES_OK;
}
