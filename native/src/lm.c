#include "edge_speech/es_lm.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t hash_bytes(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= 1099511628211ull;
  }
  return h;
}

void es_lm_free(es_lm *lm) {
  if (lm == NULL) return;
  free(lm->word_text);
  free(lm->word_offset);
  free(lm->hash);
  for (int i = 0; i < ES_LM_MAX_ORDER; i++) {
    free(lm->table[i].ids);
    free(lm->table[i].log10_prob);
    free(lm->table[i].log10_backoff);
  }
  memset(lm, 0, sizeof(*lm));
}

int32_t es_lm_word_id(const es_lm *lm, const char *word, size_t length) {
  if (lm == NULL || lm->hash == NULL) return -1;
  for (size_t slot = hash_bytes(word, length) & lm->hash_mask;; slot = (slot + 1) & lm->hash_mask) {
    int32_t id = lm->hash[slot];
    if (id < 0) return -1;
    const char *w = lm->word_text + lm->word_offset[id];
    if (strncmp(w, word, length) == 0 && w[length] == '\0') return id;
  }
}

/* ---- parsing ---------------------------------------------------------------------------------- */

typedef struct {
  char *why;
  size_t why_size;
  size_t line;
} parser;

static es_status fail(parser *p, const char *fmt, ...) {
  char msg[256], full[300];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (p->line > 0)
    snprintf(full, sizeof full, "line %zu: %s", p->line, msg);
  else
    snprintf(full, sizeof full, "%s", msg);
  es_explain(p->why, p->why_size, full);
  return ES_ERR_PARSE;
}

static int parse_float(const char *s, float *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || *end != '\0' || !(v >= -ES_LM_MAX_ABS_LOG10 && v <= ES_LM_MAX_ABS_LOG10)) return 0;
  *out = (float)v;
  return 1;
}

static int parse_count(const char *s, size_t *out) {
  if (*s < '0' || *s > '9') return 0;
  size_t v = 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9' || v > 100000000) return 0;
    v = v * 10 + (size_t)(*s - '0');
  }
  *out = v;
  return 1;
}

/* Splits a line in place on spaces and tabs; returns the number of fields (at most max). */
static int split(char *line, char **fields, int max) {
  int n = 0;
  char *s = line;
  for (;;) {
    while (*s == ' ' || *s == '\t') s++;
    if (*s == '\0') return n;
    if (n == max) return max + 1;
    fields[n++] = s;
    while (*s && *s != ' ' && *s != '\t') s++;
    if (*s) *s++ = '\0';
  }
}

static int compare_ids(const int32_t *a, const int32_t *b, int n) {
  for (int i = 0; i < n; i++)
    if (a[i] != b[i]) return a[i] < b[i] ? -1 : 1;
  return 0;
}

/* Bottom-up merge sort of an index permutation by n-gram ids (stable, no global state). */
static int sort_table(es_lm_order_table *t, int order) {
  size_t n = t->count;
  if (n < 2) return 1;
  size_t *a = malloc(sizeof(size_t) * n), *b = malloc(sizeof(size_t) * n);
  int32_t *ids = malloc(sizeof(int32_t) * n * (size_t)order);
  float *lp = malloc(sizeof(float) * n), *bo = malloc(sizeof(float) * n);
  if (!a || !b || !ids || !lp || !bo) {
    free(a), free(b), free(ids), free(lp), free(bo);
    return 0;
  }
  for (size_t i = 0; i < n; i++) a[i] = i;
  for (size_t width = 1; width < n; width *= 2) {
    for (size_t lo = 0; lo < n; lo += 2 * width) {
      size_t mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
      size_t i = lo, j = mid, k = lo;
      while (i < mid && j < hi)
        b[k++] = compare_ids(t->ids + a[j] * (size_t)order, t->ids + a[i] * (size_t)order, order) < 0 ? a[j++] : a[i++];
      while (i < mid) b[k++] = a[i++];
      while (j < hi) b[k++] = a[j++];
    }
    size_t *tmp = a;
    a = b;
    b = tmp;
  }
  for (size_t i = 0; i < n; i++) {
    memcpy(ids + i * (size_t)order, t->ids + a[i] * (size_t)order, sizeof(int32_t) * (size_t)order);
    lp[i] = t->log10_prob[a[i]];
    bo[i] = t->log10_backoff[a[i]];
  }
  free(t->ids), free(t->log10_prob), free(t->log10_backoff), free(a), free(b);
  t->ids = ids;
  t->log10_prob = lp;
  t->log10_backoff = bo;
  return 1;
}

static es_status parse(es_lm *lm, char *text, size_t length, parser *p) {
  enum { HEADER, DATA, GRAMS, END } where = HEADER;
  size_t declared[ES_LM_MAX_ORDER + 1] = {0};
  size_t filled[ES_LM_MAX_ORDER + 1] = {0};
  int order = 0, section = 0;
  size_t section_line = 0, text_used = 0;
  char *fields[ES_LM_MAX_ORDER + 3];
  char *pos = text, *stop = text + length;
  while (pos < stop && where != END) {
    char *line = pos;
    char *nl = memchr(pos, '\n', (size_t)(stop - pos));
    char *line_end = nl ? nl : stop;
    pos = nl ? nl + 1 : stop;
    *line_end = '\0';
    if (line_end > line && line_end[-1] == '\r') line_end[-1] = '\0';
    p->line++;
    int nf = split(line, fields, ES_LM_MAX_ORDER + 2);
    if (where == HEADER) {
      if (nf == 1 && strcmp(fields[0], "\\data\\") == 0) where = DATA;
      continue;
    }
    if (nf == 0) continue;
    if (fields[0][0] == '\\') {
      if (nf != 1) return fail(p, "unexpected text after section header '%s'", fields[0]);
      if (section > 0 && filled[section] != declared[section])
        return fail(p, "the %d-grams section has %zu entries; \\data\\ declared %zu", section, filled[section],
                    declared[section]);
      if (strcmp(fields[0], "\\end\\") == 0) {
        if (where == DATA) return fail(p, "\\end\\ before any n-gram section");
        where = END;
        break;
      }
      int k = 0;
      char tail[16];
      if (sscanf(fields[0], "\\%d-grams%15s", &k, tail) != 2 || strcmp(tail, ":") != 0)
        return fail(p, "unknown section header '%s'", fields[0]);
      if (k != section + 1) return fail(p, "expected the \\%d-grams: section, found '%s'", section + 1, fields[0]);
      if (k > order) return fail(p, "section \\%d-grams: is not declared in \\data\\", k);
      if (where == DATA) {
        /* Every k-gram line takes at least 2 + 2k bytes ("0 w\n"): a header declaring more than
         * the text can hold lies (or the file is cut short); refuse it before allocating. */
        unsigned long long needed = 0; /* 64-bit on 32-bit boards too */
        for (int i = 1; i <= order; i++) needed += (unsigned long long)declared[i] * (unsigned long long)(2 + 2 * i);
        if (needed > (unsigned long long)length)
          return fail(p, "\\data\\ declares n-gram counts whose lines need at least %llu bytes, but the text has %zu: "
                         "the header's counts are wrong or the file is truncated",
                      needed, length);
        /* All counts are known now: allocate every table. */
        for (int i = 1; i <= order; i++) {
          es_lm_order_table *t = &lm->table[i - 1];
          size_t c = declared[i] ? declared[i] : 1;
          t->ids = malloc(sizeof(int32_t) * c * (size_t)i);
          t->log10_prob = malloc(sizeof(float) * c);
          t->log10_backoff = malloc(sizeof(float) * c);
          if (!t->ids || !t->log10_prob || !t->log10_backoff) return ES_ERR_OUT_OF_MEMORY;
        }
        size_t words = declared[1];
        size_t hash_size = 16;
        while (hash_size < 2 * words) hash_size *= 2;
        lm->hash = malloc(sizeof(int32_t) * hash_size);
        lm->word_offset = malloc(sizeof(size_t) * (words ? words : 1));
        lm->word_text = malloc(length + 1);
        if (!lm->hash || !lm->word_offset || !lm->word_text) return ES_ERR_OUT_OF_MEMORY;
        memset(lm->hash, 0xff, sizeof(int32_t) * hash_size);
        lm->hash_mask = hash_size - 1;
      }
      where = GRAMS;
      section = k;
      section_line = p->line;
      continue;
    }
    if (where == DATA) {
      int k = 0;
      size_t count = 0;
      char *eq = nf == 2 && strcmp(fields[0], "ngram") == 0 ? strchr(fields[1], '=') : NULL;
      if (eq == NULL) return fail(p, "expected 'ngram N=count' in \\data\\");
      *eq = '\0';
      size_t kk = 0;
      if (!parse_count(fields[1], &kk) || !parse_count(eq + 1, &count) || kk < 1)
        return fail(p, "expected 'ngram N=count' in \\data\\");
      if (kk > ES_LM_MAX_ORDER) return fail(p, "n-gram order %zu is above the supported %d", kk, ES_LM_MAX_ORDER);
      k = (int)kk;
      if (k != order + 1) return fail(p, "expected 'ngram %d=count', found ngram %d (orders must be 1, 2, ...)", order + 1, k);
      if (count == 0 && k == 1) return fail(p, "ngram 1 has a count of 0: the model has no words");
      if (count > INT32_MAX / ES_LM_MAX_ORDER) return fail(p, "ngram %d count is too large", k);
      declared[k] = count;
      order = k;
      continue;
    }
    /* An n-gram line: log10p w1 .. wk [backoff] */
    const int k = section;
    if (nf < k + 1 || nf > k + 2)
      return fail(p, "a %d-gram line needs a log10 probability, %d word%s and an optional backoff", k, k,
                  k == 1 ? "" : "s");
    if (filled[k] >= declared[k]) return fail(p, "more %d-grams than the %zu declared in \\data\\", k, declared[k]);
    es_lm_order_table *t = &lm->table[k - 1];
    size_t e = filled[k];
    if (!parse_float(fields[0], &t->log10_prob[e])) return fail(p, "bad log10 probability '%s'", fields[0]);
    t->log10_backoff[e] = 0.0f;
    if (nf == k + 2 && !parse_float(fields[k + 1], &t->log10_backoff[e]))
      return fail(p, "bad backoff weight '%s'", fields[k + 1]);
    if (t->log10_prob[e] > 0.0f) return fail(p, "log10 probability %s is above 0", fields[0]);
    for (int i = 0; i < k; i++) {
      const char *w = fields[1 + i];
      size_t wl = strlen(w);
      int32_t id = es_lm_word_id(lm, w, wl);
      if (k == 1) {
        if (id >= 0) return fail(p, "duplicate unigram '%s'", w);
        id = lm->num_words++;
        lm->word_offset[id] = text_used;
        memcpy(lm->word_text + text_used, w, wl + 1);
        text_used += wl + 1;
        size_t slot = hash_bytes(w, wl) & lm->hash_mask;
        while (lm->hash[slot] >= 0) slot = (slot + 1) & lm->hash_mask;
        lm->hash[slot] = id;
      } else if (id < 0) {
        return fail(p, "word '%s' of a %d-gram is not among the unigrams", w, k);
      }
      t->ids[e * (size_t)k + (size_t)i] = id;
    }
    filled[k]++;
  }
  (void)section_line;
  if (where == HEADER) return fail(p, "no \\data\\ section: not an ARPA file");
  if (where == DATA) return fail(p, "the file ends inside \\data\\ (no n-gram sections)");
  if (where != END) return fail(p, "the file ends before \\end\\ (truncated?)");
  if (section != order) return fail(p, "\\data\\ declares %d-grams but the file has sections up to %d", order, section);
  lm->order = order;
  for (int k = 1; k <= order; k++) {
    es_lm_order_table *t = &lm->table[k - 1];
    t->count = filled[k];
    if (k > 1) {
      if (!sort_table(t, k)) return ES_ERR_OUT_OF_MEMORY;
      for (size_t i = 1; i < t->count; i++)
        if (compare_ids(t->ids + (i - 1) * (size_t)k, t->ids + i * (size_t)k, k) == 0) {
          p->line = 0;
          return fail(p, "duplicate %d-gram starting with '%s'", k,
                      lm->word_text + lm->word_offset[t->ids[i * (size_t)k]]);
        }
    }
  }
  char *shrunk = realloc(lm->word_text, text_used ? text_used : 1);
  if (shrunk) lm->word_text = shrunk;
  lm->bos = es_lm_word_id(lm, "<s>", 3);
  lm->eos = es_lm_word_id(lm, "</s>", 4);
  lm->unk = es_lm_word_id(lm, "<unk>", 5);
  return ES_OK;
}

es_status es_lm_init_arpa(es_lm *lm, const char *text, size_t length, char *why, size_t why_size) {
  if (lm == NULL) return ES_ERR_INVALID_ARGUMENT;
  memset(lm, 0, sizeof(*lm));
  lm->bos = lm->eos = lm->unk = -1;
  if (text == NULL && length > 0) return ES_ERR_INVALID_ARGUMENT;
  char *copy = malloc(length + 1);
  if (copy == NULL) return ES_ERR_OUT_OF_MEMORY;
  if (length) memcpy(copy, text, length);
  copy[length] = '\0';
  parser p = {why, why_size, 0};
  es_status s = parse(lm, copy, length, &p);
  free(copy);
  if (s != ES_OK) {
    if (s == ES_ERR_OUT_OF_MEMORY) es_explain(why, why_size, "out of memory while reading the ARPA file");
    es_lm_free(lm);
    lm->bos = lm->eos = lm->unk = -1;
  }
  return s;
}

/* ---- scoring ------------------------------------------------------------------------------- */

int es_lm_lookup(const es_lm *lm, const int32_t *ids, int n, float *log10_prob, float *log10_backoff) {
  if (n < 1 || n > lm->order) return 0;
  const es_lm_order_table *t = &lm->table[n - 1];
  if (n == 1) {
    if (ids[0] < 0 || ids[0] >= lm->num_words) return 0;
    /* unigrams are stored in id order */
    if (log10_prob) *log10_prob = t->log10_prob[ids[0]];
    if (log10_backoff) *log10_backoff = t->log10_backoff[ids[0]];
    return 1;
  }
  size_t lo = 0, hi = t->count;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = compare_ids(t->ids + mid * (size_t)n, ids, n);
    if (c == 0) {
      if (log10_prob) *log10_prob = t->log10_prob[mid];
      if (log10_backoff) *log10_backoff = t->log10_backoff[mid];
      return 1;
    }
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return 0;
}

int es_lm_begin(const es_lm *lm, int32_t *ctx) {
  if (lm->bos < 0) return 0;
  ctx[0] = lm->bos;
  return 1;
}

float es_lm_score(const es_lm *lm, const int32_t *ctx, int ctx_len, int32_t word, int32_t *new_ctx, int *new_len) {
  if (word < 0) word = lm->unk;
  if (word < 0) {
    *new_len = 0;
    return ES_LM_OOV_LOG10;
  }
  int32_t gram[ES_LM_MAX_ORDER];
  int k = ctx_len < lm->order - 1 ? ctx_len : lm->order - 1;
  if (k < 0) k = 0;
  const int32_t *h = ctx + (ctx_len - k);
  float backoff = 0.0f, result = 0.0f;
  for (int j = 0; j <= k; j++) {
    int n = k - j + 1; /* context h[j..k-1] plus the word */
    memcpy(gram, h + j, sizeof(int32_t) * (size_t)(n - 1));
    gram[n - 1] = word;
    float lp, bo;
    if (es_lm_lookup(lm, gram, n, &lp, NULL)) {
      result = backoff + lp;
      break;
    }
    if (es_lm_lookup(lm, gram, n - 1, NULL, &bo)) backoff += bo;
  }
  /* next context: the last order-1 words */
  int keep = lm->order - 1;
  int32_t next[ES_LM_MAX_ORDER];
  int m = 0;
  for (int i = 0; i < k; i++) next[m++] = h[i];
  next[m++] = word;
  int start = m > keep ? m - keep : 0;
  for (int i = start; i < m; i++) new_ctx[i - start] = next[i];
  *new_len = m - start;
  return result;
}
