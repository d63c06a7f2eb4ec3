/*
 * lex_align_plugin.h — the C ABI of lex-align daemon plugins, version 1.
 *
 * A plugin is a shared library (.so, .dylib on macOS) placed in one of the
 * directories of LEXALIGN_PLUGIN_DIRS. It exports exactly one symbol,
 * `lex_align_plugin`, returning a pointer to a LexAlignPlugin that stays
 * valid for the life of the process (the daemon never unloads a plugin).
 *
 * Every message is one NUL-terminated UTF-8 JSON object; the messages and
 * their versioning are documented in docs/plugins.md.
 *
 * Ownership:
 *   - request_json belongs to the daemon and is valid only during `call`;
 *     the plugin must copy anything it keeps.
 *   - The string `call` returns belongs to the plugin. The daemon reads it,
 *     then passes it, exactly once, to `free_response` of the same plugin.
 *     `call` must never return NULL (answer an {"error":...} object instead;
 *     a NULL answer is treated as a failed call).
 *   - name and kind are static strings owned by the plugin.
 *
 * Threading:
 *   - `call` may be called from several daemon threads at once, and for
 *     different requests concurrently: it must be thread-safe.
 *   - The first call is always {"op":"configure",...}; it is made once,
 *     before any other op.
 *   - A call that overruns the daemon's timeout is abandoned, not
 *     cancelled: its thread is left to finish. Its answer is then freed
 *     and discarded.
 *
 * Versioning: the daemon reads abi_version before anything else in the
 * struct and refuses a library whose version it does not implement.
 */
#ifndef LEX_ALIGN_PLUGIN_H
#define LEX_ALIGN_PLUGIN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LEX_ALIGN_ABI_VERSION 1

typedef struct LexAlignPlugin {
    uint32_t abi_version;        /* LEX_ALIGN_ABI_VERSION */
    const char *name;            /* [a-z0-9_-]+, unique among plugins */
    const char *kind;            /* "authenticator" or "proposer" */
    /* One UTF-8 JSON request in, one UTF-8 JSON response out, both
       NUL-terminated; the response stays the plugin's until passed
       back to free_response. May be called from several threads. */
    char *(*call)(const char *request_json);
    void (*free_response)(char *response_json);
} LexAlignPlugin;

/* The one exported entry point. */
const LexAlignPlugin *lex_align_plugin(void);

#ifdef __cplusplus
}
#endif

#endif /* LEX_ALIGN_PLUGIN_H */
