/*
 * Grammar-constrained CTC decoding: a token-level automaton (compiled from JSGF or intent
 * templates by the caller) and a streaming Viterbi search over its CTC expansion, with a
 * free-running reference score for rejection.
 *
 *   es_grammar g;                                  // arcs: from, to, token, weight, label
 *   es_grammar_init(&g, arcs, num_arcs, num_states, start, finals, num_finals, vocab_size, blank, why, n);
 *   es_grammar_decoder d;
 *   es_grammar_decoder_init(&d, &g);
 *   es_grammar_decoder_accept(&d, log_probs, num_frames);   // any chunking
 *   es_grammar_decoder_result(&d, path, capacity, &length, &score, &free_score);
 *   es_grammar_decoder_free(&d); es_grammar_free(&g);
 *
 * The search keeps, per automaton state, the best score of having just emitted blank there, and
 * per arc the best score of being inside that arc's token (which may repeat). A token may follow
 * the same token only through a blank, as CTC requires. score is the best in-grammar alignment's
 * log-probability plus its arc weights; free_score is the best unconstrained alignment's (the
 * frame-wise maximum), so score - free_score <= 0 measures how far the grammar had to bend the
 * audio: the basis for rejecting speech outside the grammar.
 * The search visits only the states and arcs whose score is within `beam` of the frame's best
 * (ES_GRAMMAR_DEFAULT_BEAM; es_grammar_decoder_set_beam with INFINITY makes it exact): a grammar
 * of hundreds of thousands of arcs costs what its few live paths cost, not its size.
 * The grammar is read-only after init and may be shared. Memory: after init only the decoder's
 * accept allocates, to double its traceback pool when compacting a full pool leaves it more than
 * half in use (see edge_speech.h). Thread safety: see es_common.h.
 */
#ifndef EDGE_SPEECH_ES_GRAMMAR_H
#define EDGE_SPEECH_ES_GRAMMAR_H

#include "es_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An arc weight's bound: sums along any path then stay finite (no +inf, so no inf - inf NaN). */
#define ES_GRAMMAR_MAX_ABS_WEIGHT 1e6f

typedef struct es_grammar_arc {
  int32_t from, to;
  int32_t token;    /* a non-blank token id */
  float weight;     /* natural-log weight added when the arc is entered, |weight| <= ES_GRAMMAR_MAX_ABS_WEIGHT */
  int32_t label;    /* caller's output label (e.g. a word of an intent), -1 for none */
} es_grammar_arc;

typedef struct es_grammar {
  int32_t num_states, num_arcs, start;
  int vocab_size, blank_id;
  es_grammar_arc *arcs;        /* sorted by from */
  int32_t *first_arc;          /* num_states + 1: arcs of state s are first_arc[s]..first_arc[s+1]-1 */
  int32_t *in_arcs;            /* arc ids sorted by destination */
  int32_t *first_in;           /* num_states + 1 */
  uint8_t *final;              /* num_states */
} es_grammar;

es_status es_grammar_init(es_grammar *g, const es_grammar_arc *arcs, int32_t num_arcs, int32_t num_states,
                          int32_t start, const int32_t *finals, int32_t num_finals, int vocab_size, int blank_id,
                          char *why, size_t why_size);
void es_grammar_free(es_grammar *g);

/* One emitted token of the best path. */
typedef struct es_grammar_step {
  int32_t arc;
  int32_t token;
  int32_t label;
  int64_t frame;
} es_grammar_step;

typedef struct es_grammar_trace {
  int32_t arc;
  int32_t prev;
  int64_t frame;
  int32_t mark;
} es_grammar_trace;

/* Log-probability units: a path this far below the frame's best is dropped. On 126 synthesized
 * in-grammar commands (clean and at 10 dB SNR, two grammars) the pruned search equalled the exact
 * one; outside a grammar it can only score lower (so rejection only gets stricter). Home
 * Assistant's English intents (463k arcs): 10-20 ms per 2-s command instead of 1.5-2.3 s. */
#define ES_GRAMMAR_DEFAULT_BEAM 40.0f

typedef struct es_grammar_decoder {
  const es_grammar *grammar;
  float *blank_score, *arc_score;       /* current frame; -INFINITY wherever not live */
  int32_t *blank_trace, *arc_trace;     /* traceback ids (-1: none) */
  float *next_blank, *next_arc;         /* all -INFINITY between frames */
  int32_t *next_blank_trace, *next_arc_trace;
  int32_t *live_states, *live_arcs;     /* the finite entries of blank_score / arc_score */
  int32_t num_live_states, num_live_arcs;
  int32_t *next_live_states, *next_live_arcs;
  int32_t *touched;                     /* states reached this frame */
  int32_t *state_seen, *arc_seen;       /* 1: already in this frame's lists (0 between frames) */
  float *in_best, *in_second;           /* per touched state: the best two arrivals by token */
  int32_t *in_token, *in_trace, *in_second_trace, *in_arc, *in_second_arc;
  float beam;
  es_grammar_trace *trace;
  int32_t num_trace, trace_capacity;
  double free_score;
  int64_t frames_done;
} es_grammar_decoder;

es_status es_grammar_decoder_init(es_grammar_decoder *d, const es_grammar *g);
/* beam > 0 (INFINITY: exact search); takes effect from the next frame. */
es_status es_grammar_decoder_set_beam(es_grammar_decoder *d, float beam);
void es_grammar_decoder_free(es_grammar_decoder *d);
void es_grammar_decoder_reset(es_grammar_decoder *d);
/* ES_ERR_NON_FINITE_INPUT (nothing consumed) for NaN or +Inf. */
es_status es_grammar_decoder_accept(es_grammar_decoder *d, const float *log_probs, size_t num_frames);
/* The best complete in-grammar path so far (ending in a final state): its tokens into path,
 * *length its count (even on ES_ERR_BUFFER_TOO_SMALL), *score its score (-INFINITY and length 0
 * when no in-grammar path exists yet), *free_score the unconstrained best. */
es_status es_grammar_decoder_result(const es_grammar_decoder *d, es_grammar_step *path, size_t capacity,
                                    size_t *length, float *score, float *free_score);

#ifdef __cplusplus
}
#endif
#endif
