/* edge_speech native core: include this one header to use the whole C library. */
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
