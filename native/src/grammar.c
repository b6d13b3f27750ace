#include "edge_speech/es_grammar.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge_speech/es_ctc_greedy.h"

void es_grammar_free(es_grammar *g) {
  if (g == NULL) return;
  free(g->arcs);
  free(g->first_arc);
  free(g->in_arcs);
  free(g->first_in);
  free(g->final);
  memset(g, 0, sizeof(*g));
}

es_status es_grammar_init(es_grammar *g, const es_grammar_arc *arcs, int32_t num_arcs, int32_t num_states,
                          int32_t start, const int32_t *finals, int32_t num_finals, int vocab_size, int blank_id,
                          char *why, size_t why_size) {
  char msg[160];
  if (g == NULL) return ES_ERR_INVALID_ARGUMENT;
  memset(g, 0, sizeof(*g));
  if (num_states < 1 || num_arcs < 0 || (num_arcs > 0 && arcs == NULL) || num_finals < 0 ||
      (num_finals > 0 && finals == NULL) || vocab_size < 1 || blank_id < 0 || blank_id >= vocab_size) {
    es_explain(why, why_size, "a grammar needs states, a vocabulary and a blank inside it");
    return ES_ERR_INVALID_CONFIG;
  }
  if (start < 0 || start >= num_states) {
    es_explain(why, why_size, "the start state is out of range");
    return ES_ERR_INVALID_CONFIG;
  }
  for (int32_t i = 0; i < num_arcs; i++) {
    const es_grammar_arc *a = &arcs[i];
    if (a->from < 0 || a->from >= num_states || a->to < 0 || a->to >= num_states || a->token < 0 ||
        a->token >= vocab_size || a->token == blank_id || !(fabsf(a->weight) <= ES_GRAMMAR_MAX_ABS_WEIGHT)) {
      snprintf(msg, sizeof msg,
               "arc %d (%d -> %d, token %d) is out of range, uses the blank, or has a weight that is not "
               "finite within +-1e6",
               (int)i, (int)a->from, (int)a->to, (int)a->token);
      es_explain(why, why_size, msg);
      return ES_ERR_INVALID_CONFIG;
    }
  }
  for (int32_t i = 0; i < num_finals; i++)
    if (finals[i] < 0 || finals[i] >= num_states) {
      es_explain(why, why_size, "a final state is out of range");
      return ES_ERR_INVALID_CONFIG;
    }
  size_t na = (size_t)(num_arcs ? num_arcs : 1), ns = (size_t)num_states;
  g->arcs = malloc(sizeof(es_grammar_arc) * na);
  g->first_arc = calloc(ns + 1, sizeof(int32_t));
  g->in_arcs = malloc(sizeof(int32_t) * na);
  g->first_in = calloc(ns + 1, sizeof(int32_t));
  g->final = calloc(ns, 1);
  if (!g->arcs || !g->first_arc || !g->in_arcs || !g->first_in || !g->final) {
    es_grammar_free(g);
    return ES_ERR_OUT_OF_MEMORY;
  }
  g->num_states = num_states;
  g->num_arcs = num_arcs;
  g->start = start;
  g->vocab_size = vocab_size;
  g->blank_id = blank_id;
  for (int32_t i = 0; i < num_finals; i++) g->final[finals[i]] = 1;
  /* counting sorts: arcs by source (stable), arc ids by destination */
  for (int32_t i = 0; i < num_arcs; i++) {
    g->first_arc[arcs[i].from + 1]++;
    g->first_in[arcs[i].to + 1]++;
  }
  for (int32_t s = 0; s < num_states; s++) {
    g->first_arc[s + 1] += g->first_arc[s];
    g->first_in[s + 1] += g->first_in[s];
  }
  int32_t *fill = calloc(ns, sizeof(int32_t));
  if (fill == NULL) {
    es_grammar_free(g);
    return ES_ERR_OUT_OF_MEMORY;
  }
  for (int32_t i = 0; i < num_arcs; i++) g->arcs[g->first_arc[arcs[i].from] + fill[arcs[i].from]++] = arcs[i];
  memset(fill, 0, sizeof(int32_t) * ns);
  for (int32_t i = 0; i < num_arcs; i++) {
    int32_t to = g->arcs[i].to;
    g->in_arcs[g->first_in[to] + fill[to]++] = i;
  }
  free(fill);
  return ES_OK;
}

void es_grammar_decoder_free(es_grammar_decoder *d) {
  if (d == NULL) return;
  free(d->blank_score);
  free(d->arc_score);
  free(d->blank_trace);
  free(d->arc_trace);
  free(d->next_blank);
  free(d->next_arc);
  free(d->next_blank_trace);
  free(d->next_arc_trace);
  free(d->live_states);
  free(d->live_arcs);
  free(d->next_live_states);
  free(d->next_live_arcs);
  free(d->touched);
  free(d->state_seen);
  free(d->arc_seen);
  free(d->in_best);
  free(d->in_second);
  free(d->in_token);
  free(d->in_trace);
  free(d->in_second_trace);
  free(d->in_arc);
  free(d->in_second_arc);
  free(d->trace);
  memset(d, 0, sizeof(*d));
}

void es_grammar_decoder_reset(es_grammar_decoder *d) {
  const es_grammar *g = d->grammar;
  for (int32_t s = 0; s < g->num_states; s++) {
    d->blank_score[s] = d->next_blank[s] = -INFINITY;
    d->blank_trace[s] = d->next_blank_trace[s] = -1;
    d->state_seen[s] = 0;
  }
  for (int32_t a = 0; a < g->num_arcs; a++) {
    d->arc_score[a] = d->next_arc[a] = -INFINITY;
    d->arc_trace[a] = d->next_arc_trace[a] = -1;
    d->arc_seen[a] = 0;
  }
  d->blank_score[g->start] = 0.0f; /* before the first frame */
  d->live_states[0] = g->start;
  d->num_live_states = 1;
  d->num_live_arcs = 0;
  d->num_trace = 0;
  d->free_score = 0.0;
  d->frames_done = 0;
}

es_status es_grammar_decoder_init(es_grammar_decoder *d, const es_grammar *g) {
  if (d == NULL) return ES_ERR_INVALID_ARGUMENT;
  memset(d, 0, sizeof(*d));
  if (g == NULL || g->final == NULL) return ES_ERR_INVALID_ARGUMENT;
  d->grammar = g;
  d->beam = ES_GRAMMAR_DEFAULT_BEAM;
  size_t ns = (size_t)g->num_states, na = (size_t)(g->num_arcs ? g->num_arcs : 1);
  d->blank_score = malloc(sizeof(float) * ns);
  d->next_blank = malloc(sizeof(float) * ns);
  d->blank_trace = malloc(sizeof(int32_t) * ns);
  d->next_blank_trace = malloc(sizeof(int32_t) * ns);
  d->arc_score = malloc(sizeof(float) * na);
  d->next_arc = malloc(sizeof(float) * na);
  d->arc_trace = malloc(sizeof(int32_t) * na);
  d->next_arc_trace = malloc(sizeof(int32_t) * na);
  d->live_states = malloc(sizeof(int32_t) * ns);
  d->next_live_states = malloc(sizeof(int32_t) * ns);
  d->live_arcs = malloc(sizeof(int32_t) * na);
  d->next_live_arcs = malloc(sizeof(int32_t) * na);
  d->touched = malloc(sizeof(int32_t) * ns);
  d->state_seen = malloc(sizeof(int32_t) * ns);
  d->arc_seen = malloc(sizeof(int32_t) * na);
  d->in_best = malloc(sizeof(float) * ns);
  d->in_second = malloc(sizeof(float) * ns);
  d->in_token = malloc(sizeof(int32_t) * ns);
  d->in_trace = malloc(sizeof(int32_t) * ns);
  d->in_second_trace = malloc(sizeof(int32_t) * ns);
  d->in_arc = malloc(sizeof(int32_t) * ns);
  d->in_second_arc = malloc(sizeof(int32_t) * ns);
  d->trace_capacity = 2 * (int32_t)na + 64;
  d->trace = malloc(sizeof(es_grammar_trace) * (size_t)d->trace_capacity);
  if (!d->blank_score || !d->next_blank || !d->blank_trace || !d->next_blank_trace || !d->arc_score ||
      !d->next_arc || !d->arc_trace || !d->next_arc_trace || !d->live_states || !d->next_live_states ||
      !d->live_arcs || !d->next_live_arcs || !d->touched || !d->state_seen || !d->arc_seen || !d->in_best ||
      !d->in_second || !d->in_token || !d->in_trace || !d->in_second_trace || !d->in_arc || !d->in_second_arc ||
      !d->trace) {
    es_grammar_decoder_free(d);
    return ES_ERR_OUT_OF_MEMORY;
  }
  es_grammar_decoder_reset(d);
  return ES_OK;
}

es_status es_grammar_decoder_set_beam(es_grammar_decoder *d, float beam) {
  if (d == NULL || !(beam > 0.0f)) return ES_ERR_INVALID_ARGUMENT;
  d->beam = beam;
  return ES_OK;
}

/* Room for `needed` trace records: drop unreachable ones (order kept: prev < id), grow if still
 * more than half full. Only live entries hold trace ids (the others are -1). */
static int make_room(es_grammar_decoder *d, int32_t needed) {
  if (d->num_trace + needed <= d->trace_capacity) return 1;
  es_grammar_trace *t = d->trace;
  for (int32_t i = 0; i < d->num_trace; i++) t[i].mark = -1;
  for (int32_t k = 0; k < d->num_live_states; k++)
    for (int32_t i = d->blank_trace[d->live_states[k]]; i >= 0 && t[i].mark < 0; i = t[i].prev) t[i].mark = 0;
  for (int32_t k = 0; k < d->num_live_arcs; k++)
    for (int32_t i = d->arc_trace[d->live_arcs[k]]; i >= 0 && t[i].mark < 0; i = t[i].prev) t[i].mark = 0;
  int32_t n = 0;
  for (int32_t i = 0; i < d->num_trace; i++)
    if (t[i].mark >= 0) t[i].mark = n++;
  for (int32_t i = 0; i < d->num_trace; i++) /* remap prev before anything moves */
    if (t[i].mark >= 0 && t[i].prev >= 0) t[i].prev = t[t[i].prev].mark;
  for (int32_t k = 0; k < d->num_live_states; k++) {
    int32_t s = d->live_states[k];
    if (d->blank_trace[s] >= 0) d->blank_trace[s] = t[d->blank_trace[s]].mark;
  }
  for (int32_t k = 0; k < d->num_live_arcs; k++) {
    int32_t a = d->live_arcs[k];
    if (d->arc_trace[a] >= 0) d->arc_trace[a] = t[d->arc_trace[a]].mark;
  }
  for (int32_t i = 0; i < d->num_trace; i++)
    if (t[i].mark >= 0) t[t[i].mark] = t[i];
  d->num_trace = n;
  if (n + needed <= d->trace_capacity / 2 + 1) return 1;
  int32_t capacity = d->trace_capacity;
  while (capacity < 2 * (n + needed)) capacity *= 2;
  es_grammar_trace *grown = realloc(d->trace, sizeof(es_grammar_trace) * (size_t)capacity);
  if (grown == NULL) return n + needed <= d->trace_capacity;
  d->trace = grown;
  d->trace_capacity = capacity;
  return 1;
}

/* q joins this frame's touched states (once); its arrivals start empty. */
static void touch(es_grammar_decoder *d, int32_t q, int32_t *num_touched) {
  if (d->state_seen[q]) return;
  d->state_seen[q] = 1;
  d->touched[(*num_touched)++] = q;
  d->in_best[q] = d->in_second[q] = -INFINITY;
  d->in_token[q] = -1;
  d->in_trace[q] = d->in_second_trace[q] = -1;
  d->in_arc[q] = d->in_second_arc[q] = INT32_MAX;
}

static void write_arc(es_grammar_decoder *d, int32_t a, float value, int32_t trace, int32_t *num_next) {
  d->next_arc[a] = value;
  d->next_arc_trace[a] = trace;
  d->next_live_arcs[(*num_next)++] = a;
}

static es_status step(es_grammar_decoder *d, const float *row) {
  const es_grammar *g = d->grammar;
  const float lp_blank = row[g->blank_id];
  if (!make_room(d, g->num_arcs)) return ES_ERR_OUT_OF_MEMORY;
  float frame_max = row[0];
  for (int v = 1; v < g->vocab_size; v++)
    if (row[v] > frame_max) frame_max = row[v];
  d->free_score += frame_max;
  int32_t num_touched = 0;
  /* the best two arrivals into each destination, with different tokens (a token cannot follow
   * itself directly) */
  for (int32_t k = 0; k < d->num_live_arcs; k++) {
    int32_t a = d->live_arcs[k];
    int32_t q = g->arcs[a].to, tok = g->arcs[a].token;
    float v = d->arc_score[a];
    touch(d, q, &num_touched);
    /* ties go to the lower arc id, so the result does not depend on the order of the live list */
    if (v > d->in_best[q] || (v == d->in_best[q] && a < d->in_arc[q])) {
      if (tok != d->in_token[q]) {
        d->in_second[q] = d->in_best[q];
        d->in_second_trace[q] = d->in_trace[q];
        d->in_second_arc[q] = d->in_arc[q];
      }
      d->in_best[q] = v;
      d->in_token[q] = tok;
      d->in_trace[q] = d->arc_trace[a];
      d->in_arc[q] = a;
    } else if (tok != d->in_token[q] && (v > d->in_second[q] || (v == d->in_second[q] && a < d->in_second_arc[q]))) {
      d->in_second[q] = v;
      d->in_second_trace[q] = d->arc_trace[a];
      d->in_second_arc[q] = a;
    }
  }
  for (int32_t k = 0; k < d->num_live_states; k++) touch(d, d->live_states[k], &num_touched);
  int32_t num_next_states = 0, num_next_arcs = 0;
  for (int32_t k = 0; k < num_touched; k++) {
    const int32_t q = d->touched[k];
    const float v1 = d->in_best[q], v2 = d->in_second[q], b = d->blank_score[q];
    const int32_t tok1 = d->in_token[q], tr1 = d->in_trace[q], tr2 = d->in_second_trace[q];
    if (b >= v1) {
      d->next_blank[q] = b + lp_blank;
      d->next_blank_trace[q] = d->blank_trace[q];
    } else {
      d->next_blank[q] = v1 + lp_blank;
      d->next_blank_trace[q] = tr1;
    }
    d->next_live_states[num_next_states++] = q;
    for (int32_t a = g->first_arc[q]; a < g->first_arc[q + 1]; a++) {
      const es_grammar_arc *arc = &g->arcs[a];
      const float stay = d->arc_score[a];
      float enter = b;
      int32_t enter_trace = d->blank_trace[q];
      const float direct = tok1 != arc->token ? v1 : v2;
      if (direct > enter) {
        enter = direct;
        enter_trace = tok1 != arc->token ? tr1 : tr2;
      }
      enter += arc->weight;
      const float lp = row[arc->token];
      d->arc_seen[a] = 1;
      if (stay >= enter) {
        if (stay > -INFINITY) write_arc(d, a, stay + lp, d->arc_trace[a], &num_next_arcs);
      } else {
        int32_t id = d->num_trace++;
        d->trace[id].arc = a;
        d->trace[id].prev = enter_trace;
        d->trace[id].frame = d->frames_done;
        d->trace[id].mark = 0;
        write_arc(d, a, enter + lp, id, &num_next_arcs);
      }
    }
  }
  /* live arcs whose source state was not reached: they can only stay */
  for (int32_t k = 0; k < d->num_live_arcs; k++) {
    int32_t a = d->live_arcs[k];
    if (!d->arc_seen[a]) write_arc(d, a, d->arc_score[a] + row[g->arcs[a].token], d->arc_trace[a], &num_next_arcs);
  }
  for (int32_t k = 0; k < num_touched; k++) {
    const int32_t q = d->touched[k];
    d->state_seen[q] = 0;
    for (int32_t a = g->first_arc[q]; a < g->first_arc[q + 1]; a++) d->arc_seen[a] = 0;
  }
  /* this frame's entries go back to -INFINITY: the arrays become next frame's `next` */
  for (int32_t k = 0; k < d->num_live_states; k++) {
    d->blank_score[d->live_states[k]] = -INFINITY;
    d->blank_trace[d->live_states[k]] = -1;
  }
  for (int32_t k = 0; k < d->num_live_arcs; k++) {
    d->arc_score[d->live_arcs[k]] = -INFINITY;
    d->arc_trace[d->live_arcs[k]] = -1;
  }
  /* the beam: drop what is too far below the best (and what is not finite) */
  float best = -INFINITY;
  for (int32_t k = 0; k < num_next_states; k++)
    if (d->next_blank[d->next_live_states[k]] > best) best = d->next_blank[d->next_live_states[k]];
  for (int32_t k = 0; k < num_next_arcs; k++)
    if (d->next_arc[d->next_live_arcs[k]] > best) best = d->next_arc[d->next_live_arcs[k]];
  const float floor = best - d->beam;
  int32_t n = 0;
  for (int32_t k = 0; k < num_next_states; k++) {
    int32_t q = d->next_live_states[k];
    if (d->next_blank[q] > -INFINITY && d->next_blank[q] >= floor) {
      d->next_live_states[n++] = q;
    } else {
      d->next_blank[q] = -INFINITY;
      d->next_blank_trace[q] = -1;
    }
  }
  num_next_states = n;
  n = 0;
  for (int32_t k = 0; k < num_next_arcs; k++) {
    int32_t a = d->next_live_arcs[k];
    if (d->next_arc[a] > -INFINITY && d->next_arc[a] >= floor) {
      d->next_live_arcs[n++] = a;
    } else {
      d->next_arc[a] = -INFINITY;
      d->next_arc_trace[a] = -1;
    }
  }
  num_next_arcs = n;
  float *f;
  int32_t *i;
  f = d->blank_score, d->blank_score = d->next_blank, d->next_blank = f;
  f = d->arc_score, d->arc_score = d->next_arc, d->next_arc = f;
  i = d->blank_trace, d->blank_trace = d->next_blank_trace, d->next_blank_trace = i;
  i = d->arc_trace, d->arc_trace = d->next_arc_trace, d->next_arc_trace = i;
  i = d->live_states, d->live_states = d->next_live_states, d->next_live_states = i;
  i = d->live_arcs, d->live_arcs = d->next_live_arcs, d->next_live_arcs = i;
  d->num_live_states = num_next_states;
  d->num_live_arcs = num_next_arcs;
  d->frames_done++;
  return ES_OK;
}

es_status es_grammar_decoder_accept(es_grammar_decoder *d, const float *log_probs, size_t num_frames) {
  if (d == NULL || (num_frames > 0 && log_probs == NULL)) return ES_ERR_INVALID_ARGUMENT;
  if (d->grammar == NULL) return ES_ERR_STATE;
  const size_t V = (size_t)d->grammar->vocab_size;
  if (!es_log_probs_valid(log_probs, num_frames * V)) return ES_ERR_NON_FINITE_INPUT;
  for (size_t t = 0; t < num_frames; t++) {
    es_status s = step(d, log_probs + t * V);
    if (s != ES_OK) return s;
  }
  return ES_OK;
}

es_status es_grammar_decoder_result(const es_grammar_decoder *d, es_grammar_step *path, size_t capacity,
                                    size_t *length, float *score, float *free_score) {
  if (d == NULL || length == NULL || (path == NULL && capacity > 0)) return ES_ERR_INVALID_ARGUMENT;
  *length = 0;
  if (d->grammar == NULL) return ES_ERR_STATE;
  const es_grammar *g = d->grammar;
  float best = -INFINITY;
  int32_t best_trace = -1;
  for (int32_t q = 0; q < g->num_states; q++) {
    if (!g->final[q]) continue;
    if (d->blank_score[q] > best) {
      best = d->blank_score[q];
      best_trace = d->blank_trace[q];
    }
    for (int32_t k = g->first_in[q]; k < g->first_in[q + 1]; k++) {
      int32_t a = g->in_arcs[k];
      if (d->arc_score[a] > best) {
        best = d->arc_score[a];
        best_trace = d->arc_trace[a];
      }
    }
  }
  if (score) *score = best;
  if (free_score) *free_score = (float)d->free_score;
  size_t n = 0;
  if (best > -INFINITY)
    for (int32_t i = best_trace; i >= 0; i = d->trace[i].prev) n++;
  *length = n;
  if (n > capacity) return ES_ERR_BUFFER_TOO_SMALL;
  size_t k = n;
  if (best > -INFINITY)
    for (int32_t i = best_trace; i >= 0; i = d->trace[i].prev) {
      const es_grammar_arc *arc = &g->arcs[d->trace[i].arc];
      k--;
      path[k].arc = d->trace[i].arc;
      path[k].token = arc->token;
      path[k].label = arc->label;
      path[k].frame = d->trace[i].frame;
    }
  return ES_OK;
}
