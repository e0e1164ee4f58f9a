#include "codec/http_date.h"

#include <string.h>

static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* Days since 1970-01-01 of a proleptic Gregorian date (month 1..12); no time zone involved. */
static int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int digits(const char *s, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static int name_index(const char *s, const char (*names)[4], int n) {
    for (int i = 0; i < n; i++) {
        if (memcmp(s, names[i], 3) == 0)
            return i;
    }
    return -1;
}

int fr_http_date_parse(const char *s, int64_t *out) {
    /* "Sun, 06 Nov 1994 08:49:37 GMT"
     *  0    5  8   12   17 20 23 26 */
    if (strlen(s) != FR_HTTP_DATE_LEN || name_index(s, days, 7) < 0 || s[3] != ',' ||
        s[4] != ' ' || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' || s[19] != ':' ||
        s[22] != ':' || s[25] != ' ' || memcmp(s + 26, "GMT", 3) != 0)
        return -1;
    int day, year, hour, min, sec, mon = name_index(s + 8, months, 12);
    if (mon < 0 || digits(s + 5, 2, &day) || digits(s + 12, 4, &year) ||
        digits(s + 17, 2, &hour) || digits(s + 20, 2, &min) || digits(s + 23, 2, &sec))
        return -1;
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (day < 1 || day > mdays[mon] || (mon == 1 && day == 29 && !leap) || hour > 23 ||
        min > 59 || sec > 60 || year < 1970)
        return -1;
    *out = days_from_civil(year, mon + 1, day) * 86400 + hour * 3600 + min * 60 + sec;
    return 0;
}

static void put2(char *p, int v) {
    p[0] = (char)('0' + v / 10 % 10);
    p[1] = (char)('0' + v % 10);
}

void fr_http_date_format(int64_t t, char *out) {
    if (t < 0)
        t = 0;
    int64_t z = t / 86400 + 719468, secs = t % 86400;
    /* civil_from_days, the inverse of days_from_civil. */
    int64_t era = z / 146097, doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int d = (int)(doy - (153 * mp + 2) / 5 + 1);
    int m = (int)(mp < 10 ? mp + 3 : mp - 9);
    int64_t y = yoe + era * 400 + (m <= 2);
    int wday = (int)((t / 86400 + 4) % 7); /* 1970-01-01 was a Thursday */
    memcpy(out, days[wday], 3);
    memcpy(out + 3, ", ", 2);
    put2(out + 5, d);
    out[7] = ' ';
    memcpy(out + 8, months[m - 1], 3);
    out[11] = ' ';
    put2(out + 12, (int)(y / 100 % 100));
    put2(out + 14, (int)(y % 100));
    out[16] = ' ';
    put2(out + 17, (int)(secs / 3600));
    out[19] = ':';
    put2(out + 20, (int)(secs / 60 % 60));
    out[22] = ':';
    put2(out + 23, (int)(secs % 60));
    memcpy(out + 25, " GMT", 4);
    out[FR_HTTP_DATE_LEN] = '\0';
}

int fr_http_etag_match(const char *list, const char *etag) {
    size_t elen = strlen(etag);
    const char *p = list;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '\0')
            return 0;
        if (*p == '*')
            return 1;
        if (p[0] == 'W' && p[1] == '/')
            p += 2;
        if (*p != '"')
            return 0;
        const char *end = strchr(p + 1, '"');
        if (!end)
            return 0;
        size_t n = (size_t)(end - p) + 1;
        if (n == elen && memcmp(p, etag, n) == 0)
            return 1;
        p = end + 1;
    }
}
