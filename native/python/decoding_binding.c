/* Decoders for Python: CTCBeam (prefix beam search), ArpaLM, Hotwords, ctc_greedy, vocab_info. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "binding.h"
#include "edge_speech/es_ctc_beam.h"
#include "edge_speech/es_grammar.h"

_Static_assert(sizeof(es_ctc_token) == 16, "es_ctc_token is read by numpy as (int32, float32, int64)");

/* ---- helpers -------------------------------------------------------------------------------- */

/* UTF-8 pointers to the str items of a list (borrowed from the list's objects). */
static const char **utf8_list(PyObject *list, const char *name, int *count) {
  if (!PyList_Check(list)) {
    PyErr_Format(PyExc_TypeError, "%s must be a list of str", name);
    return NULL;
  }
  Py_ssize_t n = PyList_GET_SIZE(list);
  if (n > INT32_MAX / 2) {
    PyErr_Format(PyExc_ValueError, "%s is too long", name);
    return NULL;
  }
  const char **out = PyMem_Malloc(sizeof(char *) * (size_t)(n ? n : 1));
  if (out == NULL) {
    PyErr_NoMemory();
    return NULL;
  }
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *item = PyList_GET_ITEM(list, i);
    out[i] = PyUnicode_Check(item) ? PyUnicode_AsUTF8(item) : NULL;
    if (out[i] == NULL) {
      if (!PyErr_Occurred()) PyErr_Format(PyExc_TypeError, "%s[%zd] must be a str", name, i);
      PyMem_Free(out);
      return NULL;
    }
  }
  *count = (int)n;
  return out;
}

/* A C-contiguous 2-D float32 buffer [frames, vocab]. */
static int get_log_probs(PyObject *obj, Py_buffer *view, int vocab_size) {
  if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return -1;
  const char *fmt = view->format ? view->format : "B";
  if (fmt[0] == '<' || fmt[0] == '=' || fmt[0] == '@') fmt++;
  if (view->ndim != 2 || view->itemsize != 4 || strcmp(fmt, "f") != 0) {
    PyBuffer_Release(view);
    PyErr_SetString(PyExc_TypeError, "log_probs must be a C-contiguous 2-D float32 buffer [frames, vocab]");
    return -1;
  }
  if (view->shape[1] != vocab_size) {
    PyBuffer_Release(view);
    PyErr_Format(PyExc_ValueError, "log_probs has %zd columns; the vocabulary has %d tokens", view->shape[1],
                 vocab_size);
    return -1;
  }
  return 0;
}

/* ---- vocab_info / ctc_greedy ---------------------------------------------------------------- */

static PyObject *vocab_info(PyObject *module, PyObject *args) {
  PyObject *list;
  int blank, kind;
  if (!PyArg_ParseTuple(args, "Oii", &list, &blank, &kind)) return NULL;
  int count;
  const char **tokens = utf8_list(list, "tokens", &count);
  if (tokens == NULL) return NULL;
  es_vocab_config cfg = es_vocab_config_default();
  cfg.blank_id = blank;
  cfg.kind = (es_vocab_kind)kind;
  es_vocab v;
  char why[256] = "";
  es_status s = es_vocab_init(&v, tokens, count, &cfg, why, sizeof why);
  PyMem_Free(tokens);
  if (s != ES_OK) return es_raise(s, why);
  PyObject *texts = PyList_New(v.size);
  PyObject *flags = PyBytes_FromStringAndSize((const char *)v.flags, v.size);
  for (int i = 0; texts && i < v.size; i++) {
    PyObject *t = PyUnicode_DecodeUTF8(es_vocab_token_text(&v, i), es_vocab_token_length(&v, i), "replace");
    if (t == NULL) {
      Py_CLEAR(texts);
      break;
    }
    PyList_SET_ITEM(texts, i, t);
  }
  int resolved = (int)v.kind;
  es_vocab_free(&v);
  if (texts == NULL || flags == NULL) {
    Py_XDECREF(texts);
    Py_XDECREF(flags);
    return NULL;
  }
  return Py_BuildValue("iNN", resolved, flags, texts);
}

static PyObject *ctc_greedy(PyObject *module, PyObject *args) {
  PyObject *obj;
  int vocab_size, blank, previous;
  long long frame_offset;
  double path = 0.0;
  if (!PyArg_ParseTuple(args, "OiiiLd", &obj, &vocab_size, &blank, &previous, &frame_offset, &path)) return NULL;
  es_ctc_greedy g;
  es_status s = es_ctc_greedy_init(&g, vocab_size, blank);
  if (s != ES_OK) return es_raise(s, "blank_id outside the vocabulary");
  g.previous = previous;
  g.frames_done = frame_offset;
  g.path_log_prob = path;
  Py_buffer view;
  if (get_log_probs(obj, &view, vocab_size) < 0) return NULL;
  size_t frames = (size_t)view.shape[0];
  char *data;
  PyObject *out = es_new_bytes((Py_ssize_t)(frames * sizeof(es_ctc_token)), &data);
  size_t written = 0;
  if (out != NULL) {
    Py_BEGIN_ALLOW_THREADS
    s = es_ctc_greedy_accept(&g, view.buf, frames, (es_ctc_token *)data, frames, &written);
    Py_END_ALLOW_THREADS
  }
  PyBuffer_Release(&view);
  if (out == NULL) return NULL;
  if (s != ES_OK) {
    Py_DECREF(out);
    return es_raise(s, s == ES_ERR_NON_FINITE_INPUT ? "log_probs contain NaN or +inf" : NULL);
  }
  if (PyByteArray_Resize(out, (Py_ssize_t)(written * sizeof(es_ctc_token))) < 0) {
    Py_DECREF(out);
    return NULL;
  }
  return Py_BuildValue("Nid", out, (int)g.previous, g.path_log_prob);
}

/* ---- ArpaLM --------------------------------------------------------------------------------- */

typedef struct {
  PyObject_HEAD
  es_lm lm;
  int ready;
} LMObject;

static int lm_init(LMObject *self, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"text", NULL};
  Py_buffer text;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*:ArpaLM", kwlist, &text)) return -1;
  if (self->ready) es_lm_free(&self->lm);
  self->ready = 0;
  char why[300] = "";
  es_status s;
  Py_BEGIN_ALLOW_THREADS
  s = es_lm_init_arpa(&self->lm, text.buf, (size_t)text.len, why, sizeof why);
  Py_END_ALLOW_THREADS
  PyBuffer_Release(&text);
  if (s != ES_OK) {
    es_raise(s, why);
    return -1;
  }
  self->ready = 1;
  return 0;
}

static void lm_dealloc(LMObject *self) {
  es_lm_free(&self->lm);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

/* score_words(words, begin, end) -> list of log10 p(word | history), one per word (+ "</s>"). */
static PyObject *lm_score_words(LMObject *self, PyObject *args) {
  PyObject *list;
  int begin, end;
  if (!PyArg_ParseTuple(args, "Opp", &list, &begin, &end)) return NULL;
  if (!self->ready) return es_raise(ES_ERR_STATE, NULL);
  int count;
  const char **words = utf8_list(list, "words", &count);
  if (words == NULL) return NULL;
  int32_t ctx[ES_LM_MAX_ORDER];
  int len = begin ? es_lm_begin(&self->lm, ctx) : 0;
  int total = count + (end && self->lm.eos >= 0 ? 1 : 0);
  PyObject *out = PyList_New(total);
  for (int i = 0; out && i < total; i++) {
    int32_t id = i < count ? es_lm_word_id(&self->lm, words[i], strlen(words[i])) : self->lm.eos;
    float lp = es_lm_score(&self->lm, ctx, len, id, ctx, &len);
    PyList_SET_ITEM(out, i, PyFloat_FromDouble(lp));
  }
  PyMem_Free(words);
  return out;
}

static PyObject *lm_get(LMObject *self, void *which) {
  if (!self->ready) return es_raise(ES_ERR_STATE, NULL);
  if ((intptr_t)which == 0) return PyLong_FromLong(self->lm.order);
  if ((intptr_t)which == 2) {
    PyObject *words = PyList_New(self->lm.num_words);
    for (int32_t i = 0; words && i < self->lm.num_words; i++) {
      PyObject *w = PyUnicode_DecodeUTF8(self->lm.word_text + self->lm.word_offset[i],
                                         (Py_ssize_t)strlen(self->lm.word_text + self->lm.word_offset[i]), "replace");
      if (w == NULL) {
        Py_CLEAR(words);
        break;
      }
      PyList_SET_ITEM(words, i, w);
    }
    return words;
  }
  PyObject *counts = PyList_New(self->lm.order);
  for (int i = 0; counts && i < self->lm.order; i++)
    PyList_SET_ITEM(counts, i, PyLong_FromSize_t(self->lm.table[i].count));
  return counts;
}

static PyMethodDef lm_methods[] = {
    {"score_words", (PyCFunction)lm_score_words, METH_VARARGS,
     "score_words(words, begin, end) -> list of log10 probabilities"},
    {NULL, NULL, 0, NULL}};
static PyGetSetDef lm_getset[] = {
    {"order", (getter)lm_get, NULL, "n-gram order", (void *)0},
    {"counts", (getter)lm_get, NULL, "n-grams per order", (void *)1},
    {"words", (getter)lm_get, NULL, "the unigrams, in file order", (void *)2},
    {NULL, NULL, NULL, NULL, NULL}};

static PyTypeObject LMType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "edge_speech._native.ArpaLM",
    .tp_basicsize = sizeof(LMObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "ArpaLM(text: bytes): a word n-gram LM parsed from ARPA text",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)lm_init,
    .tp_dealloc = (destructor)lm_dealloc,
    .tp_methods = lm_methods,
    .tp_getset = lm_getset,
};

/* ---- Hotwords ------------------------------------------------------------------------------- */

typedef struct {
  PyObject_HEAD
  es_hotwords hw;
  int ready;
} HotwordsObject;

static int hotwords_init(HotwordsObject *self, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"phrases", "boosts", NULL};
  PyObject *list, *boost_list;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO:Hotwords", kwlist, &list, &boost_list)) return -1;
  if (self->ready) es_hotwords_free(&self->hw);
  self->ready = 0;
  int count;
  const char **phrases = utf8_list(list, "phrases", &count);
  if (phrases == NULL) return -1;
  float *boosts = PyMem_Malloc(sizeof(float) * (size_t)(count ? count : 1));
  if (boosts == NULL || !PyList_Check(boost_list) || PyList_GET_SIZE(boost_list) != count) {
    PyMem_Free(phrases);
    PyMem_Free(boosts);
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "boosts must be a list as long as phrases");
    return -1;
  }
  for (int i = 0; i < count; i++) {
    boosts[i] = (float)PyFloat_AsDouble(PyList_GET_ITEM(boost_list, i));
    if (PyErr_Occurred()) {
      PyMem_Free(phrases);
      PyMem_Free(boosts);
      return -1;
    }
  }
  char why[256] = "";
  es_status s = es_hotwords_init(&self->hw, phrases, boosts, count, why, sizeof why);
  PyMem_Free(phrases);
  PyMem_Free(boosts);
  if (s != ES_OK) {
    es_raise(s, why);
    return -1;
  }
  self->ready = 1;
  return 0;
}

static void hotwords_dealloc(HotwordsObject *self) {
  es_hotwords_free(&self->hw);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject HotwordsType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "edge_speech._native.Hotwords",
    .tp_basicsize = sizeof(HotwordsObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Hotwords(phrases: list[str], boosts: list[float]): phrase-biasing automaton",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)hotwords_init,
    .tp_dealloc = (destructor)hotwords_dealloc,
};

/* ---- Lexicon ------------------------------------------------------------------------------- */

typedef struct {
  PyObject_HEAD
  es_lexicon lex;
  int ready;
} LexiconObject;

static int lexicon_init(LexiconObject *self, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"words", NULL};
  PyObject *list;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:Lexicon", kwlist, &list)) return -1;
  if (self->ready) es_lexicon_free(&self->lex);
  self->ready = 0;
  int count;
  const char **words = utf8_list(list, "words", &count);
  if (words == NULL) return -1;
  es_status s = es_lexicon_init(&self->lex, words, count);
  PyMem_Free(words);
  if (s != ES_OK) {
    es_raise(s, NULL);
    return -1;
  }
  self->ready = 1;
  return 0;
}

static void lexicon_dealloc(LexiconObject *self) {
  es_lexicon_free(&self->lex);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject LexiconType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "edge_speech._native.Lexicon",
    .tp_basicsize = sizeof(LexiconObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Lexicon(words: list[str]): the words a beam search may output",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)lexicon_init,
    .tp_dealloc = (destructor)lexicon_dealloc,
};

/* ---- CTCBeam -------------------------------------------------------------------------------- */

typedef struct {
  PyObject_HEAD
  es_vocab vocab;
  es_ctc_beam beam;
  PyObject *lm, *hotwords, *lexicon; /* keep the borrowed C objects alive */
  int ready;
  int busy;
} BeamObject;

static int beam_init(BeamObject *self, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"tokens", "blank_id", "kind", "config", "lm", "hotwords", "lexicon", NULL};
  PyObject *list, *dict, *lm = Py_None, *hw = Py_None, *lex = Py_None;
  int blank, kind;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OiiO|OOO:CTCBeam", kwlist, &list, &blank, &kind, &dict, &lm, &hw,
                                   &lex))
    return -1;
  if (lex != Py_None && !PyObject_TypeCheck(lex, &LexiconType)) {
    PyErr_SetString(PyExc_TypeError, "lexicon must be a Lexicon or None");
    return -1;
  }
  if (self->busy) {
    PyErr_SetString(PyExc_RuntimeError, "CTCBeam is in use by another thread");
    return -1;
  }
  if (lm != Py_None && !PyObject_TypeCheck(lm, &LMType)) {
    PyErr_SetString(PyExc_TypeError, "lm must be an ArpaLM or None");
    return -1;
  }
  if (hw != Py_None && !PyObject_TypeCheck(hw, &HotwordsType)) {
    PyErr_SetString(PyExc_TypeError, "hotwords must be a Hotwords or None");
    return -1;
  }
  es_ctc_beam_config cfg = es_ctc_beam_config_default();
  if (es_config_from_dict(es_ctc_beam_config_table(), dict, &cfg, NULL, "beam search") < 0) return -1;
  es_ctc_beam_free(&self->beam);
  es_vocab_free(&self->vocab);
  Py_CLEAR(self->lm);
  Py_CLEAR(self->hotwords);
  Py_CLEAR(self->lexicon);
  self->ready = 0;
  int count;
  const char **tokens = utf8_list(list, "tokens", &count);
  if (tokens == NULL) return -1;
  es_vocab_config vcfg = es_vocab_config_default();
  vcfg.blank_id = blank;
  vcfg.kind = (es_vocab_kind)kind;
  char why[256] = "";
  es_status s = es_vocab_init(&self->vocab, tokens, count, &vcfg, why, sizeof why);
  PyMem_Free(tokens);
  if (s == ES_OK)
    s = es_ctc_beam_init(&self->beam, &cfg, &self->vocab, lm != Py_None ? &((LMObject *)lm)->lm : NULL,
                         hw != Py_None ? &((HotwordsObject *)hw)->hw : NULL, why, sizeof why);
  if (s != ES_OK) {
    es_vocab_free(&self->vocab);
    es_raise(s, why);
    return -1;
  }
  if (lm != Py_None) {
    Py_INCREF(lm);
    self->lm = lm;
  }
  if (hw != Py_None) {
    Py_INCREF(hw);
    self->hotwords = hw;
  }
  if (lex != Py_None) {
    Py_INCREF(lex);
    self->lexicon = lex;
    es_ctc_beam_set_lexicon(&self->beam, &((LexiconObject *)lex)->lex);
  }
  self->ready = 1;
  return 0;
}

static void beam_dealloc(BeamObject *self) {
  es_ctc_beam_free(&self->beam);
  es_vocab_free(&self->vocab);
  Py_CLEAR(self->lm);
  Py_CLEAR(self->hotwords);
  Py_CLEAR(self->lexicon);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

static int beam_enter(BeamObject *self) {
  if (!self->ready) {
    PyErr_SetString(PyExc_RuntimeError, "CTCBeam is not initialised");
    return -1;
  }
  if (self->busy) {
    PyErr_SetString(PyExc_RuntimeError, "CTCBeam is in use by another thread; use one stream per thread");
    return -1;
  }
  self->busy = 1;
  return 0;
}

static PyObject *beam_accept(BeamObject *self, PyObject *obj) {
  if (beam_enter(self) < 0) return NULL;
  Py_buffer view;
  if (get_log_probs(obj, &view, self->vocab.size) < 0) {
    self->busy = 0;
    return NULL;
  }
  es_status s;
  Py_BEGIN_ALLOW_THREADS
  s = es_ctc_beam_accept(&self->beam, view.buf, (size_t)view.shape[0]);
  Py_END_ALLOW_THREADS
  PyBuffer_Release(&view);
  self->busy = 0;
  if (s != ES_OK) return es_raise(s, s == ES_ERR_NON_FINITE_INPUT ? "log_probs contain NaN or +inf" : NULL);
  Py_RETURN_NONE;
}

static PyObject *beam_finish(BeamObject *self, PyObject *unused) {
  if (beam_enter(self) < 0) return NULL;
  es_status s = es_ctc_beam_finish(&self->beam);
  self->busy = 0;
  if (s != ES_OK) return es_raise(s, NULL);
  Py_RETURN_NONE;
}

static PyObject *beam_reset(BeamObject *self, PyObject *unused) {
  if (beam_enter(self) < 0) return NULL;
  es_ctc_beam_reset(&self->beam);
  self->busy = 0;
  Py_RETURN_NONE;
}

/* hypotheses(n) -> list of (tokens bytearray, total, acoustic, lm, hotword, words), best first. */
static PyObject *beam_hypotheses(BeamObject *self, PyObject *arg) {
  long n = PyLong_AsLong(arg);
  if (n == -1 && PyErr_Occurred()) return NULL;
  if (beam_enter(self) < 0) return NULL;
  int count = es_ctc_beam_num_hypotheses(&self->beam);
  if (n >= 0 && n < count) count = (int)n;
  PyObject *out = PyList_New(count);
  for (int r = 0; out && r < count; r++) {
    size_t length = 0;
    es_ctc_beam_score score;
    es_ctc_beam_hypothesis(&self->beam, r, NULL, 0, &length, NULL);
    char *data;
    PyObject *tokens = es_new_bytes((Py_ssize_t)(length * sizeof(es_ctc_token)), &data);
    if (tokens == NULL) {
      Py_CLEAR(out);
      break;
    }
    es_ctc_beam_hypothesis(&self->beam, r, (es_ctc_token *)data, length, &length, &score);
    PyObject *item = Py_BuildValue("Nffffi", tokens, score.total, score.acoustic, score.lm, score.hotword,
                                   (int)score.words);
    if (item == NULL) {
      Py_CLEAR(out);
      break;
    }
    PyList_SET_ITEM(out, r, item);
  }
  self->busy = 0;
  return out;
}

static PyObject *beam_get(BeamObject *self, void *which) {
  if (!self->ready) return es_raise(ES_ERR_STATE, NULL);
  switch ((int)(intptr_t)which) {
    case 0: return PyLong_FromLongLong(self->beam.frames_done);
    case 1: return PyBool_FromLong(self->beam.finished);
    default: return PyLong_FromLong(self->vocab.size);
  }
}

static PyMethodDef beam_methods[] = {
    {"accept", (PyCFunction)beam_accept, METH_O, "accept(log_probs float32 [frames, vocab])"},
    {"finish", (PyCFunction)beam_finish, METH_NOARGS, "finish(): end the input and rank the n-best"},
    {"reset", (PyCFunction)beam_reset, METH_NOARGS, "reset(): forget all input"},
    {"hypotheses", (PyCFunction)beam_hypotheses, METH_O,
     "hypotheses(n) -> [(tokens, total, acoustic, lm, hotword, words)], best first"},
    {NULL, NULL, 0, NULL}};
static PyGetSetDef beam_getset[] = {
    {"frames_done", (getter)beam_get, NULL, "frames accepted since reset", (void *)0},
    {"finished", (getter)beam_get, NULL, "whether finish() was called", (void *)1},
    {"vocab_size", (getter)beam_get, NULL, "tokens in the vocabulary", (void *)2},
    {NULL, NULL, NULL, NULL, NULL}};

static PyTypeObject BeamType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "edge_speech._native.CTCBeam",
    .tp_basicsize = sizeof(BeamObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "CTCBeam(tokens, blank_id, kind, config, lm=None, hotwords=None): CTC prefix beam search",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)beam_init,
    .tp_dealloc = (destructor)beam_dealloc,
    .tp_methods = beam_methods,
    .tp_getset = beam_getset,
};

/* ---- GrammarDecoder ----------------------------------------------------------------------- */

_Static_assert(sizeof(es_grammar_arc) == 20, "es_grammar_arc is packed by numpy as (i4, i4, i4, f4, i4)");
_Static_assert(sizeof(es_grammar_step) == 24, "es_grammar_step is read by numpy as (i4, i4, i4, pad, i8)");

typedef struct {
  PyObject_HEAD
  es_grammar grammar;
  es_grammar_decoder decoder;
  int ready;
  int busy;
} GrammarObject;

static int grammar_init(GrammarObject *self, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"arcs", "num_states", "start", "finals", "vocab_size", "blank_id", "beam", NULL};
  Py_buffer arcs, finals;
  int num_states, start, vocab_size, blank;
  float beam = ES_GRAMMAR_DEFAULT_BEAM;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*iiy*ii|f:GrammarDecoder", kwlist, &arcs, &num_states, &start,
                                   &finals, &vocab_size, &blank, &beam))
    return -1;
  if (!(beam > 0.0f)) {
    PyBuffer_Release(&arcs);
    PyBuffer_Release(&finals);
    PyErr_SetString(PyExc_ValueError, "GrammarDecoder beam must be > 0 (inf: exact search)");
    return -1;
  }
  if (self->busy) {
    PyBuffer_Release(&arcs);
    PyBuffer_Release(&finals);
    PyErr_SetString(PyExc_RuntimeError, "GrammarDecoder is in use by another thread");
    return -1;
  }
  es_grammar_decoder_free(&self->decoder);
  es_grammar_free(&self->grammar);
  self->ready = 0;
  char why[256] = "";
  es_status s = ES_ERR_INVALID_ARGUMENT;
  if (arcs.len % (Py_ssize_t)sizeof(es_grammar_arc) != 0 || finals.len % 4 != 0) {
    es_explain(why, sizeof why, "arcs and finals must be packed int32/float32 records");
  } else {
    s = es_grammar_init(&self->grammar, arcs.buf, (int32_t)(arcs.len / (Py_ssize_t)sizeof(es_grammar_arc)),
                        num_states, start, finals.buf, (int32_t)(finals.len / 4), vocab_size, blank, why, sizeof why);
    if (s == ES_OK) s = es_grammar_decoder_init(&self->decoder, &self->grammar);
    if (s == ES_OK) s = es_grammar_decoder_set_beam(&self->decoder, beam);
  }
  PyBuffer_Release(&arcs);
  PyBuffer_Release(&finals);
  if (s != ES_OK) {
    es_grammar_free(&self->grammar);
    es_raise(s, why);
    return -1;
  }
  self->ready = 1;
  return 0;
}

static void grammar_dealloc(GrammarObject *self) {
  es_grammar_decoder_free(&self->decoder);
  es_grammar_free(&self->grammar);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

static int grammar_enter(GrammarObject *self) {
  if (!self->ready) {
    PyErr_SetString(PyExc_RuntimeError, "GrammarDecoder is not initialised");
    return -1;
  }
  if (self->busy) {
    PyErr_SetString(PyExc_RuntimeError, "GrammarDecoder is in use by another thread; use one stream per thread");
    return -1;
  }
  self->busy = 1;
  return 0;
}

static PyObject *grammar_accept(GrammarObject *self, PyObject *obj) {
  if (grammar_enter(self) < 0) return NULL;
  Py_buffer view;
  if (get_log_probs(obj, &view, self->grammar.vocab_size) < 0) {
    self->busy = 0;
    return NULL;
  }
  es_status s;
  Py_BEGIN_ALLOW_THREADS
  s = es_grammar_decoder_accept(&self->decoder, view.buf, (size_t)view.shape[0]);
  Py_END_ALLOW_THREADS
  PyBuffer_Release(&view);
  self->busy = 0;
  if (s != ES_OK) return es_raise(s, s == ES_ERR_NON_FINITE_INPUT ? "log_probs contain NaN or +inf" : NULL);
  Py_RETURN_NONE;
}

static PyObject *grammar_reset(GrammarObject *self, PyObject *unused) {
  if (grammar_enter(self) < 0) return NULL;
  es_grammar_decoder_reset(&self->decoder);
  self->busy = 0;
  Py_RETURN_NONE;
}

/* result() -> (steps bytearray, score, free_score) */
static PyObject *grammar_result(GrammarObject *self, PyObject *unused) {
  if (grammar_enter(self) < 0) return NULL;
  size_t length = 0;
  float score, free_score;
  es_grammar_decoder_result(&self->decoder, NULL, 0, &length, &score, &free_score);
  char *data;
  PyObject *steps = es_new_bytes((Py_ssize_t)(length * sizeof(es_grammar_step)), &data);
  if (steps != NULL) {
    memset(data, 0, length * sizeof(es_grammar_step)); /* the struct's padding too: no stale heap bytes */
    es_grammar_decoder_result(&self->decoder, (es_grammar_step *)data, length, &length, &score, &free_score);
  }
  self->busy = 0;
  if (steps == NULL) return NULL;
  return Py_BuildValue("Nff", steps, score, free_score);
}

static PyObject *grammar_get(GrammarObject *self, void *which) {
  if (!self->ready) return es_raise(ES_ERR_STATE, NULL);
  return PyLong_FromLongLong(self->decoder.frames_done);
}

static PyMethodDef grammar_methods[] = {
    {"accept", (PyCFunction)grammar_accept, METH_O, "accept(log_probs float32 [frames, vocab])"},
    {"reset", (PyCFunction)grammar_reset, METH_NOARGS, "reset(): forget all input"},
    {"result", (PyCFunction)grammar_result, METH_NOARGS, "result() -> (steps, score, free_score)"},
    {NULL, NULL, 0, NULL}};
static PyGetSetDef grammar_getset[] = {
    {"frames_done", (getter)grammar_get, NULL, "frames accepted since reset", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyTypeObject GrammarType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "edge_speech._native.GrammarDecoder",
    .tp_basicsize = sizeof(GrammarObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "GrammarDecoder(arcs, num_states, start, finals, vocab_size, blank_id): constrained Viterbi",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)grammar_init,
    .tp_dealloc = (destructor)grammar_dealloc,
    .tp_methods = grammar_methods,
    .tp_getset = grammar_getset,
};

static PyMethodDef functions[] = {
    {"vocab_info", vocab_info, METH_VARARGS, "vocab_info(tokens, blank_id, kind) -> (kind, flags, texts)"},
    {"ctc_greedy", ctc_greedy, METH_VARARGS,
     "ctc_greedy(log_probs, vocab_size, blank_id, previous, frame_offset, path_log_prob)"
     " -> (tokens, previous, path_log_prob)"},
    {NULL, NULL, 0, NULL}};

static int add_type(PyObject *module, PyTypeObject *type, const char *name) {
  if (PyType_Ready(type) < 0) return -1;
  Py_INCREF(type);
  if (PyModule_AddObject(module, name, (PyObject *)type) < 0) {
    Py_DECREF(type);
    return -1;
  }
  return 0;
}

int es_register_decoding(PyObject *module) {
  if (add_type(module, &LMType, "ArpaLM") < 0 || add_type(module, &HotwordsType, "Hotwords") < 0 ||
      add_type(module, &LexiconType, "Lexicon") < 0 ||
      add_type(module, &BeamType, "CTCBeam") < 0 || add_type(module, &GrammarType, "GrammarDecoder") < 0)
    return -1;
  return PyModule_AddFunctions(module, functions);
}
