#include "lua/script_text.h"

#include <stdio.h>
#include <string.h>

#include "base/util.h"

/* Reads a whole file; NULL when it cannot (the caller falls back to line 1). */
static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = fr_malloc(cap);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len - 1 == 0) {
            if (cap >= (8u << 20))
                break;
            cap *= 2;
            buf = fr_realloc(buf, cap);
        }
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

/* Length of a long bracket opening at s ("[[", "[=[", …), or 0; *level gets the '=' count. */
static size_t long_bracket(const char *s, int *level) {
    if (s[0] != '[')
        return 0;
    size_t i = 1;
    while (s[i] == '=')
        i++;
    if (s[i] != '[')
        return 0;
    *level = (int)(i - 1);
    return i + 1;
}

/* Blanks out comments and long strings in Lua source (newlines are kept, so line numbers
 * stay right), leaving code and short strings for the field search below. Best effort: the
 * script has already compiled, so the source is well formed. */
static void blank_comments(char *s) {
    char quote = 0;
    for (char *p = s; *p; p++) {
        if (quote) {
            if (*p == '\\' && p[1])
                p++;
            else if (*p == quote || *p == '\n')
                quote = 0;
            continue;
        }
        if (*p == '"' || *p == '\'') {
            quote = *p;
            continue;
        }
        int comment = p[0] == '-' && p[1] == '-';
        char *start = p;
        if (comment)
            p += 2;
        int level;
        size_t open = long_bracket(p, &level);
        if (open) {
            /* A long comment or a long string: find its closing bracket. */
            char *q = p + open;
            for (; *q; q++) {
                if (*q != ']')
                    continue;
                int k = 1;
                while (q[k] == '=')
                    k++;
                if (q[k] == ']' && k - 1 == level) {
                    q += k;
                    break;
                }
            }
            for (char *r = start; *r && r <= q; r++)
                if (*r != '\n')
                    *r = ' ';
            p = *q ? q : q - 1;
        } else if (comment) {
            while (*p && *p != '\n')
                *p++ = ' ';
            start[0] = start[1] = ' ';
            p--;
        } else {
            p = start;
        }
    }
}

static int ident_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

int fr_script_text_line(const char *src, const char *name) {
    if (!src)
        return 1;
    size_t n = strlen(name);
    int weak = 0;
    int line = 1;
    for (const char *p = src; *p; p++) {
        if (*p == '\n') {
            line++;
            continue;
        }
        const char *key = NULL;
        if ((p[0] == '"' || p[0] == '\'') && strncmp(p + 1, name, n) == 0 && p[n + 1] == p[0] &&
            p > src && p[-1] == '[')
            key = p + 1; /* ["name"] */
        else if (strncmp(p, name, n) == 0 && !ident_char(p[n]) && (p == src || !ident_char(p[-1])))
            key = p;
        if (!key)
            continue;
        const char *after = key + n + (key != p ? 2 : 0);
        while (*after == ' ' || *after == '\t')
            after++;
        int assigns = after[0] == '=' && after[1] != '=';
        const char *before = p;
        while (before > src && (before[-1] == ' ' || before[-1] == '\t'))
            before--;
        char prev = before > src ? before[-1] : '\n';
        if ((prev == '.' || prev == ':' || key != p) && assigns)
            return line;
        if (prev == '.' || prev == ':') {
            /* function route.name(...) */
            const char *q = before - 1;
            while (q > src && ident_char(q[-1]))
                q--;
            while (q > src && (q[-1] == ' ' || q[-1] == '\t'))
                q--;
            if (q - src >= 8 && strncmp(q - 8, "function", 8) == 0)
                return line;
        }
        if (assigns && (prev == '{' || prev == ',' || prev == ';' || prev == '\n' || prev == '[') &&
            !weak) {
            /* `name = …` in a constructor (or a plain assignment): keep looking for a surer
             * match, but remember this one. */
            weak = line;
        }
    }
    return weak ? weak : 1;
}

char *fr_script_text_read(const char *path) {
    char *text = slurp(path);
    if (text)
        blank_comments(text);
    return text;
}
