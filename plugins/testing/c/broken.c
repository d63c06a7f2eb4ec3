/*
 * Broken plugins for the failure matrix, one per -D flag (the test suite
 * builds each with cc -shared -fPIC -I plugins/abi -D<FLAG>):
 *   WRONG_ABI      abi_version 2
 *   NO_SYMBOL      exports something other than lex_align_plugin
 *   BAD_NAME       name "Bad Name!"
 *   BAD_KIND       kind "gatekeeper"
 *   NULL_CALL      call is NULL
 *   FAIL_CONFIGURE configure answers an error
 *   BAD_CONFIGURE  configure answers {"ok":false}
 *   INVALID_JSON   authenticate answers truncated JSON
 *   NON_UTF8       authenticate answers bytes that are not UTF-8
 *   NULL_ANSWER    authenticate answers NULL
 *   BAD_IDENTITY   authenticate answers an identity with an empty id
 *   LEAK_SECRET    authenticate answers invalid JSON holding the token
 * PLUGIN_NAME names it (-DPLUGIN_NAME='"c-x"').
 */
#include <stdlib.h>
#include <string.h>

#include "lex_align_plugin.h"

#ifndef PLUGIN_NAME
#define PLUGIN_NAME "c-broken"
#endif

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

static char *c_call(const char *request) {
    if (strstr(request, "\"op\":\"configure\"")) {
#if defined(FAIL_CONFIGURE)
        return dup_str("{\"error\":{\"status\":400,\"detail\":\"missing setting: issuer\"}}");
#elif defined(BAD_CONFIGURE)
        return dup_str("{\"ok\":false}");
#else
        return dup_str("{\"ok\":true}");
#endif
    }
#if defined(INVALID_JSON)
    return dup_str("{\"identity\":{\"id\":\"mallory\"");
#elif defined(NON_UTF8)
    return dup_str("{\"identity\":{\"id\":\"\xff\xfe\"}}");
#elif defined(NULL_ANSWER)
    return NULL;
#elif defined(BAD_IDENTITY)
    return dup_str("{\"identity\":{\"id\":\"\",\"groups\":[\"admins\"]}}");
#elif defined(LEAK_SECRET)
    /* Echoes the request (and so the caller's token) in a broken answer. */
    size_t n = strlen(request);
    char *p = malloc(n + 2);
    if (!p) return NULL;
    p[0] = '<';
    memcpy(p + 1, request, n + 1);
    return p;
#else
    return dup_str("{\"identity\":{\"id\":\"broken\"}}");
#endif
}

static void c_free_response(char *response) { free(response); }

#if defined(WRONG_ABI)
#define ABI 2
#else
#define ABI LEX_ALIGN_ABI_VERSION
#endif

#if defined(BAD_NAME)
#define NAME "Bad Name!"
#else
#define NAME PLUGIN_NAME
#endif

#if defined(BAD_KIND)
#define KIND "gatekeeper"
#else
#define KIND "authenticator"
#endif

#if defined(NULL_CALL)
#define CALL NULL
#else
#define CALL c_call
#endif

static const LexAlignPlugin PLUGIN = { ABI, NAME, KIND, CALL, c_free_response };

#if defined(NO_SYMBOL)
const LexAlignPlugin *lex_align_plugin_v2(void) { return &PLUGIN; }
#else
const LexAlignPlugin *lex_align_plugin(void) { return &PLUGIN; }
#endif
