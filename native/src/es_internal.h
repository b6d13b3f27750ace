/* Private helpers shared by the core's source files. */
#ifndef EDGE_SPEECH_ES_INTERNAL_H
#define EDGE_SPEECH_ES_INTERNAL_H

#define ES_PI 3.14159265358979323846

#define ES_MIN(a, b) ((a) < (b) ? (a) : (b))
#define ES_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
