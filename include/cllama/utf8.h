/* utf8.h — small UTF-8 helpers shared by the text modules. Pure functions,
 * any thread, nothing allocated. */
#ifndef CLLAMA_UTF8_H
#define CLLAMA_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Writes code point cp as UTF-8 into out (room for 4 bytes) and returns the
 * length. Surrogates and values above U+10FFFF become U+FFFD. */
size_t cll_utf8_encode(uint32_t cp, char *out);

/* Decodes one UTF-8 sequence at s (n >= 1 bytes): *cp gets the code point,
 * or U+FFFD for a malformed, overlong, surrogate or cut sequence; returns
 * the bytes used (>= 1; 1 for a malformed one). */
size_t cll_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);

#endif
