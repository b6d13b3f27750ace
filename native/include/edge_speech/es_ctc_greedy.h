/*
 * Greedy CTC decoding: the most likely token of every frame, repeats merged, blanks removed,
 * streaming.
 *
 *   es_ctc_greedy g;
 *   es_ctc_greedy_init(&g, vocab_size, blank_id);
 *   es_ctc_greedy_accept(&g, log_probs, num_frames, out, capacity, &n);  // any chunking
 *   es_ctc_greedy_free(&g);
 *
 * log_probs is row-major [num_frames x vocab_size] (any monotonic score works: logits too).
 * Each emitted token carries its absolute frame index (the first frame of its run) and the
 * log-prob it had there. A call emits at most num_frames tokens, so capacity >= num_frames always
 * suffices. Nothing allocates. Thread safety: see es_common.h.
 */
#ifndef EDGE_SPEECH_ES_CTC_GREEDY_H
#define EDGE_SPEECH_ES_CTC_GREEDY_H

#include "es_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One decoded token. */
typedef struct es_ctc_token {
  int32_t id;
  float log_prob;   /* the token's log-prob at `frame` */
  int64_t frame;    /* absolute frame index since init/reset at which the token was emitted */
} es_ctc_token;

typedef struct es_ctc_greedy {
  int vocab_size;
  int blank_id;
  int32_t previous;       /* argmax of the last frame seen, -1 before the first */
  int64_t frames_done;
  double path_log_prob;   /* the summed log-prob of the argmax path so far */
} es_ctc_greedy;

es_status es_ctc_greedy_init(es_ctc_greedy *g, int vocab_size, int blank_id);
void es_ctc_greedy_reset(es_ctc_greedy *g);
void es_ctc_greedy_free(es_ctc_greedy *g);

/* ES_ERR_NON_FINITE_INPUT (nothing consumed) if any value is NaN or +Inf (-Inf, a zero
 * probability, is fine); ES_ERR_BUFFER_TOO_SMALL (nothing consumed) if the tokens may not fit. */
es_status es_ctc_greedy_accept(es_ctc_greedy *g, const float *log_probs, size_t num_frames, es_ctc_token *out,
                               size_t capacity, size_t *written);

/* 1 if no value is NaN or +Inf. Shared with the beam search. */
int es_log_probs_valid(const float *log_probs, size_t count);

#ifdef __cplusplus
}
#endif
#endif
