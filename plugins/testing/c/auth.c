/*
 * A lex-align authenticator written in C against lex_align_plugin.h alone
 * (no Rust, no JSON library): the test suite builds it with
 *   cc -shared -fPIC -I plugins/abi plugins/testing/c/auth.c -o c-auth.so
 * and logs in through it.
 *
 * Token `Bearer c.<id>` (id of [a-z0-9-], at most 64) is identity <id> in
 * group "c-users"; anything else is a 401. PLUGIN_NAME may be overridden
 * with -DPLUGIN_NAME='"other"' (the duplicate-name test).
 */
#include <stdlib.h>
#include <string.h>

#include "lex_align_plugin.h"

#ifndef PLUGIN_NAME
#define PLUGIN_NAME "c-auth"
#endif

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

/* The one allocation the daemon frees through c_free_response. */
static char *answer(const char *text) { return dup_str(text); }

static char *c_call(const char *request) {
    if (strstr(request, "\"op\":\"configure\"")) return answer("{\"ok\":true}");
    if (!strstr(request, "\"op\":\"authenticate\""))
        return answer("{\"error\":{\"status\":400,\"detail\":\"unknown op\"}}");
    /* Header names arrive lower-case (docs/plugins.md). */
    const char *key = "\"authorization\":\"Bearer c.";
    const char *at = strstr(request, key);
    if (!at) return answer("{\"error\":{\"status\":401,\"detail\":\"no c. token\"}}");
    at += strlen(key);
    char id[65];
    size_t n = 0;
    while (at[n] && at[n] != '"') {
        char c = at[n];
        int ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
        if (!ok || n >= 64) return answer("{\"error\":{\"status\":401,\"detail\":\"bad c. token\"}}");
        id[n] = c;
        n++;
    }
    if (n == 0) return answer("{\"error\":{\"status\":401,\"detail\":\"empty c. token\"}}");
    id[n] = 0;
    char out[256];
    /* id holds only [a-z0-9-]: nothing to escape. */
    strcpy(out, "{\"identity\":{\"id\":\"");
    strcat(out, id);
    strcat(out, "\",\"email\":null,\"groups\":[\"c-users\"]}}");
    return answer(out);
}

static void c_free_response(char *response) { free(response); }

static const LexAlignPlugin PLUGIN = {
    LEX_ALIGN_ABI_VERSION, PLUGIN_NAME, "authenticator", c_call, c_free_response,
};

const LexAlignPlugin *lex_align_plugin(void) { return &PLUGIN; }
