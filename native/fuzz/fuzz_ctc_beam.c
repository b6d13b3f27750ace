/* The CTC prefix beam search (and the greedy decoder beside it) over fuzzed log-probs, finite and
 * not, in fuzzed chunks, with a config decoded from the input through the config table, and an
 * optional LM, hotword list (fuzzed boosts) and lexicon. Init either succeeds or refuses with a
 * reason; accept consumes everything or, for NaN/+Inf, nothing; hypotheses hold only real tokens
 * and scores that are never NaN.
 *
 * Input layout: vocabulary choice, blank, one value per config field, extras flags and boosts,
 * then frames to the end, each preceded by a control byte (chunk end, hypotheses, reset, finish). */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "edge_speech/es_ctc_beam.h"
#include "fuzz_input.h"

#define MAX_FRAMES 96
#define MAX_BEAM 64

static const char *const CHAR_TOKENS[] = {"-", "|", "a", "b", "c", "'", " ", "ab"};
static const char *const PIECE_TOKENS[] = {"<blk>", "\xe2\x96\x81" "a", "\xe2\x96\x81" "b", "c", "\xe2\x96\x81", "ab"};
static const char *const BLANK_ONLY[] = {"<blank>"};
static const char *const HOTWORDS[] = {"a b", "ab", "c  a ", "b"};
static const char *const LEXICON[] = {"a", "ab", "ca", ""};
static const char ARPA[] =
    "\\data\\\nngram 1=6\nngram 2=3\n\n\\1-grams:\n-1.0 <unk>\n-99 <s> -0.5\n-0.7 </s>\n-0.6 a -0.2\n"
    "-0.8 b -0.3\n-1.1 ab\n\n\\2-grams:\n-0.3 <s> a\n-0.4 a b\n-0.2 b </s>\n\n\\end\\\n";

static es_lm lm;
static int lm_ready;

static void check_hypotheses(const es_ctc_beam *b, const es_vocab *vocab, size_t capacity) {
  es_ctc_token tokens[MAX_FRAMES + 1];
  const int n = es_ctc_beam_num_hypotheses(b);
  FUZZ_REQUIRE(n >= 0 && n <= b->config.beam_width);
  for (int rank = 0; rank < n; rank++) {
    size_t length = 0;
    es_ctc_beam_score score;
    const es_status s = es_ctc_beam_hypothesis(b, rank, tokens, capacity, &length, &score);
    FUZZ_REQUIRE(s == ES_OK || s == ES_ERR_BUFFER_TOO_SMALL);
    FUZZ_REQUIRE(length <= (size_t)b->frames_done);
    FUZZ_REQUIRE(!isnan(score.total) && !isnan(score.acoustic) && !isnan(score.lm));
    if (s != ES_OK) continue;
    for (size_t i = 0; i < length; i++) {
      FUZZ_REQUIRE(tokens[i].id >= 0 && tokens[i].id < vocab->size && tokens[i].id != vocab->blank_id);
      FUZZ_REQUIRE(tokens[i].frame >= 0 && tokens[i].frame < b->frames_done);
    }
  }
  FUZZ_REQUIRE(es_ctc_beam_hypothesis(b, n, tokens, capacity, &(size_t){0}, NULL) != ES_OK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_input in = {data, size};
  if (!lm_ready) {
    FUZZ_REQUIRE(es_lm_init_arpa(&lm, ARPA, sizeof ARPA - 1, NULL, 0) == ES_OK);
    lm_ready = 1;
  }
  const char *const *tokens = CHAR_TOKENS;
  int count = (int)(sizeof CHAR_TOKENS / sizeof CHAR_TOKENS[0]);
  const uint8_t which = take_u8(&in);
  if (which % 3 == 1) {
    tokens = PIECE_TOKENS;
    count = (int)(sizeof PIECE_TOKENS / sizeof PIECE_TOKENS[0]);
  } else if (which % 3 == 2 && which > 128) {
    tokens = BLANK_ONLY;
    count = 1;
  }
  es_vocab_config vocab_config = es_vocab_config_default();
  vocab_config.blank_id = take_u8(&in) % count;
  vocab_config.kind = (es_vocab_kind)(take_u8(&in) % 3);
  es_vocab vocab;
  FUZZ_REQUIRE(es_vocab_init(&vocab, tokens, count, &vocab_config, NULL, 0) == ES_OK);

  const es_config_table *table = es_ctc_beam_config_table();
  es_ctc_beam_config config = es_ctc_beam_config_default();
  for (int i = 0; i < table->num_fields; i++)
    set_field(&table->fields[i], &config, take_field_value(&in, &table->fields[i]));
  const uint8_t extras = take_u8(&in);
  float boosts[sizeof HOTWORDS / sizeof HOTWORDS[0]];
  for (size_t i = 0; i < sizeof boosts / sizeof boosts[0]; i++) {
    const uint8_t b = take_u8(&in);
    boosts[i] = b == 255 ? take_raw_float(&in) : (float)(b + 1) / 32.0f;
  }

  es_hotwords hotwords;
  memset(&hotwords, 0, sizeof hotwords);
  es_lexicon lexicon;
  memset(&lexicon, 0, sizeof lexicon);
  es_ctc_beam beam;
  memset(&beam, 0, sizeof beam);
  char why[200];
  why[0] = '\0';
  if (extras & 2) {
    const es_status s = es_hotwords_init(&hotwords, HOTWORDS, boosts, 1 + (extras >> 4) % 4, why, sizeof why);
    if (s != ES_OK) {
      FUZZ_REQUIRE(s == ES_ERR_INVALID_CONFIG && why[0] != '\0');
      goto done;
    }
  }
  es_status s = es_ctc_beam_config_check(&config, why, sizeof why);
  if (s != ES_OK) {
    FUZZ_REQUIRE(s == ES_ERR_INVALID_CONFIG && why[0] != '\0');
    FUZZ_REQUIRE(es_ctc_beam_init(&beam, &config, &vocab, NULL, NULL, NULL, 0) == ES_ERR_INVALID_CONFIG);
    goto done;
  }
  if (config.beam_width > MAX_BEAM) goto done; /* valid, but the pools scale with it: keep runs fast */
  s = es_ctc_beam_init(&beam, &config, &vocab, extras & 1 ? &lm : NULL, extras & 2 ? &hotwords : NULL, why,
                       sizeof why);
  FUZZ_REQUIRE(s == ES_OK);
  if (extras & 4) {
    FUZZ_REQUIRE(es_lexicon_init(&lexicon, LEXICON, 4) == ES_OK);
    es_ctc_beam_set_lexicon(&beam, &lexicon);
  }

  es_ctc_greedy greedy;
  FUZZ_REQUIRE(es_ctc_greedy_init(&greedy, vocab.size, vocab.blank_id) == ES_OK);
  float frames[MAX_FRAMES * 8];
  es_ctc_token greedy_out[MAX_FRAMES];
  size_t pending = 0;
  for (int t = 0; t < MAX_FRAMES && in.size > 0; t++) {
    const uint8_t control = take_u8(&in);
    for (int v = 0; v < vocab.size; v++) frames[pending * (size_t)vocab.size + (size_t)v] = take_log_prob(&in);
    pending++;
    if (control & 1) {
      const int64_t before = beam.frames_done;
      s = es_ctc_beam_accept(&beam, frames, pending);
      FUZZ_REQUIRE(s == ES_OK || s == ES_ERR_NON_FINITE_INPUT || (s == ES_ERR_FINISHED && beam.finished));
      FUZZ_REQUIRE(beam.frames_done == before + (s == ES_OK ? (int64_t)pending : 0));
      size_t written = 0;
      s = es_ctc_greedy_accept(&greedy, frames, pending, greedy_out, pending, &written);
      FUZZ_REQUIRE(s == ES_OK || s == ES_ERR_NON_FINITE_INPUT);
      FUZZ_REQUIRE(written <= pending);
      for (size_t i = 0; i < written; i++) FUZZ_REQUIRE(greedy_out[i].id >= 0 && greedy_out[i].id < vocab.size);
      pending = 0;
    }
    if (control & 2) check_hypotheses(&beam, &vocab, control >> 4);
    if ((control & 0x0C) == 0x04) FUZZ_REQUIRE(es_ctc_beam_finish(&beam) == ES_OK);
    if ((control & 0x0C) == 0x0C) es_ctc_beam_reset(&beam);
  }
  if (pending > 0) (void)es_ctc_beam_accept(&beam, frames, pending);
  FUZZ_REQUIRE(es_ctc_beam_finish(&beam) == ES_OK);
  FUZZ_REQUIRE(es_ctc_beam_finish(&beam) == ES_OK);
  check_hypotheses(&beam, &vocab, MAX_FRAMES + 1);
  es_ctc_greedy_free(&greedy);
done:
  es_ctc_beam_free(&beam);
  es_ctc_beam_free(&beam);
  es_lexicon_free(&lexicon);
  es_hotwords_free(&hotwords);
  es_vocab_free(&vocab);
  return 0;
}
