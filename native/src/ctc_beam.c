#include "edge_speech/es_ctc_beam.h"

#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge_speech/es_config.h"
#include "es_internal.h"

#define CTX_MAX (ES_LM_MAX_ORDER - 1)
#define WORD_MAX_BYTES 1024
#define LN10 2.302585092994046f
#define ES_BEAM_MAX_WEIGHT 1e3

/* One prefix: a node of the prefix tree. Everything but the acoustic scores is a function of the
 * prefix alone, so it lives here and merged hypotheses agree on it. */
struct es_beam_node {
  int32_t parent, token, first_child, next_sibling;
  int64_t frame;
  float token_log_prob;
  int32_t depth;
  float ext;            /* the non-acoustic score: lm_weight * lm_ln + word_bonus * words + hotwords */
  float lm_ln;          /* natural-log LM score of the completed words */
  float hw_locked;      /* credit of completed hotwords */
  int32_t hw_state;
  int32_t words;        /* completed words */
  int32_t oov_words;    /* completed words missing from the LM */
  int32_t word_bytes;   /* bytes of the word in progress */
  int32_t at_boundary;  /* the last thing fed to the hotwords was a word boundary */
  int32_t lex_state;    /* lexicon trie state of the word in progress */
  int32_t ctx_len;
  int32_t ctx[CTX_MAX];
  int32_t end_cached, end_ctx_len;   /* the LM score of ending the word in progress, cached */
  int32_t end_oov;                   /* ... and whether that word is missing from the LM */
  float end_lm_ln;
  int32_t end_ctx[CTX_MAX];
  int32_t mark;
};

/* A prefix reached in the current frame: only scores; its tree node is built if it survives. */
struct es_beam_candidate {
  int32_t parent, token, node;  /* node: its tree node, or -1 until one is made */
  float lp_blank, lp_nonblank;
  float ext;
  float token_log_prob;
};

static inline float lse(float a, float b) {
  if (a < b) {
    float t = a;
    a = b;
    b = t;
  }
  if (b == -INFINITY) return a;
  return a + log1pf(expf(b - a));
}

#define AT(member) offsetof(es_ctc_beam_config, member)
#define NUMBER(name, def, lo, hi, flags) {#name, ES_FIELD_FLOAT, AT(name), def, lo, hi, flags, NULL}
#define INTEGER(name, def, lo, hi) {#name, ES_FIELD_INT, AT(name), def, lo, hi, 0, NULL}
/* beam_width 8 is what a Recognizer uses for a bundle that names no beam. */
static const es_config_field beam_fields[] = {
    INTEGER(beam_width, 8, 1, 65536),
    INTEGER(top_k, 0, 0, INT_MAX),
    NUMBER(token_min_log_prob, -9.210340371976182, -INFINITY, INFINITY, ES_FIELD_MAX_EXCLUSIVE),   /* ln 1e-4 */
    NUMBER(blank_skip_log_prob, -0.0010005003335835344, -INFINITY, INFINITY, ES_FIELD_MIN_EXCLUSIVE), /* ln 0.999 */
    /* Bounded so that no sum of scores can overflow to +-inf (and +inf + -inf to NaN): 1e3 per
     * word is already far beyond any useful weight. */
    NUMBER(lm_weight, 0.5, -ES_BEAM_MAX_WEIGHT, ES_BEAM_MAX_WEIGHT, 0),
    NUMBER(word_bonus, 0.0, -ES_BEAM_MAX_WEIGHT, ES_BEAM_MAX_WEIGHT, 0),
    NUMBER(oov_penalty, 0.0, -ES_BEAM_MAX_WEIGHT, 0.0, 0),
};
#undef AT
#undef NUMBER
#undef INTEGER

static const es_config_table beam_table = {"beam", beam_fields, (int)(sizeof beam_fields / sizeof beam_fields[0])};

const es_config_table *es_ctc_beam_config_table(void) { return &beam_table; }

es_ctc_beam_config es_ctc_beam_config_default(void) {
  es_ctc_beam_config c;
  memset(&c, 0, sizeof c);
  es_config_set_defaults(&beam_table, &c);
  return c;
}

es_status es_ctc_beam_config_check(const es_ctc_beam_config *c, char *why, size_t why_size) {
  char msg[160];
  if (c == NULL) return ES_ERR_INVALID_ARGUMENT;
  if (c->beam_width < 1 || c->beam_width > (1 << 16))
    snprintf(msg, sizeof msg, "beam_width must be in 1..%d, got %d", 1 << 16, c->beam_width);
  else if (c->top_k < 0)
    snprintf(msg, sizeof msg, "top_k must be >= 0 (0 = all tokens), got %d", c->top_k);
  else if (isnan(c->token_min_log_prob) || c->token_min_log_prob == INFINITY)
    snprintf(msg, sizeof msg, "token_min_log_prob must be a number or -inf");
  else if (isnan(c->blank_skip_log_prob) || c->blank_skip_log_prob == -INFINITY)
    snprintf(msg, sizeof msg, "blank_skip_log_prob must be a number or +inf");
  else if (!(fabsf(c->lm_weight) <= ES_BEAM_MAX_WEIGHT) || !(fabsf(c->word_bonus) <= ES_BEAM_MAX_WEIGHT))
    snprintf(msg, sizeof msg, "lm_weight and word_bonus must be in [-%g, %g], got %g, %g", ES_BEAM_MAX_WEIGHT,
             ES_BEAM_MAX_WEIGHT, c->lm_weight, c->word_bonus);
  else if (!(c->oov_penalty >= -ES_BEAM_MAX_WEIGHT && c->oov_penalty <= 0.0f))
    snprintf(msg, sizeof msg, "oov_penalty must be in [-%g, 0], got %g", ES_BEAM_MAX_WEIGHT, c->oov_penalty);
  else
    return ES_OK;
  es_explain(why, why_size, msg);
  return ES_ERR_INVALID_CONFIG;
}

void es_ctc_beam_free(es_ctc_beam *b) {
  if (b == NULL) return;
  free(b->nodes);
  free(b->hyps);
  free(b->next_hyps);
  free(b->candidates);
  free(b->ranks);
  free(b->slots);
  free(b->slot_gen);
  free(b->frame_tokens);
  free(b->token_stamp);
  free(b->token_ranks);
  free(b->word_ids);
  free(b->word_text);
  memset(b, 0, sizeof(*b));
}

static float node_ext(const es_ctc_beam *b, const es_beam_node *n) {
  float ext = b->config.lm_weight * n->lm_ln + b->config.word_bonus * (float)n->words + n->hw_locked +
              b->config.oov_penalty * (float)n->oov_words;
  if (b->hotwords) ext += es_hotwords_credit(b->hotwords, n->hw_state);
  return ext;
}

void es_ctc_beam_set_lexicon(es_ctc_beam *b, const es_lexicon *lexicon) {
  if (b == NULL || b->nodes == NULL) return;
  b->lexicon = lexicon;
  es_ctc_beam_reset(b);
}

void es_ctc_beam_reset(es_ctc_beam *b) {
  es_beam_node *root = &b->nodes[0];
  memset(root, 0, sizeof(*root));
  root->parent = -1;
  root->token = -1;
  root->first_child = root->next_sibling = -1;
  root->frame = -1;
  root->at_boundary = 1;
  root->lex_state = ES_LEXICON_ROOT;
  root->hw_state = es_hotwords_start(b->hotwords);
  if (b->lm) root->ctx_len = es_lm_begin(b->lm, root->ctx);
  root->ext = node_ext(b, root);
  b->num_nodes = 1;
  b->num_hyps = 1;
  b->hyps[0].node = 0;
  b->hyps[0].lp_blank = 0.0f;
  b->hyps[0].lp_nonblank = -INFINITY;
  b->hyps[0].ext = node_ext(b, root);
  b->hyps[0].total = b->hyps[0].ext;
  b->frames_done = 0;
  b->finished = 0;
}

es_status es_ctc_beam_init(es_ctc_beam *b, const es_ctc_beam_config *c, const es_vocab *vocab, const es_lm *lm,
                           const es_hotwords *hotwords, char *why, size_t why_size) {
  if (b == NULL) return ES_ERR_INVALID_ARGUMENT;
  memset(b, 0, sizeof(*b));
  if (c == NULL || vocab == NULL || vocab->size < 1) return ES_ERR_INVALID_ARGUMENT;
  es_status s = es_ctc_beam_config_check(c, why, why_size);
  if (s != ES_OK) return s;
  b->config = *c;
  b->vocab = vocab;
  b->lm = lm;
  b->hotwords = hotwords && hotwords->num_nodes > 0 ? hotwords : NULL;
  const int V = vocab->size;
  int k = c->top_k > 0 && c->top_k < V - 1 ? c->top_k : V - 1;
  size_t max_cand = (size_t)c->beam_width * (size_t)(k + 1);
  if (max_cand > (1u << 22)) {
    es_explain(why, why_size, "beam_width x tokens per frame is too large; lower beam_width or set top_k");
    return ES_ERR_INVALID_CONFIG;
  }
  b->max_candidates = (int)max_cand;
  size_t hash = 16;
  while (hash < 2 * max_cand) hash *= 2;
  b->hash_mask = (uint32_t)(hash - 1);
  b->node_capacity = 4 * c->beam_width + 64;
  b->nodes = malloc(sizeof(es_beam_node) * (size_t)b->node_capacity);
  b->hyps = malloc(sizeof(es_beam_hyp) * (size_t)c->beam_width);
  b->next_hyps = malloc(sizeof(es_beam_hyp) * (size_t)c->beam_width);
  b->candidates = malloc(sizeof(es_beam_candidate) * max_cand);
  b->ranks = malloc(sizeof(es_beam_rank) * max_cand);
  b->slots = malloc(sizeof(int32_t) * hash);
  b->slot_gen = calloc(hash, sizeof(uint32_t));
  b->frame_tokens = malloc(sizeof(int32_t) * (size_t)V);
  b->token_stamp = calloc((size_t)V, sizeof(uint32_t));
  b->token_ranks = malloc(sizeof(es_beam_rank) * (size_t)V);
  b->word_ids = malloc(sizeof(int32_t) * WORD_MAX_BYTES);
  b->word_text = malloc(WORD_MAX_BYTES + 1);
  if (!b->nodes || !b->hyps || !b->next_hyps || !b->candidates || !b->ranks || !b->slots || !b->slot_gen ||
      !b->frame_tokens || !b->token_stamp || !b->token_ranks || !b->word_ids || !b->word_text) {
    es_ctc_beam_free(b);
    return ES_ERR_OUT_OF_MEMORY;
  }
  es_ctc_beam_reset(b);
  return ES_OK;
}

/* ---- prefix state ------------------------------------------------------------------------ */

/* The LM score of ending node n's word in progress (cached in the node). */
static void end_word(es_ctc_beam *b, es_beam_node *n) {
  if (n->end_cached) return;
  n->end_cached = 1;
  n->end_lm_ln = 0.0f;
  n->end_oov = 0;
  n->end_ctx_len = n->ctx_len;
  memcpy(n->end_ctx, n->ctx, sizeof(n->ctx));
  if (b->lm == NULL) return;
  /* the word's tokens, walking back to its first one */
  int count = 0;
  size_t bytes = 0;
  int too_long = 0;
  for (int32_t i = (int32_t)(n - b->nodes); i > 0; i = b->nodes[i].parent) {
    int32_t tok = b->nodes[i].token;
    uint8_t f = b->vocab->flags[tok];
    if (f & ES_TOKEN_SEPARATOR) break;
    if (count == WORD_MAX_BYTES) {
      too_long = 1;
      break;
    }
    b->word_ids[count++] = tok;
    bytes += (size_t)es_vocab_token_length(b->vocab, tok);
    if (f & ES_TOKEN_WORD_START) break;
  }
  int32_t id = -1;
  if (!too_long && bytes <= WORD_MAX_BYTES) {
    size_t pos = 0;
    for (int i = count - 1; i >= 0; i--) {
      int len = es_vocab_token_length(b->vocab, b->word_ids[i]);
      memcpy(b->word_text + pos, es_vocab_token_text(b->vocab, b->word_ids[i]), (size_t)len);
      pos += (size_t)len;
    }
    id = es_lm_word_id(b->lm, b->word_text, pos);
  }
  int len;
  n->end_oov = id < 0;
  n->end_lm_ln = LN10 * es_lm_score(b->lm, n->ctx, n->ctx_len, id, n->end_ctx, &len);
  n->end_ctx_len = len;
}

/* Whether appending token to p ends p's word in progress. */
static inline int ends_word(const es_ctc_beam *b, const es_beam_node *p, int32_t token) {
  return (b->vocab->flags[token] & ES_TOKEN_WORD_START) && p->word_bytes > 0;
}

/* Feeds token's text (after a space at a word start) to the hotword automaton. */
static void feed_hotwords(const es_ctc_beam *b, const es_beam_node *p, int32_t token, int32_t *state, float *locked,
                          int *at_boundary) {
  const es_vocab *v = b->vocab;
  const int len = es_vocab_token_length(v, token);
  *state = p->hw_state;
  *locked = p->hw_locked;
  *at_boundary = p->at_boundary;
  if (v->flags[token] & ES_TOKEN_WORD_START) {
    if (!*at_boundary) *state = es_hotwords_advance(b->hotwords, *state, " ", 1, locked);
    *at_boundary = 1;
  }
  if (len > 0) {
    *state = es_hotwords_advance(b->hotwords, *state, es_vocab_token_text(v, token), (size_t)len, locked);
    *at_boundary = 0;
  }
}

/* The lexicon state after p + token (ES_LEXICON_DEAD once the word has left the lexicon), and how
 * many words that step takes out of the lexicon (0 or 1): an unfinished lexicon prefix ending,
 * or a word growing past every lexicon word. A word is counted once, when it leaves. */
static int lexicon_step(const es_ctc_beam *b, const es_beam_node *p, int32_t token, int32_t *state_out) {
  const es_vocab *v = b->vocab;
  int32_t state = p->lex_state;
  int left = 0;
  if (v->flags[token] & ES_TOKEN_WORD_START) {
    if (p->word_bytes > 0 && state != ES_LEXICON_DEAD && !es_lexicon_is_word(b->lexicon, state)) left = 1;
    state = ES_LEXICON_ROOT;
  }
  const int len = es_vocab_token_length(v, token);
  if (state != ES_LEXICON_DEAD && len > 0) {
    state = es_lexicon_advance(b->lexicon, state, es_vocab_token_text(v, token), (size_t)len);
    if (state == ES_LEXICON_DEAD) left++;
  }
  *state_out = state;
  return left;
}

/* Words the step p + token counts as out of vocabulary: by the lexicon when there is one (a hard
 * lexicon, oov_penalty 0, forbids them: -1), else by the LM at word ends. */
static int oov_step(es_ctc_beam *b, es_beam_node *p, int32_t token, int32_t *lex_state) {
  if (b->lexicon) {
    int left = lexicon_step(b, p, token, lex_state);
    return left && b->config.oov_penalty == 0.0f ? -1 : left;
  }
  if (b->lm && ends_word(b, p, token)) {
    end_word(b, p);
    return p->end_oov;
  }
  return 0;
}

/* The non-acoustic score of prefix p + token, from p's (cheap: no node is built); -INFINITY
 * when a lexicon rules the prefix out. */
static float extension_ext(es_ctc_beam *b, es_beam_node *p, int32_t token) {
  int32_t lex_state;
  const int oov = oov_step(b, p, token, &lex_state);
  if (oov < 0) return -INFINITY;
  float ext = p->ext;
  if (ends_word(b, p, token)) {
    if (b->lm) {
      end_word(b, p);
      ext += b->config.lm_weight * p->end_lm_ln;
    }
    ext += b->config.word_bonus;
  }
  ext += b->config.oov_penalty * (float)oov;
  if (b->hotwords) {
    int32_t state;
    float locked;
    int at_boundary;
    feed_hotwords(b, p, token, &state, &locked, &at_boundary);
    ext += (locked + es_hotwords_credit(b->hotwords, state)) -
           (p->hw_locked + es_hotwords_credit(b->hotwords, p->hw_state));
  }
  return ext;
}

/* The state of prefix p + token into *out (tree links left unset); ext as computed for ranking. */
static void extend(es_ctc_beam *b, es_beam_node *p, int32_t token, int64_t frame, float lp, float ext,
                   es_beam_node *out) {
  const es_vocab *v = b->vocab;
  const int len = es_vocab_token_length(v, token);
  *out = *p;
  out->token = token;
  out->frame = frame;
  out->token_log_prob = lp;
  out->depth = p->depth + 1;
  out->ext = ext;
  out->end_cached = 0;
  if (v->flags[token] & ES_TOKEN_WORD_START) {
    if (p->word_bytes > 0) {
      end_word(b, p);
      out->lm_ln = p->lm_ln + p->end_lm_ln;
      out->ctx_len = p->end_ctx_len;
      memcpy(out->ctx, p->end_ctx, sizeof(out->ctx));
      out->words = p->words + 1;
    }
    out->word_bytes = len;
  } else {
    out->word_bytes = p->word_bytes + len;
  }
  if (b->hotwords) {
    int at_boundary;
    feed_hotwords(b, p, token, &out->hw_state, &out->hw_locked, &at_boundary);
    out->at_boundary = at_boundary;
  }
  int32_t lex_state = ES_LEXICON_ROOT;
  const int oov = oov_step(b, p, token, &lex_state);
  out->oov_words = p->oov_words + (oov > 0 ? oov : 0);
  out->lex_state = lex_state;
}

/* ---- the node pool ------------------------------------------------------------------------- */

/* Makes room for `needed` new nodes: drops nodes no hypothesis reaches (keeping order, so a
 * parent still precedes its children), and grows the pool when it stays more than half full.
 * 0 on allocation failure. */
static int make_room(es_ctc_beam *b, int needed) {
  if (b->num_nodes + needed <= b->node_capacity) return 1;
  es_beam_node *nodes = b->nodes;
  const int32_t old_count = b->num_nodes;
  for (int32_t i = 0; i < old_count; i++) nodes[i].mark = -1;
  nodes[0].mark = 0;
  for (int h = 0; h < b->num_hyps; h++)
    for (int32_t i = b->hyps[h].node; i >= 0 && nodes[i].mark < 0; i = nodes[i].parent) nodes[i].mark = 0;
  int32_t n = 0;
  for (int32_t i = 0; i < old_count; i++)
    if (nodes[i].mark >= 0) nodes[i].mark = n++;
  for (int32_t i = 0; i < old_count; i++)   /* new parent index, before anything moves */
    if (nodes[i].mark >= 0) nodes[i].first_child = nodes[i].parent >= 0 ? nodes[nodes[i].parent].mark : -1;
  for (int h = 0; h < b->num_hyps; h++) b->hyps[h].node = nodes[b->hyps[h].node].mark;
  for (int32_t i = 0; i < old_count; i++) {
    if (nodes[i].mark < 0) continue;
    es_beam_node moved = nodes[i];
    moved.parent = moved.first_child;
    moved.first_child = moved.next_sibling = -1;
    nodes[moved.mark] = moved;
  }
  for (int32_t i = n - 1; i >= 1; i--) {
    es_beam_node *parent = &nodes[nodes[i].parent];
    nodes[i].next_sibling = parent->first_child;
    parent->first_child = i;
  }
  b->num_nodes = n;
  if (n + needed <= b->node_capacity / 2 + 1 && n + needed <= b->node_capacity) return 1;
  int32_t capacity = b->node_capacity;
  while (capacity < 2 * (n + needed)) capacity *= 2;
  es_beam_node *grown = realloc(b->nodes, sizeof(es_beam_node) * (size_t)capacity);
  if (grown == NULL) return n + needed <= b->node_capacity;
  b->nodes = grown;
  b->node_capacity = capacity;
  return 1;
}

static int32_t find_child(const es_ctc_beam *b, int32_t parent, int32_t token) {
  for (int32_t c = b->nodes[parent].first_child; c >= 0; c = b->nodes[c].next_sibling)
    if (b->nodes[c].token == token) return c;
  return -1;
}

/* ---- the search ------------------------------------------------------------------------------ */

static inline int rank_before(const es_beam_rank *a, const es_beam_rank *b) {
  return a->total > b->total || (a->total == b->total && a->index < b->index);
}

/* Heapsort, best first: in place and allocation-free, which qsort is not everywhere (glibc's
 * mergesort mallocs a buffer for arrays over 1 KiB). rank_before is a strict order: one result. */
static void sift_down(es_beam_rank *a, int root, int n) {
  for (int child = 2 * root + 1; child < n; root = child, child = 2 * root + 1) {
    if (child + 1 < n && rank_before(&a[child], &a[child + 1])) child++; /* the later of the two */
    if (!rank_before(&a[root], &a[child])) return;
    es_beam_rank t = a[root];
    a[root] = a[child];
    a[child] = t;
  }
}

static void sort_ranks(es_beam_rank *a, int n) {
  for (int i = n / 2 - 1; i >= 0; i--) sift_down(a, i, n);
  for (int end = n - 1; end > 0; end--) {
    es_beam_rank t = a[0];
    a[0] = a[end];
    a[end] = t;
    sift_down(a, 0, end);
  }
}

/* Moves the k best of a[0..n) (by total, then index: a strict order) to the front, sorted. */
static void select_top(es_beam_rank *a, int n, int k) {
  if (k < n) {
    int lo = 0, hi = n - 1;
    while (lo < hi) {
      es_beam_rank pivot = a[lo + (hi - lo) / 2];
      int i = lo, j = hi;
      while (i <= j) {
        while (rank_before(&a[i], &pivot)) i++;
        while (rank_before(&pivot, &a[j])) j--;
        if (i <= j) {
          es_beam_rank t = a[i];
          a[i++] = a[j];
          a[j--] = t;
        }
      }
      if (k - 1 <= j) hi = j;
      else if (k - 1 >= i) lo = i;
      else break;
    }
    n = k;
  }
  sort_ranks(a, n);
}

/* The candidate for prefix (parent, token), created on first use. parent -1 is the empty prefix. */
static es_beam_candidate *candidate(es_ctc_beam *b, int *count, int32_t parent, int32_t token, int32_t node) {
  uint64_t key = ((uint64_t)(uint32_t)(parent + 1) << 32) | (uint32_t)(token + 1);
  uint64_t h = key * 0x9E3779B97F4A7C15ull;
  for (uint32_t slot = (uint32_t)(h >> 32) & b->hash_mask;; slot = (slot + 1) & b->hash_mask) {
    if (b->slot_gen[slot] != b->generation) {
      b->slot_gen[slot] = b->generation;
      b->slots[slot] = *count;
      es_beam_candidate *c = &b->candidates[(*count)++];
      c->parent = parent;
      c->token = token;
      c->node = node;
      c->lp_blank = c->lp_nonblank = -INFINITY;
      return c;
    }
    es_beam_candidate *c = &b->candidates[b->slots[slot]];
    if (c->parent == parent && c->token == token) {
      if (node >= 0) c->node = node;
      return c;
    }
  }
}

/* The candidate for prefix (parent, token) if this frame has one, else NULL. */
static es_beam_candidate *find_candidate(es_ctc_beam *b, int32_t parent, int32_t token) {
  uint64_t key = ((uint64_t)(uint32_t)(parent + 1) << 32) | (uint32_t)(token + 1);
  uint64_t h = key * 0x9E3779B97F4A7C15ull;
  for (uint32_t slot = (uint32_t)(h >> 32) & b->hash_mask;; slot = (slot + 1) & b->hash_mask) {
    if (b->slot_gen[slot] != b->generation) return NULL;
    es_beam_candidate *c = &b->candidates[b->slots[slot]];
    if (c->parent == parent && c->token == token) return c;
  }
}

/* The non-blank tokens tried in this frame; returns their count. */
static int frame_tokens(es_ctc_beam *b, const float *row) {
  const int V = b->vocab->size, blank = b->vocab->blank_id;
  const float floor = b->config.token_min_log_prob;
  int n = 0;
  for (int v = 0; v < V; v++)
    if (v != blank && row[v] >= floor && row[v] > -INFINITY) {
      b->token_ranks[n].total = row[v];
      b->token_ranks[n].index = v;
      n++;
    }
  if (b->config.top_k > 0 && n > b->config.top_k) {
    select_top(b->token_ranks, n, b->config.top_k);
    n = b->config.top_k;
  }
  for (int i = 0; i < n; i++) b->frame_tokens[i] = b->token_ranks[i].index;
  return n;
}
/* Orders the hypotheses by total score, best first (insertion sort: stable, and the list is
 * nearly sorted already). */
static void rank_hypotheses(es_ctc_beam *b) {
  for (int h = 1; h < b->num_hyps; h++) {
    es_beam_hyp y = b->hyps[h];
    int j = h;
    while (j > 0 && b->hyps[j - 1].total < y.total) {
      b->hyps[j] = b->hyps[j - 1];
      j--;
    }
    b->hyps[j] = y;
  }
}


static es_status step(es_ctc_beam *b, const float *row) {
  const int blank = b->vocab->blank_id;
  const int64_t frame = b->frames_done;
  const float lp_blank = row[blank];
  es_beam_node *nodes = b->nodes;
  if (lp_blank > b->config.blank_skip_log_prob) {
    /* blank dominates: hypotheses only stay (blank or their last token repeated) */
    for (int h = 0; h < b->num_hyps; h++) {
      es_beam_hyp *y = &b->hyps[h];
      int32_t last = nodes[y->node].token;
      float stay_nb = last >= 0 ? y->lp_nonblank + row[last] : -INFINITY;
      y->lp_blank = lse(y->lp_blank, y->lp_nonblank) + lp_blank;
      y->lp_nonblank = stay_nb;
      y->total = lse(y->lp_blank, y->lp_nonblank) + y->ext;
    }
    rank_hypotheses(b);
    return ES_OK;
  }
  /* room for this frame's new nodes first: compaction renumbers, so never mid-frame */
  if (!make_room(b, b->config.beam_width)) return ES_ERR_OUT_OF_MEMORY;
  nodes = b->nodes;
  const int k = frame_tokens(b, row);
  b->generation++;
  if (b->generation == 0) { /* wrapped: clear the stamps */
    memset(b->slot_gen, 0, sizeof(uint32_t) * ((size_t)b->hash_mask + 1));
    memset(b->token_stamp, 0, sizeof(uint32_t) * (size_t)b->vocab->size);
    b->generation = 1;
  }
  for (int i = 0; i < k; i++) b->token_stamp[b->frame_tokens[i]] = b->generation;
  int count = 0;
  /* every hypothesis stays: a blank, or its last token repeated */
  for (int h = 0; h < b->num_hyps; h++) {
    const es_beam_hyp *y = &b->hyps[h];
    const es_beam_node *n = &nodes[y->node];
    es_beam_candidate *c = candidate(b, &count, n->parent, n->token, y->node);
    c->ext = y->ext;
    c->lp_blank = lse(y->lp_blank, y->lp_nonblank) + lp_blank;
    c->lp_nonblank = n->token >= 0 ? y->lp_nonblank + row[n->token] : -INFINITY;
  }
  /* Scores only grow from here (merges) and candidates only get added, so the beam_width-th best
   * stay is a floor for the final cut: a new prefix scoring below it cannot survive, and it is
   * dropped before it costs an insertion. A prefix already held (a stay) always gets its share. */
  float cutoff = -INFINITY;
  if (count >= b->config.beam_width) {
    for (int i = 0; i < count; i++) {
      b->ranks[i].total = lse(b->candidates[i].lp_blank, b->candidates[i].lp_nonblank) + b->candidates[i].ext;
      b->ranks[i].index = i;
    }
    select_top(b->ranks, count, b->config.beam_width);
    cutoff = b->ranks[b->config.beam_width - 1].total;
  }
  /* An upper bound on what an extension adds to its parent's non-acoustic score: LM log-probs and
   * lexicons only lower it; hotword credit is not bounded here, so with hotwords no hypothesis is
   * skipped as a whole. */
  float best_lp = -INFINITY;
  for (int i = 0; i < k; i++) best_lp = ES_MAX(best_lp, row[b->frame_tokens[i]]);
  const int may_skip = b->hotwords == NULL && (b->lm == NULL || b->config.lm_weight >= 0.0f);
  const float max_gain = ES_MAX(0.0f, b->config.word_bonus);
  for (int h = 0; h < b->num_hyps; h++) {
    const es_beam_hyp *y = &b->hyps[h];
    es_beam_node *n = &nodes[y->node];
    const int32_t last = n->token;
    const float total = lse(y->lp_blank, y->lp_nonblank);
    if (may_skip && total + best_lp + y->ext + max_gain < cutoff) {
      /* no new prefix from this hypothesis can make the cut; it still feeds the prefixes held */
      for (int32_t ch = n->first_child; ch >= 0; ch = nodes[ch].next_sibling) {
        const int32_t tok = nodes[ch].token;
        if (b->token_stamp[tok] != b->generation) continue; /* pruned in this frame */
        es_beam_candidate *c = find_candidate(b, y->node, tok);
        if (c != NULL) c->lp_nonblank = lse(c->lp_nonblank, (tok == last ? y->lp_blank : total) + row[tok]);
      }
      continue;
    }
    for (int i = 0; i < k; i++) {
      const int32_t tok = b->frame_tokens[i];
      const float lp = row[tok];
      const float base = (tok == last ? y->lp_blank : total) + lp;
      if (base == -INFINITY) continue;
      const float ext = extension_ext(b, n, tok);
      if (ext == -INFINITY) continue; /* never a held prefix: those have finite scores */
      es_beam_candidate *c;
      if (base + ext < cutoff) {
        c = find_candidate(b, y->node, tok);
        if (c != NULL) c->lp_nonblank = lse(c->lp_nonblank, base);
        continue;
      }
      const int before = count;
      c = candidate(b, &count, y->node, tok, -1);
      if (count != before) {
        c->ext = ext;
        c->token_log_prob = lp;
        c->lp_nonblank = base;
      } else {
        c->lp_nonblank = lse(c->lp_nonblank, base);
      }
    }
  }
  int kept = 0;
  for (int i = 0; i < count; i++) {
    const es_beam_candidate *c = &b->candidates[i];
    float t = lse(c->lp_blank, c->lp_nonblank);
    if (t == -INFINITY) continue;
    b->ranks[kept].total = t + c->ext;
    b->ranks[kept].index = i;
    kept++;
  }
  select_top(b->ranks, kept, b->config.beam_width);
  if (kept > b->config.beam_width) kept = b->config.beam_width;
  if (kept == 0) { /* every path has probability 0: keep the hypotheses as they are */
    return ES_OK;
  }
  for (int r = 0; r < kept; r++) {
    es_beam_candidate *c = &b->candidates[b->ranks[r].index];
    int32_t id = c->node;
    if (id < 0) id = find_child(b, c->parent, c->token); /* a prefix held before, dropped, reached again */
    if (id < 0) {
      id = b->num_nodes++;
      es_beam_node *node = &nodes[id];
      extend(b, &nodes[c->parent], c->token, frame, c->token_log_prob, c->ext, node);
      node->parent = c->parent;
      node->first_child = -1;
      node->next_sibling = nodes[c->parent].first_child;
      node->mark = 0;
      nodes[c->parent].first_child = id;
    }
    b->next_hyps[r].node = id;
    b->next_hyps[r].lp_blank = c->lp_blank;
    b->next_hyps[r].lp_nonblank = c->lp_nonblank;
    b->next_hyps[r].ext = c->ext;
    b->next_hyps[r].total = b->ranks[r].total;
  }
  es_beam_hyp *swap = b->hyps;
  b->hyps = b->next_hyps;
  b->next_hyps = swap;
  b->num_hyps = kept;
  return ES_OK;
}

es_status es_ctc_beam_accept(es_ctc_beam *b, const float *log_probs, size_t num_frames) {
  if (b == NULL || (num_frames > 0 && log_probs == NULL)) return ES_ERR_INVALID_ARGUMENT;
  if (b->nodes == NULL) return ES_ERR_STATE;
  if (b->finished) return ES_ERR_FINISHED;
  const size_t V = (size_t)b->vocab->size;
  if (!es_log_probs_valid(log_probs, num_frames * V)) return ES_ERR_NON_FINITE_INPUT;
  for (size_t t = 0; t < num_frames; t++) {
    es_status s = step(b, log_probs + t * V);
    if (s != ES_OK) return s;
    b->frames_done++;
  }
  return ES_OK;
}

/* The final extension score of a hypothesis: its last word ended, "</s>", no partial credit. */
static float final_ext(es_ctc_beam *b, es_beam_node *n, float *lm_out, int32_t *words_out) {
  float lm = n->lm_ln;
  int32_t words = n->words, oov = n->oov_words;
  int32_t ctx[CTX_MAX];
  int ctx_len = n->ctx_len;
  memcpy(ctx, n->ctx, sizeof ctx);
  if (n->word_bytes > 0) {
    end_word(b, n);
    lm += n->end_lm_ln;
    ctx_len = n->end_ctx_len;
    memcpy(ctx, n->end_ctx, sizeof ctx);
    words++;
    if (!b->lexicon) oov += n->end_oov;
  }
  if (b->lm && b->lm->eos >= 0) {
    int len;
    lm += LN10 * es_lm_score(b->lm, ctx, ctx_len, b->lm->eos, ctx, &len);
  }
  *lm_out = lm;
  *words_out = words;
  if (b->lexicon && n->word_bytes > 0 && n->lex_state != ES_LEXICON_DEAD && !es_lexicon_is_word(b->lexicon, n->lex_state)) {
    if (b->config.oov_penalty == 0.0f) return -INFINITY; /* a hard lexicon: the last word must be in it */
    oov++;
  }
  return b->config.lm_weight * lm + b->config.word_bonus * (float)words + n->hw_locked +
         b->config.oov_penalty * (float)oov;
}

es_status es_ctc_beam_finish(es_ctc_beam *b) {
  if (b == NULL) return ES_ERR_INVALID_ARGUMENT;
  if (b->nodes == NULL) return ES_ERR_STATE;
  if (b->finished) return ES_OK;
  for (int h = 0; h < b->num_hyps; h++) {
    es_beam_hyp *y = &b->hyps[h];
    float lm;
    int32_t words;
    y->ext = final_ext(b, &b->nodes[y->node], &lm, &words);
    y->total = lse(y->lp_blank, y->lp_nonblank) + y->ext;
  }
  rank_hypotheses(b);
  b->finished = 1;
  return ES_OK;
}

int es_ctc_beam_num_hypotheses(const es_ctc_beam *b) { return b && b->nodes ? b->num_hyps : 0; }

es_status es_ctc_beam_hypothesis(const es_ctc_beam *b, int rank, es_ctc_token *out, size_t capacity,
                                 size_t *length, es_ctc_beam_score *score) {
  if (b == NULL || length == NULL || (out == NULL && capacity > 0)) return ES_ERR_INVALID_ARGUMENT;
  *length = 0;
  if (b->nodes == NULL) return ES_ERR_STATE;
  if (rank < 0 || rank >= b->num_hyps) return ES_ERR_INVALID_ARGUMENT;
  const es_beam_hyp *y = &b->hyps[rank];
  const es_beam_node *n = &b->nodes[y->node];
  const size_t depth = (size_t)n->depth;
  *length = depth;
  if (score) {
    score->total = y->total;
    score->acoustic = lse(y->lp_blank, y->lp_nonblank);
    score->words = n->words;
    score->lm = n->lm_ln;
    score->hotword = n->hw_locked + (b->hotwords ? es_hotwords_credit(b->hotwords, n->hw_state) : 0.0f);
    if (b->finished) {
      /* recompute the final parts without touching the (cached) state */
      float lm = n->lm_ln;
      int32_t words = n->words;
      if (n->word_bytes > 0) {
        lm += n->end_lm_ln;
        words++;
      }
      if (b->lm && b->lm->eos >= 0) {
        int32_t ctx[CTX_MAX];
        int len;
        lm += LN10 * es_lm_score(b->lm, n->word_bytes > 0 ? n->end_ctx : n->ctx,
                                 n->word_bytes > 0 ? n->end_ctx_len : n->ctx_len, b->lm->eos, ctx, &len);
      }
      score->lm = lm;
      score->words = words;
      score->hotword = n->hw_locked;
    }
  }
  if (capacity < depth) return ES_ERR_BUFFER_TOO_SMALL;
  size_t i = depth;
  for (int32_t id = y->node; id > 0; id = b->nodes[id].parent) {
    const es_beam_node *m = &b->nodes[id];
    i--;
    out[i].id = m->token;
    out[i].frame = m->frame;
    out[i].log_prob = m->token_log_prob;
  }
  return ES_OK;
}
