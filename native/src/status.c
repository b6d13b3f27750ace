#include "edge_speech/es_common.h"

#include <string.h>

const char *es_status_message(es_status status) {
  switch (status) {
    case ES_OK: return "ok";
    case ES_ERR_INVALID_ARGUMENT: return "invalid argument";
    case ES_ERR_INVALID_CONFIG: return "invalid configuration";
    case ES_ERR_OUT_OF_MEMORY: return "out of memory";
    case ES_ERR_NON_FINITE_INPUT: return "input contains NaN or Inf samples";
    case ES_ERR_BUFFER_TOO_SMALL: return "output buffer too small";
    case ES_ERR_FINISHED: return "stream already finished; reset it before new input";
    case ES_ERR_PARSE: return "malformed input text";
    case ES_ERR_STATE: return "object used before init or after free";
  }
  return "unknown status";
}

void es_explain(char *out, size_t out_size, const char *why) {
  if (out == NULL || out_size == 0) return;
  size_t n = strlen(why);
  if (n >= out_size) n = out_size - 1;
  memcpy(out, why, n);
  out[n] = '\0';
}
