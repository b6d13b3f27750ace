/* Grammar automata built from fuzzed arcs, states and finals (in and out of range, non-finite
 * weights), then decoded over fuzzed log-probs in fuzzed chunks: es_grammar_init either builds or
 * refuses with a reason, and the decoder's results stay inside the automaton. A second decoder
 * runs the exact search (infinite beam) beside the fuzzed beam's: the pruned score never beats it.
 *
 * Input layout: states, vocabulary size, blank, start, finals, arcs, the beam, then log-probs to the end,
 * each frame preceded by a control byte (chunk boundary, reset, result with a small buffer). */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "edge_speech/es_grammar.h"
#include "fuzz_input.h"

#define MAX_STATES 48
#define MAX_VOCAB 12
#define MAX_FINALS 6
#define MAX_ARCS 200
#define MAX_FRAMES 128

/* A value in 0..limit-1, now and then one just outside (limit, or -1). */
static int32_t take_index(fuzz_input *in, int32_t limit) {
  const uint8_t b = take_u8(in);
  if (b == 255) return -1;
  if (b == 254) return limit;
  return limit > 0 ? (int32_t)(b % (uint32_t)limit) : 0;
}

static float take_weight(fuzz_input *in) {
  const uint8_t b = take_u8(in);
  if (b == 255) return take_raw_float(in);
  return ((float)b - 128.0f) / 32.0f;
}

static float best_score(const es_grammar_decoder *d) {
  size_t length = 0;
  float score = 0.0f;
  (void)es_grammar_decoder_result(d, NULL, 0, &length, &score, NULL);
  return score;
}

static void check_result(const es_grammar_decoder *d, const es_grammar_decoder *exact, const es_grammar *g,
                         size_t capacity) {
  es_grammar_step path[MAX_FRAMES + 1];
  size_t length = 0;
  float score = 0.0f, free_score = 0.0f;
  const es_status s = es_grammar_decoder_result(d, path, capacity, &length, &score, &free_score);
  const float exact_score = best_score(exact);
  /* the pruned search never beats the exact one (both sum the same floats along a path) */
  FUZZ_REQUIRE(score <= exact_score);
  if (d->beam == INFINITY) FUZZ_REQUIRE(score == exact_score);
  FUZZ_REQUIRE(s == ES_OK || s == ES_ERR_BUFFER_TOO_SMALL);
  FUZZ_REQUIRE(!isnan(score) && !isnan(free_score));
  FUZZ_REQUIRE(length <= (size_t)d->frames_done); /* at most one token per frame */
  if (s == ES_ERR_BUFFER_TOO_SMALL) {
    FUZZ_REQUIRE(length > capacity);
    return;
  }
  int64_t previous_frame = -1;
  for (size_t i = 0; i < length; i++) {
    FUZZ_REQUIRE(path[i].arc >= 0 && path[i].arc < g->num_arcs);
    FUZZ_REQUIRE(path[i].token == g->arcs[path[i].arc].token && path[i].token != g->blank_id);
    FUZZ_REQUIRE(path[i].frame > previous_frame && path[i].frame < d->frames_done);
    previous_frame = path[i].frame;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_input in = {data, size};
  const int32_t num_states = take_index(&in, MAX_STATES + 1);
  const int vocab_size = take_index(&in, MAX_VOCAB + 1);
  const int blank_id = take_index(&in, vocab_size > 0 ? vocab_size : 1);
  const int32_t start = take_index(&in, num_states > 0 ? num_states : 1);
  int32_t finals[MAX_FINALS];
  const int32_t num_finals = take_u8(&in) % (MAX_FINALS + 1);
  for (int32_t i = 0; i < num_finals; i++) finals[i] = take_index(&in, num_states > 0 ? num_states : 1);
  es_grammar_arc arcs[MAX_ARCS];
  const int32_t num_arcs = take_u8(&in) % (MAX_ARCS + 1);
  for (int32_t i = 0; i < num_arcs; i++) {
    arcs[i].from = take_index(&in, num_states > 0 ? num_states : 1);
    arcs[i].to = take_index(&in, num_states > 0 ? num_states : 1);
    arcs[i].token = take_index(&in, vocab_size > 0 ? vocab_size : 1);
    arcs[i].weight = take_weight(&in);
    arcs[i].label = (int8_t)take_u8(&in);
  }

  es_grammar g;
  char why[200];
  why[0] = '\0';
  es_status s = es_grammar_init(&g, arcs, num_arcs, num_states, start, finals, num_finals, vocab_size, blank_id, why,
                                sizeof why);
  if (s != ES_OK) {
    FUZZ_REQUIRE(s == ES_ERR_INVALID_CONFIG && why[0] != '\0');
    es_grammar_free(&g);
    return 0;
  }
  FUZZ_REQUIRE(g.first_arc[g.num_states] == num_arcs && g.first_in[g.num_states] == num_arcs);

  es_grammar_decoder d, exact;
  FUZZ_REQUIRE(es_grammar_decoder_init(&d, &g) == ES_OK);
  FUZZ_REQUIRE(es_grammar_decoder_init(&exact, &g) == ES_OK);
  FUZZ_REQUIRE(es_grammar_decoder_set_beam(&exact, INFINITY) == ES_OK);
  const uint8_t beam = take_u8(&in); /* 0: the default, 255: exact, else 1/8 .. 31.75 */
  if (beam == 255) FUZZ_REQUIRE(es_grammar_decoder_set_beam(&d, INFINITY) == ES_OK);
  if (beam > 0 && beam < 255) FUZZ_REQUIRE(es_grammar_decoder_set_beam(&d, beam / 8.0f) == ES_OK);
  float frames[MAX_FRAMES * MAX_VOCAB];
  size_t pending = 0;
  for (int t = 0; t < MAX_FRAMES && in.size > 0; t++) {
    const uint8_t control = take_u8(&in);
    for (int v = 0; v < vocab_size; v++) frames[pending * (size_t)vocab_size + (size_t)v] = take_log_prob(&in);
    pending++;
    if (control & 1) { /* end of a chunk */
      const int64_t before = d.frames_done;
      s = es_grammar_decoder_accept(&d, frames, pending);
      FUZZ_REQUIRE(s == ES_OK || s == ES_ERR_NON_FINITE_INPUT);
      FUZZ_REQUIRE(d.frames_done == before + (s == ES_OK ? (int64_t)pending : 0));
      FUZZ_REQUIRE(es_grammar_decoder_accept(&exact, frames, pending) == s);
      pending = 0;
    }
    if (control & 2) check_result(&d, &exact, &g, control >> 4);
    if ((control & 0x0C) == 0x0C) {
      es_grammar_decoder_reset(&d);
      es_grammar_decoder_reset(&exact);
    }
  }
  if (pending > 0) {
    (void)es_grammar_decoder_accept(&d, frames, pending);
    (void)es_grammar_decoder_accept(&exact, frames, pending);
  }
  check_result(&d, &exact, &g, MAX_FRAMES + 1);
  es_grammar_decoder_free(&d);
  es_grammar_decoder_free(&d);
  es_grammar_decoder_free(&exact);
  es_grammar_free(&g);
  es_grammar_free(&g);
  return 0;
}
