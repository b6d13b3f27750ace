/*
 * edge_speech native core: include this one header to use the whole C library.
 *
 * When memory is allocated. Every object allocates in its init and releases in its free; after
 * init:
 *   - es_frontend, es_vad, es_ctc_greedy (and the stages of es_fft.h .. es_cmvn.h) never allocate:
 *     accept, finish, reset and es_frontend_clamp_utterance use only what init allocated.
 *   - es_ctc_beam allocates in es_ctc_beam_accept only, to grow its prefix-node pool: when the pool
 *     is full it first drops the nodes no hypothesis reaches, and if more than half is still in use
 *     it doubles the pool (one realloc). The pool never shrinks; reset keeps it, so a decoder that
 *     has seen long input rarely grows again. finish, hypothesis, reset and set_lexicon never
 *     allocate. A growth that fails is ES_ERR_OUT_OF_MEMORY.
 *   - es_grammar_decoder likewise allocates in es_grammar_decoder_accept only, to grow its
 *     traceback pool (same rule); result and reset never allocate.
 *   - es_vocab, es_lm, es_hotwords, es_lexicon and es_grammar allocate in init only and are
 *     read-only afterwards (so decoders on several threads may share them).
 * native/tests/test_no_allocation.c checks each rule by counting calls into the allocator.
 */
#ifndef EDGE_SPEECH_H
#define EDGE_SPEECH_H
#include "edge_speech/es_common.h"
#include "edge_speech/es_config.h"
#include "edge_speech/es_frontend.h"
#include "edge_speech/es_vad.h"
#include "edge_speech/es_vocab.h"
#include "edge_speech/es_ctc_greedy.h"
#include "edge_speech/es_lm.h"
#include "edge_speech/es_hotwords.h"
#include "edge_speech/es_lexicon.h"
#include "edge_speech/es_ctc_beam.h"
#include "edge_speech/es_grammar.h"
#endif
