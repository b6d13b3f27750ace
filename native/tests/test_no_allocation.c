/* The allocation policy of edge_speech.h, checked call by call: malloc, calloc, realloc and free
 * are wrapped at link time (see CMakeLists.txt) and counted.
 *   - front end, VAD, greedy CTC: nothing after init (accept, finish, reset, the utterance clamp);
 *   - beam search and grammar decoder: accept allocates only to grow its pool (one realloc each
 *     time the capacity grows); finish, results and reset never, and reset keeps the pool. */
#include <stdio.h>
#include <stdlib.h>

#include "edge_speech.h"
#include "es_test.h"

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
void __real_free(void *p);

static long allocator_calls;
void *__wrap_malloc(size_t size) { allocator_calls++; return __real_malloc(size); }
void *__wrap_calloc(size_t n, size_t size) { allocator_calls++; return __real_calloc(n, size); }
void *__wrap_realloc(void *p, size_t size) { allocator_calls++; return __real_realloc(p, size); }
void __wrap_free(void *p) { allocator_calls++; __real_free(p); }

enum { NUM_SAMPLES = 16000, MAX_FRAMES = 200, MAX_DIM = 80, VOCAB = 300, FRAMES = 400 };
static float samples[NUM_SAMPLES];
static float frames[MAX_FRAMES * MAX_DIM];
static float log_probs[FRAMES * VOCAB];

static void check_frontend(es_frontend_config config) {
  es_frontend fe;
  long before_init = allocator_calls;
  CHECK(es_frontend_init(&fe, &config) == ES_OK);
  CHECK(allocator_calls > before_init); /* the wrap is live: init does allocate */
  CHECK(fe.dim <= MAX_DIM);
  long after_init = allocator_calls;
  for (int round = 0; round < 3; round++) {
    size_t pos = 0, written, total = 0, chunk = 37 + 100 * round;
    while (pos < NUM_SAMPLES) {
      size_t n = pos + chunk <= NUM_SAMPLES ? chunk : NUM_SAMPLES - pos;
      es_samples s = {samples + pos, n, 1, ES_SAMPLE_F32};
      CHECK(es_frontend_accept(&fe, &s, frames + total * fe.dim, MAX_FRAMES - total, &written) == ES_OK);
      total += written;
      pos += n;
    }
    CHECK(es_frontend_finish(&fe, frames + total * fe.dim, MAX_FRAMES - total, &written) == ES_OK);
    es_frontend_clamp_utterance(&fe, frames, total + written);
    es_frontend_reset(&fe);
  }
  CHECK(allocator_calls == after_init);
  es_frontend_free(&fe);
}

static void check_vad(void) {
  es_vad_config config = es_vad_config_default();
  es_vad vad;
  CHECK(es_vad_init(&vad, &config) == ES_OK);
  uint8_t decisions[NUM_SAMPLES / 160 + 1];
  long after_init = allocator_calls;
  for (int round = 0; round < 2; round++) {
    size_t pos = 0, written, done = 0;
    while (pos < NUM_SAMPLES) {
      size_t n = pos + 333 <= NUM_SAMPLES ? 333 : NUM_SAMPLES - pos;
      CHECK(es_vad_accept(&vad, samples + pos, n, decisions + done, sizeof decisions - done, &written) == ES_OK);
      done += written;
      pos += n;
    }
    es_vad_reset(&vad);
  }
  CHECK(allocator_calls == after_init);
  es_vad_free(&vad);
}

static void check_greedy(void) {
  es_ctc_greedy greedy;
  CHECK(es_ctc_greedy_init(&greedy, VOCAB, 0) == ES_OK);
  static es_ctc_token tokens[FRAMES];
  size_t written;
  long before = allocator_calls;
  CHECK(es_ctc_greedy_accept(&greedy, log_probs, FRAMES, tokens, FRAMES, &written) == ES_OK);
  es_ctc_greedy_reset(&greedy);
  CHECK(allocator_calls == before);
  es_ctc_greedy_free(&greedy);
}

/* Accepts every frame one at a time, counting allocations and pool growths; 1 if they match. */
static int beam_pass(es_ctc_beam *beam, int *growths) {
  long before = allocator_calls;
  int32_t capacity = beam->node_capacity;
  *growths = 0;
  for (int t = 0; t < FRAMES; t++) {
    CHECK(es_ctc_beam_accept(beam, log_probs + (size_t)t * VOCAB, 1) == ES_OK);
    if (beam->node_capacity != capacity) {
      CHECK(beam->node_capacity >= 2 * capacity); /* grows by doubling */
      capacity = beam->node_capacity;
      ++*growths;
    }
  }
  long during_accept = allocator_calls - before;
  static es_ctc_token best[FRAMES];
  size_t length;
  es_ctc_beam_score score;
  before = allocator_calls;
  CHECK(es_ctc_beam_finish(beam) == ES_OK);
  for (int r = 0; r < es_ctc_beam_num_hypotheses(beam); r++)
    CHECK(es_ctc_beam_hypothesis(beam, r, best, FRAMES, &length, &score) == ES_OK);
  es_ctc_beam_reset(beam);
  CHECK(allocator_calls == before);
  CHECK(beam->node_capacity == capacity); /* reset keeps the pool */
  return during_accept == *growths;
}

static void check_beam(const es_vocab *vocab, int beam_width, int top_k) {
  es_ctc_beam_config config = es_ctc_beam_config_default();
  config.beam_width = beam_width;
  config.top_k = top_k;
  config.token_min_log_prob = -30.0f; /* wide frames: many extensions, so the pool must grow */
  es_ctc_beam beam;
  char why[200];
  CHECK(es_ctc_beam_init(&beam, &config, vocab, NULL, NULL, why, sizeof why) == ES_OK);
  int growths;
  CHECK(beam_pass(&beam, &growths));
  CHECK(growths >= 1); /* this input does grow the pool from its initial size */
  CHECK(beam_pass(&beam, &growths)); /* a kept pool: growth is rarer, but possible (compaction timing) */
  es_ctc_beam_free(&beam);
}

static void check_grammar(void) {
  /* one state looping over tokens 1..20: every frame may emit, so traces pile up */
  es_grammar_arc arcs[20];
  for (int i = 0; i < 20; i++) arcs[i] = (es_grammar_arc){0, 0, i + 1, 0.0f, -1};
  int32_t finals[] = {0};
  es_grammar grammar;
  es_grammar_decoder decoder;
  char why[200];
  CHECK(es_grammar_init(&grammar, arcs, 20, 1, 0, finals, 1, VOCAB, 0, why, sizeof why) == ES_OK);
  CHECK(es_grammar_decoder_init(&decoder, &grammar) == ES_OK);
  static es_grammar_step path[FRAMES];
  for (int round = 0; round < 2; round++) {
    long before = allocator_calls;
    int32_t capacity = decoder.trace_capacity;
    int growths = 0;
    for (int t = 0; t < FRAMES; t++) {
      CHECK(es_grammar_decoder_accept(&decoder, log_probs + (size_t)t * VOCAB, 1) == ES_OK);
      if (decoder.trace_capacity != capacity) {
        capacity = decoder.trace_capacity;
        growths++;
      }
    }
    CHECK(allocator_calls - before == growths);
    if (round == 0) CHECK(growths >= 1);
    size_t length;
    float score, free_score;
    before = allocator_calls;
    CHECK(es_grammar_decoder_result(&decoder, path, FRAMES, &length, &score, &free_score) == ES_OK);
    CHECK(length > 0);
    es_grammar_decoder_reset(&decoder);
    CHECK(allocator_calls == before && decoder.trace_capacity == capacity);
  }
  es_grammar_decoder_free(&decoder);
  es_grammar_free(&grammar);
}

int main(void) {
  es_test_seed(12345);
  for (int i = 0; i < NUM_SAMPLES; i++) samples[i] = 0.3f * (float)sin(i * 0.05);
  for (int t = 0; t < FRAMES; t++) { /* a flat-ish random distribution: many tokens stay plausible */
    double sum = 0.0;
    for (int v = 0; v < VOCAB; v++) sum += exp(log_probs[t * VOCAB + v] = (float)(3.0 * es_test_uniform()));
    for (int v = 0; v < VOCAB; v++) log_probs[t * VOCAB + v] -= (float)log(sum);
  }

  es_frontend_config fbank = es_frontend_config_default();
  check_frontend(fbank);
  es_frontend_config centred = fbank;
  centred.padding = ES_PADDING_REFLECT;
  centred.mel.num_bins = 40;
  centred.dither = 1e-3f;
  centred.cmvn.mode = ES_CMVN_SLIDING;
  check_frontend(centred);
  es_frontend_config mfcc = fbank;
  mfcc.kind = ES_FEATURES_MFCC;
  mfcc.mel.num_bins = 23;
  mfcc.use_energy = 1;
  check_frontend(mfcc);
  es_frontend_config whole = fbank; /* Whisper-style: the utterance clamp runs after finish */
  whole.log_scale = ES_LOG_LOG10;
  whole.output_clamp = ES_OUTPUT_CLAMP_UTTERANCE;
  check_frontend(whole);

  check_vad();
  check_greedy();

  static char names[VOCAB][8];
  const char *tokens[VOCAB];
  for (int v = 0; v < VOCAB; v++) {
    snprintf(names[v], sizeof names[v], v == 0 ? "<b>" : "t%d", v);
    tokens[v] = names[v];
  }
  es_vocab vocab;
  es_vocab_config vocab_config = es_vocab_config_default();
  char why[200];
  CHECK(es_vocab_init(&vocab, tokens, VOCAB, &vocab_config, why, sizeof why) == ES_OK);
  check_beam(&vocab, es_ctc_beam_config_default().beam_width, 0);
  check_beam(&vocab, 200, 0);    /* sorts of more than 128 entries (some qsorts allocate for those) */
  check_beam(&vocab, 16, 150);
  es_vocab_free(&vocab);

  check_grammar();
  ES_TEST_MAIN_END();
}
