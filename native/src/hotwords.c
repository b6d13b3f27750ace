#include "edge_speech/es_hotwords.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void es_hotwords_free(es_hotwords *hw) {
  if (hw == NULL) return;
  free(hw->nodes);
  memset(hw, 0, sizeof(*hw));
}

static int32_t child(const es_hotwords *hw, int32_t node, uint8_t byte) {
  for (int32_t c = hw->nodes[node].first_child; c >= 0; c = hw->nodes[c].next_sibling)
    if (hw->nodes[c].byte == byte) return c;
  return -1;
}

/* Normalised phrase: a leading space (the word boundary), single inner spaces, no trailing one. */
static size_t normalise(const char *s, char *out) {
  size_t n = 0;
  int space = 1;
  for (; *s; s++) {
    if (*s == ' ' || *s == '\t' || *s == '\n') {
      space = 1;
      continue;
    }
    if (space) out[n++] = ' ';
    space = 0;
    out[n++] = *s;
  }
  return n;
}

es_status es_hotwords_init(es_hotwords *hw, const char *const *phrases, const float *boosts, int count, char *why,
                           size_t why_size) {
  char msg[160];
  if (hw == NULL || count < 0 || (count > 0 && (phrases == NULL || boosts == NULL))) return ES_ERR_INVALID_ARGUMENT;
  memset(hw, 0, sizeof(*hw));
  size_t total = 1, longest = 0;
  for (int i = 0; i < count; i++) {
    if (phrases[i] == NULL) return ES_ERR_INVALID_ARGUMENT;
    size_t n = strlen(phrases[i]);
    total += n + 1;
    if (n > longest) longest = n;
    if (!(boosts[i] > 0.0f && boosts[i] <= ES_HOTWORDS_MAX_BOOST)) {
      snprintf(msg, sizeof msg, "hotword %d has boost %g; boosts must be in (0, %g]", i, (double)boosts[i],
               (double)ES_HOTWORDS_MAX_BOOST);
      es_explain(why, why_size, msg);
      return ES_ERR_INVALID_CONFIG;
    }
  }
  if (total > INT32_MAX / 2) return ES_ERR_INVALID_CONFIG;
  char *buf = malloc(2 * longest + 2);
  hw->nodes = malloc(sizeof(es_hotword_node) * total);
  int32_t *queue = malloc(sizeof(int32_t) * total);
  if (!buf || !hw->nodes || !queue) {
    free(buf), free(queue);
    es_hotwords_free(hw);
    return ES_ERR_OUT_OF_MEMORY;
  }
  hw->nodes[0] = (es_hotword_node){-1, -1, 0, 0, 0, 0.0f};
  hw->num_nodes = 1;
  for (int i = 0; i < count; i++) {
    size_t n = normalise(phrases[i], buf);
    if (n < 2) {
      snprintf(msg, sizeof msg, "hotword %d is empty", i);
      es_explain(why, why_size, msg);
      free(buf), free(queue);
      es_hotwords_free(hw);
      return ES_ERR_INVALID_CONFIG;
    }
    int32_t node = 0;
    for (size_t j = 0; j < n; j++) {
      uint8_t b = (uint8_t)buf[j];
      int32_t c = child(hw, node, b);
      if (c < 0) {
        c = hw->num_nodes++;
        hw->nodes[c] = (es_hotword_node){-1, hw->nodes[node].first_child, 0, b, 0, 0.0f};
        hw->nodes[node].first_child = c;
      }
      node = c;
      /* bytes after the leading space earn credit: boost * matched / length */
      float credit = boosts[i] * (float)j / (float)(n - 1);
      if (credit > hw->nodes[node].credit) hw->nodes[node].credit = credit;
    }
    hw->nodes[node].is_end = 1;
  }
  /* failure links, breadth first */
  size_t head = 0, tail = 0;
  for (int32_t c = hw->nodes[0].first_child; c >= 0; c = hw->nodes[c].next_sibling) {
    hw->nodes[c].fail = 0;
    queue[tail++] = c;
  }
  while (head < tail) {
    int32_t u = queue[head++];
    for (int32_t c = hw->nodes[u].first_child; c >= 0; c = hw->nodes[c].next_sibling) {
      int32_t f = hw->nodes[u].fail, to;
      while ((to = child(hw, f, hw->nodes[c].byte)) < 0 && f != 0) f = hw->nodes[f].fail;
      hw->nodes[c].fail = to >= 0 && to != c ? to : 0;
      queue[tail++] = c;
    }
  }
  free(buf);
  free(queue);
  return ES_OK;
}

static int32_t step(const es_hotwords *hw, int32_t s, uint8_t b) {
  for (;;) {
    int32_t c = child(hw, s, b);
    if (c >= 0) return c;
    if (s == 0) return 0;
    s = hw->nodes[s].fail;
  }
}

int32_t es_hotwords_start(const es_hotwords *hw) {
  if (hw == NULL || hw->num_nodes == 0) return 0;
  return step(hw, 0, ' ');
}

int32_t es_hotwords_advance(const es_hotwords *hw, int32_t s, const char *bytes, size_t n, float *locked) {
  if (hw == NULL || hw->num_nodes == 0) return 0;
  for (size_t i = 0; i < n; i++) {
    s = step(hw, s, (uint8_t)bytes[i]);
    if (hw->nodes[s].is_end) {
      *locked += hw->nodes[s].credit;
      s = 0; /* start over: the next word boundary re-enters */
    }
  }
  return s;
}
