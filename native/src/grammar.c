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
        a->token >= vocab_size || a->token == blank_id || !isfinite(a->weight)) {
      snprintf(msg, sizeof msg, "arc %d (%d -> %d, token %d) is out of range, uses the blank, or has a bad weight",
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
  free(d->trace);
  memset(d, 0, sizeof(*d));
}

void es_grammar_decoder_reset(es_grammar_decoder *d) {
  const es_grammar *g = d->grammar;
  for (int32_t s = 0; s < g->num_states; s++) {
    d->blank_score[s] = -INFINITY;
    d->blank_trace[s] = -1;
  }
  for (int32_t a = 0; a < g->num_arcs; a++) {
    d->arc_score[a] = -INFINITY;
    d->arc_trace[a] = -1;
  }
  d->blank_score[g->start] = 0.0f; /* before the first frame */
  d->num_trace = 0;
  d->free_score = 0.0;
  d->frames_done = 0;
}

es_status es_grammar_decoder_init(es_grammar_decoder *d, const es_grammar *g) {
  if (d == NULL) return ES_ERR_INVALID_ARGUMENT;
  memset(d, 0, sizeof(*d));
  if (g == NULL || g->final == NULL) return ES_ERR_INVALID_ARGUMENT;
  d->grammar = g;
  size_t ns = (size_t)g->num_states, na = (size_t)(g->num_arcs ? g->num_arcs : 1);
  d->blank_score = malloc(sizeof(float) * ns);
  d->next_blank = malloc(sizeof(float) * ns);
  d->blank_trace = malloc(sizeof(int32_t) * ns);
  d->next_blank_trace = malloc(sizeof(int32_t) * ns);
  d->arc_score = malloc(sizeof(float) * na);
  d->next_arc = malloc(sizeof(float) * na);
  d->arc_trace = malloc(sizeof(int32_t) * na);
  d->next_arc_trace = malloc(sizeof(int32_t) * na);
  d->trace_capacity = 2 * (int32_t)na + 64;
  d->trace = malloc(sizeof(es_grammar_trace) * (size_t)d->trace_capacity);
  if (!d->blank_score || !d->next_blank || !d->blank_trace || !d->next_blank_trace || !d->arc_score ||
      !d->next_arc || !d->arc_trace || !d->next_arc_trace || !d->trace) {
    es_grammar_decoder_free(d);
    return ES_ERR_OUT_OF_MEMORY;
  }
  es_grammar_decoder_reset(d);
  return ES_OK;
}

/* Room for `needed` trace records: drop unreachable ones (order kept: prev < id), grow if still
 * more than half full. */
static int make_room(es_grammar_decoder *d, int32_t needed) {
  if (d->num_trace + needed <= d->trace_capacity) return 1;
  const es_grammar *g = d->grammar;
  es_grammar_trace *t = d->trace;
  for (int32_t i = 0; i < d->num_trace; i++) t[i].mark = -1;
  for (int32_t s = 0; s < g->num_states; s++)
    for (int32_t i = d->blank_trace[s]; i >= 0 && t[i].mark < 0; i = t[i].prev) t[i].mark = 0;
  for (int32_t a = 0; a < g->num_arcs; a++)
    for (int32_t i = d->arc_trace[a]; i >= 0 && t[i].mark < 0; i = t[i].prev) t[i].mark = 0;
  int32_t n = 0;
  for (int32_t i = 0; i < d->num_trace; i++)
    if (t[i].mark >= 0) t[i].mark = n++;
  for (int32_t i = 0; i < d->num_trace; i++) /* remap prev before anything moves */
    if (t[i].mark >= 0 && t[i].prev >= 0) t[i].prev = t[t[i].prev].mark;
  for (int32_t s = 0; s < g->num_states; s++)
    if (d->blank_trace[s] >= 0) d->blank_trace[s] = t[d->blank_trace[s]].mark;
  for (int32_t a = 0; a < g->num_arcs; a++)
    if (d->arc_trace[a] >= 0) d->arc_trace[a] = t[d->arc_trace[a]].mark;
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

static es_status step(es_grammar_decoder *d, const float *row) {
  const es_grammar *g = d->grammar;
  const float lp_blank = row[g->blank_id];
  if (!make_room(d, g->num_arcs)) return ES_ERR_OUT_OF_MEMORY;
  float frame_max = row[0];
  for (int v = 1; v < g->vocab_size; v++)
    if (row[v] > frame_max) frame_max = row[v];
  d->free_score += frame_max;
  for (int32_t q = 0; q < g->num_states; q++) {
    /* the best two arrivals into q with different tokens (a token cannot follow itself directly) */
    float v1 = -INFINITY, v2 = -INFINITY;
    int32_t tok1 = -1, tr1 = -1, tr2 = -1;
    for (int32_t k = g->first_in[q]; k < g->first_in[q + 1]; k++) {
      int32_t a = g->in_arcs[k];
      float v = d->arc_score[a];
      int32_t tok = g->arcs[a].token;
      if (v > v1) {
        if (tok != tok1) {
          v2 = v1;
          tr2 = tr1;
        }
        v1 = v;
        tok1 = tok;
        tr1 = d->arc_trace[a];
      } else if (tok != tok1 && v > v2) {
        v2 = v;
        tr2 = d->arc_trace[a];
      }
    }
    const float b = d->blank_score[q];
    if (b >= v1) {
      d->next_blank[q] = b + lp_blank;
      d->next_blank_trace[q] = d->blank_trace[q];
    } else {
      d->next_blank[q] = v1 + lp_blank;
      d->next_blank_trace[q] = tr1;
    }
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
      if (stay >= enter) {
        d->next_arc[a] = stay + lp;
        d->next_arc_trace[a] = d->arc_trace[a];
      } else {
        d->next_arc[a] = enter + lp;
        int32_t id = d->num_trace++;
        d->trace[id].arc = a;
        d->trace[id].prev = enter_trace;
        d->trace[id].frame = d->frames_done;
        d->trace[id].mark = 0;
        d->next_arc_trace[a] = id;
      }
    }
  }
  float *f;
  int32_t *i;
  f = d->blank_score, d->blank_score = d->next_blank, d->next_blank = f;
  f = d->arc_score, d->arc_score = d->next_arc, d->next_arc = f;
  i = d->blank_trace, d->blank_trace = d->next_blank_trace, d->next_blank_trace = i;
  i = d->arc_trace, d->arc_trace = d->next_arc_trace, d->next_arc_trace = i;
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
