/*
 * CTC prefix beam search in log space, streaming, with optional shallow fusion of a word n-gram
 * LM (weight alpha on its natural-log score, bonus beta per word, applied when a word ends) and
 * phrase biasing (es_hotwords).
 *
 *   es_ctc_beam_config cfg = es_ctc_beam_config_default();
 *   es_ctc_beam b;
 *   es_ctc_beam_init(&b, &cfg, &vocab, lm_or_NULL, hotwords_or_NULL, why, sizeof why);
 *   es_ctc_beam_accept(&b, log_probs, num_frames);    // [num_frames x vocab.size], any chunking
 *   es_ctc_beam_finish(&b);                           // ends words, adds </s>, ranks the n-best
 *   es_ctc_beam_hypothesis(&b, 0, tokens, capacity, &length, &score);
 *   es_ctc_beam_free(&b);
 *
 * Each hypothesis is a label sequence (a prefix); its acoustic score is the log of the summed
 * probability of all its alignments over the frames seen, so with a beam wide enough to hold every
 * prefix and no pruning the search is exact. Chunking never changes results: the search works
 * frame by frame. Pruning per frame: only the top_k most likely non-blank tokens, and only those
 * with log-prob >= token_min_log_prob, extend hypotheses; in frames whose blank log-prob exceeds
 * blank_skip_log_prob no hypothesis is extended at all.
 *
 * Ownership: vocab, lm and hotwords are borrowed, read-only, and must outlive the decoder (several
 * decoders may share them across threads). Memory: only accept allocates after init, to double the
 * node pool when compacting a full pool leaves it more than half in use; the pool never shrinks
 * (see edge_speech.h). Thread safety: see es_common.h.
 */
#ifndef EDGE_SPEECH_ES_CTC_BEAM_H
#define EDGE_SPEECH_ES_CTC_BEAM_H

#include "es_common.h"
#include "es_config.h"
#include "es_ctc_greedy.h"
#include "es_hotwords.h"
#include "es_lexicon.h"
#include "es_lm.h"
#include "es_vocab.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct es_ctc_beam_config {
  int beam_width;              /* hypotheses kept after each frame, 1..65536 (default 8) */
  int top_k;                   /* non-blank tokens tried per frame; 0 = all (default 0) */
  float token_min_log_prob;    /* -INFINITY: no threshold (default ln 1e-4) */
  float blank_skip_log_prob;   /* +INFINITY: never skip (default ln 0.999) */
  float lm_weight;             /* alpha, on the LM's natural-log probability, |alpha| <= 1000 (default 0.5) */
  float word_bonus;            /* beta, added per word, |beta| <= 1000 (default 0) */
  float oov_penalty;           /* in [-1000, 0], added per out-of-vocabulary word (default 0): with a lexicon,
                                  a word leaving it (0 forbids such words); else, with an LM, a word
                                  missing from its unigrams */
} es_ctc_beam_config;

/* The defaults above, from es_ctc_beam_config_table() (es_config.h). */
es_ctc_beam_config es_ctc_beam_config_default(void);
es_status es_ctc_beam_config_check(const es_ctc_beam_config *config, char *why, size_t why_size);

typedef struct es_ctc_beam_score {
  float total;      /* the ranking score: acoustic + lm_weight * lm + word_bonus * words + hotword */
  float acoustic;   /* ln of the summed probability of the prefix's alignments */
  float lm;         /* natural-log LM probability of the words (ends included after finish) */
  float hotword;    /* phrase-biasing credit */
  int32_t words;
} es_ctc_beam_score;

typedef struct es_beam_node es_beam_node;
typedef struct es_beam_hyp {
  int32_t node;
  float lp_blank, lp_nonblank;   /* ln probability of the prefix ending in blank / in its last token */
  float ext;                     /* the non-acoustic part of the score */
  float total;
} es_beam_hyp;
typedef struct es_beam_candidate es_beam_candidate;
typedef struct es_beam_rank {
  float total;
  int32_t index;
} es_beam_rank;

typedef struct es_ctc_beam {
  es_ctc_beam_config config;
  const es_vocab *vocab;
  const es_lm *lm;
  const es_hotwords *hotwords;
  const es_lexicon *lexicon;
  int max_candidates;
  es_beam_node *nodes;
  int32_t num_nodes, node_capacity;
  es_beam_hyp *hyps, *next_hyps;
  int num_hyps;
  es_beam_candidate *candidates;
  es_beam_rank *ranks;
  int32_t *slots;                /* hash of candidate keys -> index */
  uint32_t *slot_gen;
  uint32_t generation, hash_mask;
  int32_t *frame_tokens;         /* the tokens tried in the current frame */
  uint32_t *token_stamp;         /* generation of the last frame that tried each token */
  es_beam_rank *token_ranks;
  int32_t *word_ids;             /* scratch: a word's tokens */
  char *word_text;               /* scratch: a word's text */
  int64_t frames_done;
  int finished;
} es_ctc_beam;

es_status es_ctc_beam_init(es_ctc_beam *beam, const es_ctc_beam_config *config, const es_vocab *vocab,
                           const es_lm *lm, const es_hotwords *hotwords, char *why, size_t why_size);
void es_ctc_beam_free(es_ctc_beam *beam);
/* Restricts the output to the lexicon's words (NULL lifts it), or with oov_penalty < 0 charges
 * that penalty for each word that leaves it, as soon as it does; borrowed like the LM. Resets. */
void es_ctc_beam_set_lexicon(es_ctc_beam *beam, const es_lexicon *lexicon);
void es_ctc_beam_reset(es_ctc_beam *beam);
/* ES_ERR_NON_FINITE_INPUT (nothing consumed) for NaN or +Inf; ES_ERR_FINISHED after finish. */
es_status es_ctc_beam_accept(es_ctc_beam *beam, const float *log_probs, size_t num_frames);
/* Ends the input: completes the last word (LM, bonus), scores "</s>", withdraws unfinished
 * hotword credit, and re-ranks. Calling it twice is harmless. */
es_status es_ctc_beam_finish(es_ctc_beam *beam);
/* Hypotheses held now (best first): partial results before finish, the n-best after. */
int es_ctc_beam_num_hypotheses(const es_ctc_beam *beam);
/* Tokens of hypothesis `rank` (0 = best) into out; *length gets its token count even when
 * ES_ERR_BUFFER_TOO_SMALL is returned. score may be NULL. */
es_status es_ctc_beam_hypothesis(const es_ctc_beam *beam, int rank, es_ctc_token *out, size_t capacity,
                                 size_t *length, es_ctc_beam_score *score);

#ifdef __cplusplus
}
#endif
#endif
