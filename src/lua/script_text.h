/* A route script's source text, searched for the line that defines a field, so that a message
 * about a field of the script's table names that line. Text only: by the time a message needs
 * a line, the script has compiled and run. */
#ifndef FR_SCRIPT_TEXT_H
#define FR_SCRIPT_TEXT_H

/* Reads the file at path with its comments and long strings blanked out (newlines kept, so line
 * numbers stay right). Returns an owned string, or NULL when the file cannot be read. */
char *fr_script_text_read(const char *path);

/* The line on which a route script defines the field `name`: `route.name = …`,
 * `function route.name(…)`, `name = …` inside the table constructor or `["name"] = …`. The
 * returned table is usually built up that way, so this finds the line in practice; when it
 * does not, line 1 is at least the right file. src is what fr_script_text_read returned (1
 * when it is NULL). */
int fr_script_text_line(const char *src, const char *name);

#endif
