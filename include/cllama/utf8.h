/* utf8.h — small UTF-8 helpers shared by the text modules. Pure functions,
 * any thread, nothing allocated. */
#ifndef CLLAMA_UTF8_H
#define CLLAMA_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Writes code point cp as UTF-8 into out (room for 4 bytes) and returns the
 * length. Surrogates and values above U+10FFFF become U+FFFD. */
size_t cll_utf8_encode(uint32_t cp, char *out);

#endif
