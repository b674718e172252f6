/* rtcap._speedups: compiled fast paths of the kernel, each with a pure-Python reference.
 *
 * scan_market_frame reads the commonest frames of all, one SignalR GatewayTrade, GatewayQuote
 * or GatewayDepth record of a contract the codec already named, straight from its bytes into
 * the prints, Quote or DepthUpdate the pure decoder would build, without making the dicts of a
 * general JSON parse. It accepts only a strict subset of what orjson accepts (no escapes, no
 * non-ASCII bytes, no duplicate known keys, no nested values it does not read, canonical
 * timestamps, numbers that fit) and gives up on anything else, so the caller falls back to
 * the pure-Python path and every unusual frame, valid or not, is decoded (or refused) exactly
 * as before. projectx_trades(payload, symbols) exposes its trade half.
 *
 * projectx_decode(symbols, general, frame, sink) is the codec's decode_into around it: a frame
 * it reads goes straight to the sink, any other to the pure-Python decoder.
 *
 * frames_from_arrays(cls, start, length, specs) builds the Frame objects of a capture slice
 * straight from its Arrow buffers, setting the __slots__ of each new object as its dataclass
 * __init__ would, instead of turning every column into a list first and calling __init__ per
 * row.
 *
 * frame_columns(frames, cls, specs) is the reverse for the journal: the Arrow buffers of a
 * block of Frame objects in one pass.
 *
 * TradeFold is the pipeline's trade handler for the commonest call of all: prints that fall
 * inside every forming bar of their instrument, which only move the bar builder's accumulator
 * and the instrument's counters. It folds those without running Python, and hands every other
 * call to the pure-Python handler it wraps.
 *
 * apply_levels is OrderBook.apply_levels, the per-level loop of every depth message.
 *
 * render_rows is storage/shapes.py's render: the exact bytes of a compacted capture's frames
 * from their shapes and typed columns, a row group at a time, without the GIL.
 *
 * Numbers go through PyOS_string_to_double, which is what float() uses: correctly rounded and
 * independent of the C locale, like orjson's own parser. Timestamps are the gateway's
 * "YYYY-MM-DDTHH:MM:SS.mmmZ", with every field checked against the calendar.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <structmember.h>

typedef struct {
    const char *p;
    const char *end;
} Cursor;

static PyObject *SIDE_BUY;  /* "buy": TRADE_SIDES[0] */
static PyObject *SIDE_SELL; /* "sell": TRADE_SIDES[1] */

static inline void skip_ws(Cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static inline int eat(Cursor *c, char ch) {
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* After a member of an object or array: 1 when a comma says another follows, 0 at the
 * closing bracket, -1 for anything else. */
static inline int next_member(Cursor *c, char close) {
    if (eat(c, ','))
        return 1;
    return eat(c, close) ? 0 : -1;
}

/* A string without escapes, control characters or non-ASCII bytes; start and len: its body. */
static int scan_string(Cursor *c, const char **start, Py_ssize_t *len) {
    skip_ws(c);
    if (c->p >= c->end || *c->p != '"')
        return 0;
    const char *s = ++c->p;
    while (c->p < c->end) {
        unsigned char ch = (unsigned char)*c->p;
        if (ch == '"') {
            *start = s;
            *len = c->p - s;
            c->p++;
            return 1;
        }
        if (ch == '\\' || ch < 0x20 || ch >= 0x80)
            return 0;
        c->p++;
    }
    return 0;
}

/* A JSON number by the strict grammar; *is_int when it has no fraction or exponent. */
static int scan_number(Cursor *c, const char **start, Py_ssize_t *len, int *is_int) {
    skip_ws(c);
    const char *s = c->p;
    const char *p = s;
    const char *end = c->end;
    if (p < end && *p == '-')
        p++;
    if (p >= end)
        return 0;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    } else {
        return 0;
    }
    *is_int = 1;
    if (p < end && *p == '.') {
        *is_int = 0;
        p++;
        const char *digits = p;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
        if (p == digits)
            return 0;
    }
    if (p < end && (*p == 'e' || *p == 'E'))
        return 0; /* exponents are left to the general parser (range and rounding) */
    *start = s;
    *len = p - s;
    c->p = p;
    return 1;
}

/* An integer literal of at most 18 digits (always fits int64). */
static int number_to_int64(const char *s, Py_ssize_t len, long long *out) {
    int negative = 0;
    if (len > 0 && *s == '-') {
        negative = 1;
        s++;
        len--;
    }
    if (len < 1 || len > 18)
        return 0;
    long long value = 0;
    for (Py_ssize_t i = 0; i < len; i++)
        value = value * 10 + (s[i] - '0');
    *out = negative ? -value : value;
    return 1;
}

/* A number literal to a Python float, as orjson (or float() of its int) would give. */
static PyObject *number_to_float(const char *s, Py_ssize_t len, int is_int) {
    if (is_int) {
        long long value;
        if (!number_to_int64(s, len, &value))
            return NULL;
        return PyFloat_FromDouble((double)value);
    }
    char buffer[48];
    if (len >= (Py_ssize_t)sizeof(buffer))
        return NULL;
    memcpy(buffer, s, len);
    buffer[len] = '\0';
    char *stop = NULL;
    double value = PyOS_string_to_double(buffer, &stop, NULL);
    if (value == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return NULL;
    }
    if (stop != buffer + len)
        return NULL;
    return PyFloat_FromDouble(value);
}

/* Skip a value the fast path does not read: a string, a plain number, true, false or null. */
static int skip_scalar(Cursor *c) {
    skip_ws(c);
    if (c->p >= c->end)
        return 0;
    const char *s;
    Py_ssize_t len;
    int is_int;
    switch (*c->p) {
    case '"':
        return scan_string(c, &s, &len);
    case 't':
        if (c->end - c->p >= 4 && memcmp(c->p, "true", 4) == 0) {
            c->p += 4;
            return 1;
        }
        return 0;
    case 'f':
        if (c->end - c->p >= 5 && memcmp(c->p, "false", 5) == 0) {
            c->p += 5;
            return 1;
        }
        return 0;
    case 'n':
        if (c->end - c->p >= 4 && memcmp(c->p, "null", 4) == 0) {
            c->p += 4;
            return 1;
        }
        return 0;
    default:
        if (!scan_number(c, &s, &len, &is_int))
            return 0;
        /* an integer too long for 64 bits is the general parser's to judge */
        return !is_int || len <= 18;
    }
}

static inline int is_null(Cursor *c) {
    skip_ws(c);
    if (c->end - c->p >= 4 && memcmp(c->p, "null", 4) == 0) {
        c->p += 4;
        return 1;
    }
    return 0;
}

static inline int two_digits(const char *s, int *out) {
    if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
        return 0;
    *out = (s[0] - '0') * 10 + (s[1] - '0');
    return 1;
}

/* Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static long long days_from_civil(int y, int m, int d) {
    y -= m <= 2;
    const long long era = (y >= 0 ? y : y - 399) / 400;
    const int yoe = (int)(y - era * 400);
    const int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC) to epoch ns; 0 when it is not exactly that shape. */
static int parse_stamp(const char *s, Py_ssize_t len, long long *out) {
    static const int month_days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (len != 24 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
        s[16] != ':' || s[19] != '.' || s[23] != 'Z')
        return 0;
    int c1, c2, month, day, hour, minute, second, m1, m2;
    if (!two_digits(s, &c1) || !two_digits(s + 2, &c2) || !two_digits(s + 5, &month) ||
        !two_digits(s + 8, &day) || !two_digits(s + 11, &hour) ||
        !two_digits(s + 14, &minute) || !two_digits(s + 17, &second) ||
        !two_digits(s + 20, &m1) || s[22] < '0' || s[22] > '9')
        return 0;
    m2 = s[22] - '0';
    int year = c1 * 100 + c2;
    /* the range int64 nanoseconds hold comfortably; other years take the general path */
    if (year < 1900 || year > 2200 || month < 1 || month > 12 || hour > 23 || minute > 59 ||
        second > 59)
        return 0;
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    int days_in_month = month_days[month - 1] + (month == 2 && leap);
    if (day < 1 || day > days_in_month)
        return 0;
    long long seconds = days_from_civil(year, month, day) * 86400LL + hour * 3600LL +
                        minute * 60LL + second;
    *out = seconds * 1000000000LL + (m1 * 10 + m2) * 1000000LL;
    return 1;
}

static inline int key_is(const char *s, Py_ssize_t len, const char *name) {
    size_t n = strlen(name);
    return (size_t)len == n && memcmp(s, name, n) == 0;
}

/* One print object: a new (price, volume, side, exch_ns) tuple, or NULL to fall back. */
static PyObject *scan_print(Cursor *c) {
    if (!eat(c, '{'))
        return NULL;
    PyObject *price = NULL, *volume = NULL, *side = NULL, *stamp = NULL;
    int seen_side = 0;
    if (eat(c, '}'))
        return NULL; /* no price: the general path reports the KeyError */
    for (;;) {
        const char *key;
        Py_ssize_t key_len;
        if (!scan_string(c, &key, &key_len) || !eat(c, ':'))
            goto fail;
        const char *s;
        Py_ssize_t len;
        int is_int;
        if (key_is(key, key_len, "price")) {
            if (price != NULL || !scan_number(c, &s, &len, &is_int))
                goto fail;
            price = number_to_float(s, len, is_int);
            if (price == NULL)
                goto fail;
        } else if (key_is(key, key_len, "volume")) {
            long long value;
            if (volume != NULL || !scan_number(c, &s, &len, &is_int) || !is_int ||
                !number_to_int64(s, len, &value))
                goto fail;
            volume = PyLong_FromLongLong(value);
            if (volume == NULL)
                goto fail;
        } else if (key_is(key, key_len, "type")) {
            long long value;
            if (seen_side)
                goto fail;
            seen_side = 1;
            if (is_null(c)) {
                side = Py_None;
            } else {
                if (!scan_number(c, &s, &len, &is_int) || !is_int ||
                    !number_to_int64(s, len, &value))
                    goto fail;
                side = value == 0 ? SIDE_BUY : value == 1 ? SIDE_SELL : Py_None;
            }
            Py_INCREF(side);
        } else if (key_is(key, key_len, "timestamp")) {
            if (stamp != NULL)
                goto fail;
            if (is_null(c)) {
                stamp = Py_None;
                Py_INCREF(stamp);
            } else {
                long long ns;
                if (!scan_string(c, &s, &len))
                    goto fail;
                if (len == 0) {
                    stamp = Py_None;
                    Py_INCREF(stamp);
                } else {
                    if (!parse_stamp(s, len, &ns))
                        goto fail;
                    stamp = PyLong_FromLongLong(ns);
                    if (stamp == NULL)
                        goto fail;
                }
            }
        } else if (!skip_scalar(c)) {
            goto fail;
        }
        int more = next_member(c, '}');
        if (more < 0)
            goto fail;
        if (!more)
            break;
    }
    if (price == NULL || volume == NULL)
        goto fail;
    if (side == NULL) {
        side = Py_None;
        Py_INCREF(side);
    }
    if (stamp == NULL) {
        stamp = Py_None;
        Py_INCREF(stamp);
    }
    PyObject *item = PyTuple_New(4);
    if (item == NULL)
        goto fail;
    PyTuple_SET_ITEM(item, 0, price);
    PyTuple_SET_ITEM(item, 1, volume);
    PyTuple_SET_ITEM(item, 2, side);
    PyTuple_SET_ITEM(item, 3, stamp);
    return item;
fail:
    Py_XDECREF(price);
    Py_XDECREF(volume);
    Py_XDECREF(side);
    Py_XDECREF(stamp);
    return NULL;
}

/* A number or null as optional_float gives it: a new float, or None. NULL to fall back. */
static PyObject *scan_optional_float(Cursor *c) {
    if (is_null(c)) {
        Py_INCREF(Py_None);
        return Py_None;
    }
    const char *s;
    Py_ssize_t len;
    int is_int;
    if (!scan_number(c, &s, &len, &is_int))
        return NULL;
    return number_to_float(s, len, is_int);
}

/* A number as to_number gives it (an integer stays int); NULL to fall back. */
static PyObject *scan_count(Cursor *c) {
    const char *s;
    Py_ssize_t len;
    int is_int;
    if (!scan_number(c, &s, &len, &is_int))
        return NULL;
    if (!is_int)
        return number_to_float(s, len, 0);
    long long value;
    if (!number_to_int64(s, len, &value))
        return NULL;
    return PyLong_FromLongLong(value);
}

/* A timestamp member: null or a string (*s NULL for null). 0 for anything else. */
static int scan_stamp_member(Cursor *c, const char **s, Py_ssize_t *len) {
    if (is_null(c)) {
        *s = NULL;
        *len = 0;
        return 1;
    }
    return scan_string(c, s, len);
}

/* "[item, ...]" (at least one): a new list of what read_item makes of each item (NULL, to
 * fall back, as soon as one fails). */
static PyObject *scan_array(Cursor *c, PyObject *(*read_item)(Cursor *, void *), void *state) {
    if (!eat(c, '['))
        return NULL;
    PyObject *list = PyList_New(0);
    if (list == NULL)
        return NULL;
    for (;;) {
        PyObject *item = read_item(c, state);
        if (item == NULL)
            goto fail;
        int appended = PyList_Append(list, item);
        Py_DECREF(item);
        if (appended < 0)
            goto fail;
        int more = next_member(c, ']');
        if (more < 0)
            goto fail;
        if (!more)
            return list;
    }
fail:
    Py_DECREF(list);
    return NULL;
}

static PyObject *read_print(Cursor *c, void *state) {
    (void)state;
    return scan_print(c);
}

/* The object of a GatewayQuote: a new (bid, ask, last, volume, exch_ns) tuple, each as
 * ProjectXCodec._quote reads it (the stamp is "timestamp", else "lastUpdated"). */
static PyObject *scan_quote(Cursor *c) {
    enum { BID, ASK, LAST, VOLUME, FIELDS };
    static const char *names[FIELDS] = {"bestBid", "bestAsk", "lastPrice", "volume"};
    PyObject *fields[FIELDS] = {NULL, NULL, NULL, NULL};
    const char *stamps[2] = {NULL, NULL}; /* timestamp, lastUpdated */
    Py_ssize_t stamp_lens[2] = {0, 0};
    int seen_stamps[2] = {0, 0};
    PyObject *result = NULL;
    if (!eat(c, '{'))
        return NULL;
    if (!eat(c, '}')) {
        for (;;) {
            const char *key;
            Py_ssize_t key_len;
            if (!scan_string(c, &key, &key_len) || !eat(c, ':'))
                goto done;
            int field = -1;
            for (int i = 0; i < FIELDS; i++)
                if (key_is(key, key_len, names[i]))
                    field = i;
            int stamp = key_is(key, key_len, "timestamp")     ? 0
                        : key_is(key, key_len, "lastUpdated") ? 1
                                                              : -1;
            if (field >= 0) {
                if (fields[field] != NULL || (fields[field] = scan_optional_float(c)) == NULL)
                    goto done;
            } else if (stamp >= 0) {
                if (seen_stamps[stamp] ||
                    !scan_stamp_member(c, &stamps[stamp], &stamp_lens[stamp]))
                    goto done;
                seen_stamps[stamp] = 1;
            } else if (!skip_scalar(c)) {
                goto done;
            }
            int more = next_member(c, '}');
            if (more < 0)
                goto done;
            if (!more)
                break;
        }
    }
    /* payload.get("timestamp") or payload.get("lastUpdated"): the first non-empty string */
    int chosen = stamp_lens[0] > 0 ? 0 : stamp_lens[1] > 0 ? 1 : -1;
    PyObject *exch_ns;
    if (chosen < 0) {
        exch_ns = Py_None;
        Py_INCREF(exch_ns);
    } else {
        long long ns;
        if (!parse_stamp(stamps[chosen], stamp_lens[chosen], &ns))
            goto done;
        if ((exch_ns = PyLong_FromLongLong(ns)) == NULL)
            goto done;
    }
    result = PyTuple_New(FIELDS + 1);
    if (result == NULL) {
        Py_DECREF(exch_ns);
        goto done;
    }
    for (int i = 0; i < FIELDS; i++) {
        if (fields[i] == NULL) {
            Py_INCREF(Py_None);
            fields[i] = Py_None;
        }
        PyTuple_SET_ITEM(result, i, fields[i]);
        fields[i] = NULL;
    }
    PyTuple_SET_ITEM(result, FIELDS, exch_ns);
done:
    for (int i = 0; i < FIELDS; i++)
        Py_XDECREF(fields[i]);
    return result;
}

static PyObject *LEVEL_TYPE, *DEPTH_SIDES, *SIDE_OTHER, *QUOTE_TYPE, *UPDATE_TYPE;

typedef struct {
    long long latest; /* max(latest or 0, stamp) over the stamped levels so far */
    int stamped;
} DepthStamp;

/* One level object of a GatewayDepth: a new DepthLevel as ProjectXCodec._depth builds it;
 * a stamp it carries raises the DepthStamp. */
static PyObject *scan_level(Cursor *c, void *state) {
    long long *latest = &((DepthStamp *)state)->latest;
    int *stamped = &((DepthStamp *)state)->stamped;
    PyObject *price = NULL, *volume = NULL, *size = NULL, *kind = NULL, *level = NULL;
    int seen_volume = 0, seen_size = 0, seen_stamp = 0;
    if (!eat(c, '{') || eat(c, '}'))
        return NULL; /* {}: no price, the general path reports it */
    for (;;) {
        const char *key, *s;
        Py_ssize_t key_len, len;
        int is_int;
        if (!scan_string(c, &key, &key_len) || !eat(c, ':'))
            goto done;
        if (key_is(key, key_len, "price")) {
            if (price != NULL || !scan_number(c, &s, &len, &is_int) ||
                (price = number_to_float(s, len, is_int)) == NULL)
                goto done;
        } else if (key_is(key, key_len, "volume") || key_is(key, key_len, "size")) {
            int is_volume = key_len == 6;
            if (is_volume ? seen_volume : seen_size)
                goto done;
            PyObject *value;
            if (is_null(c)) {
                value = Py_None;
                Py_INCREF(value);
            } else if ((value = scan_count(c)) == NULL) {
                goto done;
            }
            if (is_volume) {
                seen_volume = 1;
                volume = value;
            } else {
                seen_size = 1;
                size = value;
            }
        } else if (key_is(key, key_len, "type")) {
            long long value;
            if (kind != NULL)
                goto done;
            if (is_null(c)) {
                kind = Py_None;
                Py_INCREF(kind);
            } else if (!scan_number(c, &s, &len, &is_int) || !is_int ||
                       !number_to_int64(s, len, &value) ||
                       (kind = PyLong_FromLongLong(value)) == NULL) {
                goto done;
            }
        } else if (key_is(key, key_len, "timestamp")) {
            if (seen_stamp || !scan_stamp_member(c, &s, &len))
                goto done;
            seen_stamp = 1;
            if (len > 0) {
                long long ns;
                if (!parse_stamp(s, len, &ns))
                    goto done;
                long long floor = *stamped ? *latest : 0; /* latest = max(latest or 0, ns) */
                *latest = ns > floor ? ns : floor;
                *stamped = 1;
            }
        } else if (!skip_scalar(c)) {
            goto done;
        }
        int more = next_member(c, '}');
        if (more < 0)
            goto done;
        if (!more)
            break;
    }
    if (price == NULL)
        goto done;
    /* item.get("volume", item.get("size")); a null (or absent) size is 0 */
    PyObject *amount = seen_volume ? volume : size;
    if (amount == NULL || amount == Py_None)
        amount = PyLong_FromLong(0);
    else
        Py_INCREF(amount);
    if (amount == NULL)
        goto done;
    if (kind == NULL) {
        kind = Py_None;
        Py_INCREF(kind);
    }
    PyObject *side = kind == Py_None ? NULL : PyDict_GetItemWithError(DEPTH_SIDES, kind);
    if (side == NULL) {
        if (PyErr_Occurred()) {
            Py_DECREF(amount);
            goto done;
        }
        side = SIDE_OTHER;
    }
    PyObject *call[4] = {price, amount, side, kind};
    level = PyObject_Vectorcall(LEVEL_TYPE, call, 4, NULL);
    Py_DECREF(amount);
done:
    Py_XDECREF(price);
    Py_XDECREF(volume);
    Py_XDECREF(size);
    Py_XDECREF(kind);
    return level;
}

/* "[level, ...]" of a GatewayDepth: a new (levels, exch_ns) tuple. */
static PyObject *scan_levels(Cursor *c) {
    DepthStamp stamp = {0, 0};
    PyObject *list = scan_array(c, scan_level, &stamp);
    if (list == NULL)
        return NULL;
    PyObject *exch_ns = stamp.stamped ? PyLong_FromLongLong(stamp.latest)
                                      : (Py_INCREF(Py_None), Py_None);
    PyObject *result = exch_ns == NULL ? NULL : PyTuple_Pack(2, list, exch_ns);
    Py_DECREF(list);
    Py_XDECREF(exch_ns);
    return result;
}

enum { TARGET_NONE = 0, TARGET_TRADE, TARGET_QUOTE, TARGET_DEPTH };

/* A plain one-record market frame of a known contract: its target, the trader's symbol
 * (borrowed from symbols) and what its second argument holds (new): prints for a trade, the
 * fields of a quote, (levels, exch_ns) for depth. TARGET_NONE, with no exception set, for any
 * other frame. */
static int scan_market_frame(PyObject *payload, PyObject *symbols, PyObject **symbol,
                             PyObject **value) {
    if (!PyBytes_CheckExact(payload))
        return TARGET_NONE;
    Cursor c = {PyBytes_AS_STRING(payload), PyBytes_AS_STRING(payload) + PyBytes_GET_SIZE(payload)};
    PyObject *contract = NULL, *found = NULL;
    int seen_type = 0, target = TARGET_NONE;
    if (!eat(&c, '{'))
        goto fallback;
    for (;;) {
        const char *key, *s;
        Py_ssize_t key_len, len;
        int is_int;
        if (!scan_string(&c, &key, &key_len) || !eat(&c, ':'))
            goto fallback;
        if (key_is(key, key_len, "type")) {
            if (seen_type || !scan_number(&c, &s, &len, &is_int) || !is_int || len != 1 ||
                *s != '1')
                goto fallback;
            seen_type = 1;
        } else if (key_is(key, key_len, "target")) {
            if (target != TARGET_NONE || !scan_string(&c, &s, &len))
                goto fallback;
            target = key_is(s, len, "GatewayTrade")   ? TARGET_TRADE
                     : key_is(s, len, "GatewayQuote") ? TARGET_QUOTE
                     : key_is(s, len, "GatewayDepth") ? TARGET_DEPTH
                                                      : -1;
            if (target < 0)
                goto fallback;
        } else if (key_is(key, key_len, "arguments")) {
            /* [contract, value]: exactly two arguments, read as the target says (so the
             * target must come first, as the gateway sends it) */
            if (contract != NULL || target == TARGET_NONE || !eat(&c, '[') ||
                !scan_string(&c, &s, &len) || !eat(&c, ','))
                goto fallback;
            if ((contract = PyUnicode_DecodeASCII(s, len, NULL)) == NULL)
                goto fallback;
            found = target == TARGET_TRADE   ? scan_array(&c, read_print, NULL)
                    : target == TARGET_QUOTE ? scan_quote(&c)
                                             : scan_levels(&c);
            if (found == NULL || !eat(&c, ']'))
                goto fallback;
        } else if (!skip_scalar(&c)) {
            goto fallback;
        }
        int more = next_member(&c, '}');
        if (more < 0)
            goto fallback;
        if (!more)
            break;
    }
    /* the record must be the frame's only one: "...}\x1e" and nothing after */
    skip_ws(&c);
    if (!seen_type || found == NULL || c.end - c.p != 1 || *c.p != '\x1e')
        goto fallback;
    /* the trader's symbol of a contract the codec already knows; a new contract is named
     * (and remembered) by the general path */
    PyObject *name = PyDict_GetItemWithError(symbols, contract);
    if (name == NULL || !PyUnicode_CheckExact(name) || PyUnicode_GET_LENGTH(name) == 0)
        goto fallback;
    Py_DECREF(contract);
    *symbol = name;
    *value = found;
    return target;
fallback:
    Py_XDECREF(contract);
    Py_XDECREF(found);
    if (PyErr_Occurred())
        PyErr_Clear(); /* any failure here only means: take the general path */
    return TARGET_NONE;
}

static PyObject *projectx_trades(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 2 || !PyDict_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "projectx_trades(payload, symbols: dict)");
        return NULL;
    }
    PyObject *symbol, *value;
    int target = scan_market_frame(args[0], args[1], &symbol, &value);
    if (target == TARGET_NONE)
        Py_RETURN_NONE;
    if (target != TARGET_TRADE) {
        Py_DECREF(value);
        Py_RETURN_NONE;
    }
    PyObject *result = PyTuple_Pack(2, symbol, value);
    Py_DECREF(value);
    return result;
}

static PyObject *projectx_types(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 4 || !PyDict_CheckExact(args[3])) {
        PyErr_SetString(PyExc_TypeError,
                        "projectx_types(Quote, DepthLevel, DepthUpdate, depth_sides: dict)");
        return NULL;
    }
    PyObject **slots[4] = {&QUOTE_TYPE, &LEVEL_TYPE, &UPDATE_TYPE, &DEPTH_SIDES};
    for (int i = 0; i < 4; i++) {
        Py_INCREF(args[i]);
        Py_XSETREF(*slots[i], args[i]);
    }
    Py_RETURN_NONE;
}

static PyObject *STR_PAYLOAD, *STR_RECV_NS, *STR_SEQ, *STR_TRADE, *STR_TRADES, *STR_QUOTE,
    *STR_DEPTH;

/* projectx_decode(symbols, general, frame, sink): the codec's decode_into. A plain trade frame
 * goes straight to sink.trade (one print) or sink.trades, a plain quote or depth frame (once
 * projectx_types named their classes) to sink.quote or sink.depth; any other frame to
 * general(frame, sink). */
static PyObject *projectx_decode(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 4 || !PyDict_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "projectx_decode(symbols: dict, general, frame, sink)");
        return NULL;
    }
    PyObject *general = args[1], *frame = args[2], *sink = args[3];
    PyObject *payload = PyObject_GetAttr(frame, STR_PAYLOAD);
    if (payload == NULL)
        return NULL;
    PyObject *symbol = NULL, *value = NULL;
    int target = scan_market_frame(payload, args[0], &symbol, &value);
    Py_DECREF(payload);
    if (target != TARGET_NONE && target != TARGET_TRADE && QUOTE_TYPE == NULL) {
        Py_DECREF(value);
        target = TARGET_NONE;
    }
    if (target == TARGET_NONE)
        return PyObject_Vectorcall(general, args + 2, 2, NULL);
    PyObject *recv_ns = PyObject_GetAttr(frame, STR_RECV_NS);
    PyObject *seq = recv_ns == NULL ? NULL : PyObject_GetAttr(frame, STR_SEQ);
    PyObject *result = NULL;
    if (seq == NULL) {
        /* the error of the missing attribute propagates */
    } else if (target == TARGET_TRADE && PyList_GET_SIZE(value) == 1) {
        PyObject *item = PyList_GET_ITEM(value, 0);
        PyObject *call[8] = {sink,
                             symbol,
                             PyTuple_GET_ITEM(item, 0),
                             PyTuple_GET_ITEM(item, 1),
                             PyTuple_GET_ITEM(item, 2),
                             PyTuple_GET_ITEM(item, 3),
                             recv_ns,
                             seq};
        result = PyObject_VectorcallMethod(STR_TRADE, call, 8 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                           NULL);
    } else if (target == TARGET_TRADE) {
        PyObject *call[5] = {sink, symbol, value, recv_ns, seq};
        result = PyObject_VectorcallMethod(STR_TRADES, call, 5 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                           NULL);
    } else {
        PyObject *event;
        if (target == TARGET_QUOTE) {
            PyObject *fields[8] = {symbol,
                                   PyTuple_GET_ITEM(value, 0),
                                   PyTuple_GET_ITEM(value, 1),
                                   PyTuple_GET_ITEM(value, 2),
                                   PyTuple_GET_ITEM(value, 3),
                                   PyTuple_GET_ITEM(value, 4),
                                   recv_ns,
                                   seq};
            event = PyObject_Vectorcall(QUOTE_TYPE, fields, 8, NULL);
        } else {
            PyObject *fields[5] = {symbol, PyTuple_GET_ITEM(value, 0), PyTuple_GET_ITEM(value, 1),
                                   recv_ns, seq};
            event = PyObject_Vectorcall(UPDATE_TYPE, fields, 5, NULL);
        }
        if (event != NULL) {
            PyObject *call[2] = {sink, event};
            result = PyObject_VectorcallMethod(target == TARGET_QUOTE ? STR_QUOTE : STR_DEPTH,
                                               call, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
            Py_DECREF(event);
        }
    }
    Py_XDECREF(recv_ns);
    Py_XDECREF(seq);
    Py_DECREF(value);
    return result;
}


/* --- frames from Arrow buffers ------------------------------------------------------------ */

enum { COL_INT = 0, COL_DICT = 1, COL_BINARY = 2 };

typedef struct {
    int kind;
    int width;          /* bytes per integer, index or offset */
    Py_ssize_t offset;  /* the array's slice offset */
    Py_buffer validity; /* .buf NULL when every value is valid */
    Py_buffer values;   /* integers, dictionary indices or binary offsets */
    Py_buffer data;     /* binary bytes */
    PyObject *words;    /* dictionary values (a list) */
    Py_ssize_t slot;    /* where the object keeps this field */
} Column;

static inline long long read_int(const char *base, int width, Py_ssize_t index) {
    switch (width) {
    case 1:
        return ((const int8_t *)base)[index];
    case 2:
        return ((const int16_t *)base)[index];
    case 4:
        return ((const int32_t *)base)[index];
    default:
        return ((const int64_t *)base)[index];
    }
}

static void release_columns(Column *columns, Py_ssize_t count) {
    for (Py_ssize_t i = 0; i < count; i++) {
        if (columns[i].validity.obj != NULL)
            PyBuffer_Release(&columns[i].validity);
        if (columns[i].values.obj != NULL)
            PyBuffer_Release(&columns[i].values);
        if (columns[i].data.obj != NULL)
            PyBuffer_Release(&columns[i].data);
    }
}

/* One column's value at row i: a new reference, NULL with an exception set if it is out of
 * its buffers' bounds (the caller then returns None and the pure path reads the column). */
static PyObject *column_value(Column *col, Py_ssize_t i) {
    Py_ssize_t at = col->offset + i;
    if (col->validity.buf != NULL) {
        if ((at >> 3) >= col->validity.len)
            goto bounds;
        if (!((((const unsigned char *)col->validity.buf)[at >> 3] >> (at & 7)) & 1))
            Py_RETURN_NONE;
    }
    if (col->kind == COL_BINARY) {
        if ((at + 2) * col->width > col->values.len)
            goto bounds;
        long long lo = read_int(col->values.buf, col->width, at);
        long long hi = read_int(col->values.buf, col->width, at + 1);
        if (lo < 0 || hi < lo || hi > col->data.len)
            goto bounds;
        return PyBytes_FromStringAndSize((const char *)col->data.buf + lo, hi - lo);
    }
    if ((at + 1) * col->width > col->values.len)
        goto bounds;
    long long value = read_int(col->values.buf, col->width, at);
    if (col->kind == COL_INT)
        return PyLong_FromLongLong(value);
    if (value < 0 || value >= PyList_GET_SIZE(col->words))
        goto bounds;
    PyObject *word = PyList_GET_ITEM(col->words, value);
    Py_INCREF(word);
    return word;
bounds:
    PyErr_SetString(PyExc_IndexError, "value outside its Arrow buffers");
    return NULL;
}

/* The object field at a byte offset of an object (a __slots__ member, found once). */
#define SLOT(obj, offset) (*(PyObject **)((char *)(obj) + (offset)))

/* A Python int as a long long, 0 when it is not an exact int that fits. */
static inline int exact_int(PyObject *v, long long *out) {
    if (!PyLong_CheckExact(v))
        return 0;
    int overflow;
    *out = PyLong_AsLongLongAndOverflow(v, &overflow);
    return !overflow;
}

/* The offset at which instances of cls keep the slot `name` (a writable object slot inside
 * the instance), or -1 (perhaps with an exception set, which the caller clears). */
static Py_ssize_t slot_offset(PyTypeObject *cls, PyObject *name) {
    PyObject *descr = PyObject_GetAttr((PyObject *)cls, name);
    if (descr == NULL)
        return -1;
    Py_ssize_t offset = -1;
    if (Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type == T_OBJECT_EX && !(member->flags & READONLY) &&
            member->offset >= (Py_ssize_t)sizeof(PyObject) &&
            member->offset + (Py_ssize_t)sizeof(PyObject *) <= cls->tp_basicsize)
            offset = member->offset;
    }
    Py_DECREF(descr);
    return offset;
}

static PyObject *frames_from_arrays(PyObject *module, PyObject *args) {
    (void)module;
    PyTypeObject *cls;
    Py_ssize_t start, length;
    PyObject *specs;
    if (!PyArg_ParseTuple(args, "O!nnO!", &PyType_Type, &cls, &start, &length, &PyList_Type,
                          &specs))
        return NULL;
    Py_ssize_t count = PyList_GET_SIZE(specs);
    if (count < 1 || count > 32 || start < 0 || length < 0 || cls->tp_alloc == NULL)
        Py_RETURN_NONE;
    Column columns[32];
    memset(columns, 0, sizeof(columns));
    PyObject *result = NULL;
    for (Py_ssize_t c = 0; c < count; c++) {
        /* (field name, kind, width, offset, validity or None, values, data or words or None) */
        PyObject *name, *validity, *values, *extra;
        Column *col = &columns[c];
        if (!PyArg_ParseTuple(PyList_GET_ITEM(specs, c), "Uiin" "OOO", &name, &col->kind,
                              &col->width, &col->offset, &validity, &values, &extra))
            goto fallback;
        if ((col->width != 1 && col->width != 2 && col->width != 4 && col->width != 8) ||
            col->offset < 0 || col->kind < COL_INT || col->kind > COL_BINARY)
            goto fallback;
        col->slot = slot_offset(cls, name);
        if (col->slot < 0)
            goto fallback;
        if (validity != Py_None &&
            PyObject_GetBuffer(validity, &col->validity, PyBUF_SIMPLE) < 0)
            goto fallback;
        if (PyObject_GetBuffer(values, &col->values, PyBUF_SIMPLE) < 0)
            goto fallback;
        if (col->kind == COL_BINARY) {
            if (PyObject_GetBuffer(extra, &col->data, PyBUF_SIMPLE) < 0)
                goto fallback;
        } else if (col->kind == COL_DICT) {
            if (!PyList_CheckExact(extra))
                goto fallback;
            col->words = extra;
        }
    }
    result = PyList_New(length);
    if (result == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < length; i++) {
        PyObject *frame = cls->tp_alloc(cls, 0);
        if (frame == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyList_SET_ITEM(result, i, frame);
        for (Py_ssize_t c = 0; c < count; c++) {
            PyObject *value = column_value(&columns[c], start + i);
            if (value == NULL) {
                Py_CLEAR(result);
                goto fallback;
            }
            SLOT(frame, columns[c].slot) = value;
        }
    }
    goto done;
fallback:
    PyErr_Clear();
    Py_XDECREF(result);
    result = Py_None;
    Py_INCREF(result);
done:
    release_columns(columns, count);
    return result;
}

/* --- columns from frames (the journal's memtable) ----------------------------------------- */

/* What frame_columns makes of one field: the Arrow buffers of an int64 or int32 column, of a
 * binary column (int32 offsets), or of a dictionary-encoded string column (int32 indices into
 * its distinct values in order of first appearance, as pyarrow's dictionary_encode gives). */
enum { OUT_INT64 = 0, OUT_INT32 = 1, OUT_BINARY = 2, OUT_WORDS = 3 };

/* A validity bitmap for n rows, all clear (NULL with an exception set on failure). */
static PyObject *new_bitmap(Py_ssize_t n) {
    PyObject *bits = PyBytes_FromStringAndSize(NULL, (n + 7) / 8);
    if (bits != NULL)
        memset(PyBytes_AS_STRING(bits), 0, (n + 7) / 8);
    return bits;
}

static inline void mark_valid(PyObject *bits, Py_ssize_t i) {
    ((unsigned char *)PyBytes_AS_STRING(bits))[i >> 3] |= (unsigned char)(1 << (i & 7));
}

/* The (validity or None, null count) pair of a column: None when no row is null, as pyarrow
 * leaves it, so both builds give the same buffers. Steals bits. */
static PyObject *validity_of(PyObject *bits, Py_ssize_t nulls) {
    if (bits == NULL || nulls == 0) {
        Py_XDECREF(bits);
        return Py_BuildValue("(On)", Py_None, nulls);
    }
    return Py_BuildValue("(Nn)", bits, nulls);
}

/* Returns a new reference, Py_None (a value of a kind it does not build: the caller uses the
 * pure path) or NULL with an exception set. */
static PyObject *int_column(PyObject **rows, Py_ssize_t n, Py_ssize_t slot, int wide,
                            int nullable) {
    int width = wide ? 8 : 4;
    PyObject *result = NULL;
    PyObject *values = PyBytes_FromStringAndSize(NULL, n * width);
    PyObject *bits = nullable ? new_bitmap(n) : NULL;
    if (values == NULL || (nullable && bits == NULL))
        goto fail;
    char *out = PyBytes_AS_STRING(values);
    Py_ssize_t nulls = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *value = SLOT(rows[i], slot);
        long long number = 0;
        if (value == Py_None && nullable) {
            nulls++;
        } else if (value != NULL && exact_int(value, &number)) {
            if (!wide && (number < INT32_MIN || number > INT32_MAX))
                goto other;
            if (bits != NULL)
                mark_valid(bits, i);
        } else {
            goto other;
        }
        if (wide) {
            int64_t v = number;
            memcpy(out + i * 8, &v, 8);
        } else {
            int32_t v = (int32_t)number;
            memcpy(out + i * 4, &v, 4);
        }
    }
    PyObject *validity = validity_of(bits, nulls);
    if (validity == NULL) {
        Py_DECREF(values);
        return NULL;
    }
    return Py_BuildValue("(NN)", values, validity);
other:
    result = Py_None;
    Py_INCREF(result);
fail:
    Py_XDECREF(values);
    Py_XDECREF(bits);
    return result;
}

static PyObject *binary_column(PyObject **rows, Py_ssize_t n, Py_ssize_t slot) {
    Py_ssize_t total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *value = SLOT(rows[i], slot);
        if (value == NULL || !PyBytes_CheckExact(value))
            Py_RETURN_NONE;
        total += PyBytes_GET_SIZE(value);
        if (total > INT32_MAX) /* past int32 offsets: pyarrow chunks it; the pure path does */
            Py_RETURN_NONE;
    }
    PyObject *offsets = PyBytes_FromStringAndSize(NULL, (n + 1) * 4);
    PyObject *data = PyBytes_FromStringAndSize(NULL, total);
    if (offsets == NULL || data == NULL) {
        Py_XDECREF(offsets);
        Py_XDECREF(data);
        return NULL;
    }
    char *at = PyBytes_AS_STRING(offsets), *bytes = PyBytes_AS_STRING(data);
    int32_t end = 0;
    memcpy(at, &end, 4);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *value = SLOT(rows[i], slot);
        Py_ssize_t size = PyBytes_GET_SIZE(value);
        memcpy(bytes + end, PyBytes_AS_STRING(value), size);
        end += (int32_t)size;
        memcpy(at + (i + 1) * 4, &end, 4);
    }
    return Py_BuildValue("(NN)", offsets, data);
}

static PyObject *word_column(PyObject **rows, Py_ssize_t n, Py_ssize_t slot, int nullable) {
    PyObject *result = NULL;
    PyObject *indices = PyBytes_FromStringAndSize(NULL, n * 4);
    PyObject *bits = nullable ? new_bitmap(n) : NULL;
    PyObject *words = PyList_New(0);
    PyObject *index_of = PyDict_New();
    if (indices == NULL || (nullable && bits == NULL) || words == NULL || index_of == NULL)
        goto fail;
    char *out = PyBytes_AS_STRING(indices);
    Py_ssize_t nulls = 0;
    PyObject *last = NULL; /* most rows repeat the previous row's word: skip the lookup */
    int32_t last_index = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *value = SLOT(rows[i], slot);
        int32_t index = 0;
        if (value == Py_None && nullable) {
            nulls++;
        } else if (value != NULL && PyUnicode_CheckExact(value)) {
            if (value == last) {
                index = last_index;
            } else {
                PyObject *known = PyDict_GetItemWithError(index_of, value);
                if (known != NULL) {
                    index = (int32_t)PyLong_AsLong(known);
                } else {
                    if (PyErr_Occurred())
                        goto fail;
                    index = (int32_t)PyList_GET_SIZE(words);
                    PyObject *number = PyLong_FromLong(index);
                    if (number == NULL || PyDict_SetItem(index_of, value, number) < 0 ||
                        PyList_Append(words, value) < 0) {
                        Py_XDECREF(number);
                        goto fail;
                    }
                    Py_DECREF(number);
                }
                last = value;
                last_index = index;
            }
            if (bits != NULL)
                mark_valid(bits, i);
        } else {
            goto other;
        }
        memcpy(out + i * 4, &index, 4);
    }
    Py_DECREF(index_of);
    PyObject *validity = validity_of(bits, nulls);
    if (validity == NULL) {
        Py_DECREF(indices);
        Py_DECREF(words);
        return NULL;
    }
    return Py_BuildValue("(NNN)", indices, validity, words);
other:
    result = Py_None;
    Py_INCREF(result);
fail:
    Py_XDECREF(indices);
    Py_XDECREF(bits);
    Py_XDECREF(words);
    Py_XDECREF(index_of);
    return result;
}

static PyObject *frame_columns(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *frames, *specs;
    PyTypeObject *cls;
    if (!PyArg_ParseTuple(args, "O!O!O!", &PyList_Type, &frames, &PyType_Type, &cls,
                          &PyTuple_Type, &specs))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(frames), count = PyTuple_GET_SIZE(specs);
    PyObject **rows = PySequence_Fast_ITEMS(frames);
    for (Py_ssize_t i = 0; i < n; i++)
        if (!Py_IS_TYPE(rows[i], cls))
            Py_RETURN_NONE;
    PyObject *result = PyTuple_New(count);
    if (result == NULL)
        return NULL;
    for (Py_ssize_t c = 0; c < count; c++) {
        /* (field name, OUT_* kind, nullable) */
        PyObject *name;
        int kind, nullable;
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(specs, c), "Uip", &name, &kind, &nullable))
            goto fail;
        Py_ssize_t slot = slot_offset(cls, name);
        if (slot < 0) {
            PyErr_Clear();
            Py_DECREF(result);
            Py_RETURN_NONE;
        }
        PyObject *column;
        switch (kind) {
        case OUT_INT64:
        case OUT_INT32:
            column = int_column(rows, n, slot, kind == OUT_INT64, nullable);
            break;
        case OUT_BINARY:
            column = binary_column(rows, n, slot);
            break;
        case OUT_WORDS:
            column = word_column(rows, n, slot, nullable);
            break;
        default:
            PyErr_SetString(PyExc_ValueError, "unknown column kind");
            column = NULL;
        }
        if (column == NULL)
            goto fail;
        if (column == Py_None) {
            Py_DECREF(result);
            return column;
        }
        PyTuple_SET_ITEM(result, c, column);
    }
    return result;
fail:
    Py_DECREF(result);
    return NULL;
}

/* --- prints folded inside the bar builder's window ----------------------------------------- */

/* TradeFold(fallback, many, instruments, wanted, refused, state_cls, builder_cls): a callable
 * that stands in for Pipeline._on_trade (many false) or Pipeline._on_trades (many true) as
 * a decode sink's trade handler. When every print of the call falls inside its instrument's
 * BarBuilder window (the bucket shared by every forming bar), no event can come of it: the
 * prints are folded into the builder's accumulator and the instrument's counters right here,
 * exactly as BarBuilder.add per print and the pipeline's bookkeeping would do (with a book
 * that keeps levels, each print is noted in recent_trades with the touch it traded against).
 * Any other call (a new instrument, a print outside the window, a trade id to check, an event
 * type of refused in wanted, a value not of the plain types) goes to fallback, the pure-Python
 * reference, untouched. */

enum { S_BUILDER, S_RECENT, S_BOOK, S_TRADES, S_VOLUME, S_LAST_PRICE, S_LAST_NS, STATE_SLOTS };
static const char *const STATE_FIELDS[STATE_SLOTS] = {
    "builder", "recent_trades", "book", "trades", "volume", "last_trade_price", "last_event_ns"};
enum { W_LO, W_HI, W_TICKS, W_HIGH, W_LOW, W_CLOSE, W_VOLUME, W_TRADES, WINDOW_SLOTS };
static const char *const WINDOW_FIELDS[WINDOW_SLOTS] = {"_lo",  "_hi",    "_ticks",  "_high",
                                                        "_low", "_close", "_volume", "_trades"};

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *fallback, *instruments, *wanted, *refused;
    PyTypeObject *state_cls, *builder_cls;
    int many;
    Py_ssize_t state_slot[STATE_SLOTS], window_slot[WINDOW_SLOTS];
} TradeFold;

/* Volumes the fold adds in C: whole contract counts only. Decimal amounts (floats) go to the
 * Python handlers, whose sums round to the amounts' decimal places (rtcap.decimals). */
static inline int is_amount(PyObject *v) { return PyLong_CheckExact(v); }

/* The i-th print's (price, volume, side, exch_ns): the call's own arguments for one print. */
static inline PyObject *const *print_at(PyObject *const *args, PyObject *prints, Py_ssize_t i) {
    return prints == NULL ? args + 1 : &PyTuple_GET_ITEM(PyList_GET_ITEM(prints, i), 0);
}

static PyObject *STR_BOOK, *STR_BEST_BID, *STR_BEST_ASK, *STR_APPEND;

/* The price of levels.best_bid() (or best_ask()), None without levels or with that side
 * empty: what Pipeline._note_trade records. NULL with an exception on any error. */
static PyObject *touch_price(PyObject *levels, PyObject *method) {
    if (levels == Py_None)
        return Py_NewRef(Py_None);
    PyObject *best = PyObject_CallMethodNoArgs(levels, method);
    if (best == NULL)
        return NULL;
    int truth = PyObject_IsTrue(best);
    PyObject *price = truth > 0 ? PySequence_GetItem(best, 0) : truth == 0 ? Py_NewRef(Py_None) : NULL;
    Py_DECREF(best);
    return price;
}

/* The (t, price, volume, side, bid, ask) notes of the call's prints for recent_trades, bid and
 * ask read off the instrument's book (None: no book yet). NULL with an exception on an error. */
static PyObject *trade_notes(PyObject *const *args, PyObject *prints, Py_ssize_t n,
                             PyObject *recv_ns, PyObject *book) {
    PyObject *levels = book == Py_None ? Py_NewRef(Py_None) : PyObject_GetAttr(book, STR_BOOK);
    PyObject *bid = levels == NULL ? NULL : touch_price(levels, STR_BEST_BID);
    PyObject *ask = bid == NULL ? NULL : touch_price(levels, STR_BEST_ASK);
    PyObject *notes = ask == NULL ? NULL : PyList_New(n);
    for (Py_ssize_t i = 0; notes != NULL && i < n; i++) {
        PyObject *const *p = print_at(args, prints, i);
        PyObject *note = PyTuple_Pack(6, p[3] == Py_None ? recv_ns : p[3], p[0], p[1], p[2], bid, ask);
        if (note == NULL)
            Py_CLEAR(notes);
        else
            PyList_SET_ITEM(notes, i, note);
    }
    Py_XDECREF(levels);
    Py_XDECREF(bid);
    Py_XDECREF(ask);
    return notes;
}

/* The part of fold_prints that runs no Python code, entered once everything that may (wanted's
 * membership test, the book's touch) is behind it: checks the instrument's fields and the
 * prints' times against its window, then writes the folded values. */
static int fold_into(TradeFold *self, PyObject *state, PyObject *const *args, PyObject *prints,
                     Py_ssize_t n, PyObject *recv_ns, long long recv) {
    long long lo, hi, t;
    PyObject *s[STATE_SLOTS], *w[WINDOW_SLOTS];
    for (int i = 0; i < STATE_SLOTS; i++)
        if ((s[i] = SLOT(state, self->state_slot[i])) == NULL)
            return 0;
    PyObject *builder = s[S_BUILDER];
    if (!Py_IS_TYPE(builder, self->builder_cls) || !PyLong_CheckExact(s[S_TRADES]) ||
        !is_amount(s[S_VOLUME]))
        return 0;
    for (int i = 0; i < WINDOW_SLOTS; i++)
        if ((w[i] = SLOT(builder, self->window_slot[i])) == NULL)
            return 0;
    Py_ssize_t ticks = PyLong_CheckExact(w[W_TICKS]) ? PyLong_AsSsize_t(w[W_TICKS]) : -1;
    if (!exact_int(w[W_LO], &lo) || !exact_int(w[W_HI], &hi) || ticks < 0 ||
        !PyLong_CheckExact(w[W_TRADES]) || !is_amount(w[W_VOLUME]) ||
        (ticks > 0 && (!PyFloat_CheckExact(w[W_HIGH]) || !PyFloat_CheckExact(w[W_LOW])))) {
        PyErr_Clear();
        return 0;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *const *p = print_at(args, prints, i);
        if (p[3] == Py_None)
            t = recv;
        else if (!exact_int(p[3], &t))
            return 0;
        if (t < lo || t >= hi)
            return 0;
    }
    /* every print folds: the new values first, so a failure leaves everything as it was */
    PyObject *high = w[W_HIGH], *low = w[W_LOW], *close = NULL;
    double top = ticks > 0 ? PyFloat_AS_DOUBLE(high) : 0;
    double bottom = ticks > 0 ? PyFloat_AS_DOUBLE(low) : 0;
    PyObject *traded = Py_NewRef(w[W_VOLUME]), *volume = Py_NewRef(s[S_VOLUME]);
    for (Py_ssize_t i = 0; i < n && traded != NULL && volume != NULL; i++) {
        PyObject *const *p = print_at(args, prints, i);
        double price = PyFloat_AS_DOUBLE(p[0]);
        if (ticks == 0) {
            high = low = p[0];
            top = bottom = price;
        } else if (price > top) {
            high = p[0];
            top = price;
        } else if (price < bottom) {
            low = p[0];
            bottom = price;
        }
        close = p[0];
        ticks++;
        Py_SETREF(traded, PyNumber_Add(traded, p[1]));
        if (traded != NULL)
            Py_SETREF(volume, PyNumber_Add(volume, p[1]));
    }
    PyObject *new_ticks = PyLong_FromSsize_t(ticks), *folded = PyLong_FromSsize_t(n);
    PyObject *new_trades = folded == NULL ? NULL : PyNumber_Add(w[W_TRADES], folded);
    PyObject *state_trades = folded == NULL ? NULL : PyNumber_Add(s[S_TRADES], folded);
    Py_XDECREF(folded);
    if (traded == NULL || volume == NULL || new_ticks == NULL || new_trades == NULL ||
        state_trades == NULL) {
        Py_XDECREF(traded);
        Py_XDECREF(volume);
        Py_XDECREF(new_ticks);
        Py_XDECREF(new_trades);
        Py_XDECREF(state_trades);
        return -1;
    }
    /* the replaced values are ints, floats and the caller's prices: freeing them runs no code */
    Py_INCREF(builder);
    Py_SETREF(SLOT(builder, self->window_slot[W_HIGH]), Py_NewRef(high));
    Py_SETREF(SLOT(builder, self->window_slot[W_LOW]), Py_NewRef(low));
    Py_SETREF(SLOT(builder, self->window_slot[W_CLOSE]), Py_NewRef(close));
    Py_SETREF(SLOT(builder, self->window_slot[W_TICKS]), new_ticks);
    Py_SETREF(SLOT(builder, self->window_slot[W_VOLUME]), traded);
    Py_SETREF(SLOT(builder, self->window_slot[W_TRADES]), new_trades);
    Py_DECREF(builder);
    Py_SETREF(SLOT(state, self->state_slot[S_TRADES]), state_trades);
    Py_SETREF(SLOT(state, self->state_slot[S_VOLUME]), volume);
    Py_SETREF(SLOT(state, self->state_slot[S_LAST_PRICE]), Py_NewRef(close));
    Py_SETREF(SLOT(state, self->state_slot[S_LAST_NS]), Py_NewRef(recv_ns));
    return 1;
}

/* 1 when the call was folded, 0 when it is the fallback's, -1 on an error (memory only). */
static int fold_prints(TradeFold *self, PyObject *const *args, Py_ssize_t nargs,
                       PyObject *kwnames) {
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0)
        return 0;
    PyObject *prints = NULL, *recv_ns;
    Py_ssize_t n = 1;
    if (self->many) { /* symbol, prints, recv_ns, seq */
        if (nargs != 4 || !PyList_CheckExact(args[1]) || PyList_GET_SIZE(args[1]) == 0)
            return 0;
        prints = args[1];
        n = PyList_GET_SIZE(prints);
        recv_ns = args[2];
    } else { /* symbol, price, volume, side, exch_ns, recv_ns, seq[, trade_id[, aggregated]] */
        if (nargs < 7 || nargs > 9 || (nargs > 7 && args[7] != Py_None))
            return 0;
        recv_ns = args[5];
    }
    long long recv;
    if (!PyUnicode_CheckExact(args[0]) || !exact_int(recv_ns, &recv))
        return 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (prints != NULL) {
            PyObject *item = PyList_GET_ITEM(prints, i);
            if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 4)
                return 0;
        }
        PyObject *const *p = print_at(args, prints, i);
        if (!PyFloat_CheckExact(p[0]) || !is_amount(p[1]))
            return 0;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(self->refused); i++) {
        int wanted = PySequence_Contains(self->wanted, PyTuple_GET_ITEM(self->refused, i));
        if (wanted != 0) {
            PyErr_Clear();
            return 0;
        }
    }
    PyObject *state = PyDict_GetItemWithError(self->instruments, args[0]);
    if (state == NULL || !Py_IS_TYPE(state, self->state_cls)) {
        PyErr_Clear();
        return 0;
    }
    PyObject *recent = SLOT(state, self->state_slot[S_RECENT]);
    PyObject *book = SLOT(state, self->state_slot[S_BOOK]);
    if (recent == NULL || book == NULL)
        return 0;
    Py_INCREF(state);
    Py_INCREF(recent);
    PyObject *notes = NULL; /* with a book that keeps levels, made before anything changes */
    if (recent != Py_None && (notes = trade_notes(args, prints, n, recv_ns, book)) == NULL)
        PyErr_Clear(); /* the book misbehaved: the pure handler meets the same error */
    int folded = recent != Py_None && notes == NULL ? 0
                                                    : fold_into(self, state, args, prints, n,
                                                                recv_ns, recv);
    for (Py_ssize_t i = 0; folded > 0 && notes != NULL && i < n; i++) {
        PyObject *done = PyObject_CallMethodOneArg(recent, STR_APPEND, PyList_GET_ITEM(notes, i));
        folded = done == NULL ? -1 : 1;
        Py_XDECREF(done);
    }
    Py_XDECREF(notes);
    Py_DECREF(recent);
    Py_DECREF(state);
    return folded;
}

static PyObject *trade_fold_call(PyObject *callable, PyObject *const *args, size_t nargsf,
                                 PyObject *kwnames) {
    TradeFold *self = (TradeFold *)callable;
    int folded = fold_prints(self, args, PyVectorcall_NARGS(nargsf), kwnames);
    if (folded < 0)
        return NULL;
    if (folded)
        Py_RETURN_NONE;
    return PyObject_Vectorcall(self->fallback, args, nargsf, kwnames);
}

static int find_slots(PyTypeObject *cls, const char *const *names, int count, Py_ssize_t *out) {
    for (int i = 0; i < count; i++) {
        PyObject *name = PyUnicode_FromString(names[i]);
        out[i] = name == NULL ? -1 : slot_offset(cls, name);
        Py_XDECREF(name);
        if (out[i] < 0) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "%s has no writable __slots__ field %s", cls->tp_name,
                         names[i]);
            return -1;
        }
    }
    return 0;
}

static PyObject *trade_fold_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    PyObject *fallback, *instruments, *wanted, *refused;
    PyTypeObject *state_cls, *builder_cls;
    int many;
    static char *keywords[] = {"fallback", "many",      "instruments", "wanted",
                               "refused",  "state_cls", "builder_cls", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OpO!OO!O!O!:TradeFold", keywords, &fallback,
                                     &many, &PyDict_Type, &instruments, &wanted, &PyTuple_Type,
                                     &refused, &PyType_Type, &state_cls, &PyType_Type,
                                     &builder_cls))
        return NULL;
    if (!PyCallable_Check(fallback)) {
        PyErr_SetString(PyExc_TypeError, "TradeFold: fallback must be callable");
        return NULL;
    }
    TradeFold *self = (TradeFold *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->vectorcall = trade_fold_call;
    self->many = many;
    self->fallback = Py_NewRef(fallback);
    self->instruments = Py_NewRef(instruments);
    self->wanted = Py_NewRef(wanted);
    self->refused = Py_NewRef(refused);
    self->state_cls = (PyTypeObject *)Py_NewRef(state_cls);
    self->builder_cls = (PyTypeObject *)Py_NewRef(builder_cls);
    if (find_slots(state_cls, STATE_FIELDS, STATE_SLOTS, self->state_slot) < 0 ||
        find_slots(builder_cls, WINDOW_FIELDS, WINDOW_SLOTS, self->window_slot) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static int trade_fold_traverse(TradeFold *self, visitproc visit, void *arg) {
    Py_VISIT(self->fallback);
    Py_VISIT(self->instruments);
    Py_VISIT(self->wanted);
    Py_VISIT(self->refused);
    Py_VISIT(self->state_cls);
    Py_VISIT(self->builder_cls);
    return 0;
}

static int trade_fold_clear(TradeFold *self) {
    Py_CLEAR(self->fallback);
    Py_CLEAR(self->instruments);
    Py_CLEAR(self->wanted);
    Py_CLEAR(self->refused);
    Py_CLEAR(self->state_cls);
    Py_CLEAR(self->builder_cls);
    return 0;
}

static void trade_fold_dealloc(TradeFold *self) {
    PyObject_GC_UnTrack(self);
    trade_fold_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject TradeFoldType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "rtcap._speedups.TradeFold",
    .tp_basicsize = sizeof(TradeFold),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "TradeFold(fallback, many, instruments, wanted, refused, state_cls, builder_cls)\n\n"
              "A trade handler for a decode sink: calls whose prints all fall inside their "
              "instrument's bar window fold here, exactly as the pure-Python handler would; "
              "every other call goes to fallback.",
    .tp_new = trade_fold_new,
    .tp_dealloc = (destructor)trade_fold_dealloc,
    .tp_traverse = (traverseproc)trade_fold_traverse,
    .tp_clear = (inquiry)trade_fold_clear,
    .tp_vectorcall_offset = offsetof(TradeFold, vectorcall),
    .tp_call = PyVectorcall_Call,
};

/* --- order-book levels -------------------------------------------------------------------- */

/* apply_levels(bids, asks, bid_ns, ask_ns, bid_prices, ask_prices, levels, ns, changed, sides):
 * OrderBook.apply_levels over the book's own dicts and sorted price lists, level by level with
 * the same Python operations in the same order (so any object behaves as it does there: a
 * TypeError refuses the level, any other error propagates), with the plain float and int
 * cases decided in C. A reset level clears the book there too, so a ProjectX depth message's
 * levels, Resets and all, take one call. */

static PyObject *STR_SIDE, *STR_TYPE, *STR_PRICE, *STR_VOLUME, *STR_BID, *STR_ASK, *STR_RESET,
    *FLOAT_INF, *FLOAT_NEG_INF, *FLOAT_ZERO, *INT_ZERO;

/* a < b as Python decides it (1, 0, or -1 with an exception) */
static inline int less(PyObject *a, PyObject *b) {
    if (PyFloat_CheckExact(a) && PyFloat_CheckExact(b))
        return PyFloat_AS_DOUBLE(a) < PyFloat_AS_DOUBLE(b);
    return PyObject_RichCompareBool(a, b, Py_LT);
}

/* bisect.bisect_right (right) or bisect_left over a list, the comparisons bisect makes */
static Py_ssize_t bisect_list(PyObject *list, PyObject *x, int right) {
    Py_ssize_t lo = 0, hi = PyList_GET_SIZE(list);
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        PyObject *item = PyList_GET_ITEM(list, mid);
        Py_INCREF(item); /* a comparison may run Python code that changes the list */
        int below = right ? less(x, item) : less(item, x);
        Py_DECREF(item);
        if (below < 0)
            return -1;
        if (right ? below : !below)
            hi = mid;
        else
            lo = mid + 1;
        if (hi > PyList_GET_SIZE(list))
            hi = PyList_GET_SIZE(list);
    }
    return lo;
}

/* 0 < size < inf: 1, 0, or -1 with an exception */
static int positive_finite(PyObject *size) {
    if (PyFloat_CheckExact(size)) {
        double d = PyFloat_AS_DOUBLE(size);
        return d > 0 && d < Py_HUGE_VAL;
    }
    int above = PyObject_RichCompareBool(INT_ZERO, size, Py_LT);
    return above <= 0 ? above : PyObject_RichCompareBool(size, FLOAT_INF, Py_LT);
}

/* -inf < price < inf: 1, 0, or -1 with an exception */
static int finite_price(PyObject *price) {
    if (PyFloat_CheckExact(price)) {
        double d = PyFloat_AS_DOUBLE(price);
        return d > -Py_HUGE_VAL && d < Py_HUGE_VAL;
    }
    int above = PyObject_RichCompareBool(FLOAT_NEG_INF, price, Py_LT);
    return above <= 0 ? above : PyObject_RichCompareBool(price, FLOAT_INF, Py_LT);
}

/* One level into one side: 1 applied, 0 refused, -1 error (a TypeError also means refused). */
static int apply_level(PyObject *book, PyObject *prices, PyObject *stamps, PyObject *price,
                       PyObject *size, PyObject *ns) {
    int nonzero = PyFloat_CheckExact(size) ? PyFloat_AS_DOUBLE(size) != 0 : PyObject_IsTrue(size);
    if (nonzero < 0)
        return -1;
    int present = PyDict_Contains(book, price);
    if (present < 0)
        return -1;
    if (nonzero) {
        if (!present) {
            int ok = positive_finite(size);
            if (ok > 0)
                ok = finite_price(price);
            if (ok <= 0)
                return ok;
            Py_ssize_t at = bisect_list(prices, price, 1);
            if (at < 0 || PyList_Insert(prices, at, price) < 0)
                return -1;
        } else {
            int ok = positive_finite(size);
            if (ok <= 0)
                return ok;
        }
        if (PyDict_SetItem(book, price, size) < 0 || PyDict_SetItem(stamps, price, ns) < 0)
            return -1;
    } else if (present) {
        if (PyDict_DelItem(book, price) < 0 || PyDict_DelItem(stamps, price) < 0)
            return -1;
        Py_ssize_t at = bisect_list(prices, price, 0);
        if (at < 0)
            return -1;
        if (at >= PyList_GET_SIZE(prices)) {
            PyErr_SetString(PyExc_IndexError, "list assignment index out of range");
            return -1;
        }
        if (PyList_SetSlice(prices, at, at + 1, NULL) < 0)
            return -1;
    }
    return 1;
}

/* OrderBook.clear(): both sides' sizes, stamps and sorted prices (0, or -1 with an exception) */
static int clear_book(PyObject *const *args) {
    for (int i = 0; i < 4; i++)
        PyDict_Clear(args[i]);
    if (PyList_SetSlice(args[4], 0, PY_SSIZE_T_MAX, NULL) < 0)
        return -1;
    return PyList_SetSlice(args[5], 0, PY_SSIZE_T_MAX, NULL);
}

static PyObject *apply_levels(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 10 || !PyDict_CheckExact(args[0]) || !PyDict_CheckExact(args[1]) ||
        !PyDict_CheckExact(args[2]) || !PyDict_CheckExact(args[3]) ||
        !PyList_CheckExact(args[4]) || !PyList_CheckExact(args[5]) ||
        (args[9] != Py_None && !PyDict_CheckExact(args[9]))) {
        PyErr_SetString(PyExc_TypeError,
                        "apply_levels(bids: dict, asks: dict, bid_ns: dict, ask_ns: dict, "
                        "bid_prices: list, ask_prices: list, levels, ns, changed, sides: dict | "
                        "None)");
        return NULL;
    }
    PyObject *ns = args[7], *changed = args[8], *sides = args[9];
    PyObject *iterator = PyObject_GetIter(args[6]);
    if (iterator == NULL)
        return NULL;
    Py_ssize_t rejected = 0;
    PyObject *level;
    while ((level = PyIter_Next(iterator)) != NULL) {
        PyObject *side, *price = NULL, *size = NULL;
        int unnamed = 0; /* a type sides does not name: refused */
        if (sides == Py_None) {
            side = PyObject_GetAttr(level, STR_SIDE);
        } else {
            PyObject *type = PyObject_GetAttr(level, STR_TYPE);
            side = type == NULL ? NULL : PyDict_GetItemWithError(sides, type);
            if (side != NULL)
                Py_INCREF(side);
            else if (!PyErr_Occurred())
                side = Py_NewRef(Py_None), unnamed = 1;
            Py_XDECREF(type);
        }
        int is_bid = side == NULL ? -1 : PyObject_RichCompareBool(side, STR_BID, Py_EQ);
        int is_ask = is_bid != 0 ? 0 : PyObject_RichCompareBool(side, STR_ASK, Py_EQ);
        int is_reset =
            is_bid != 0 || is_ask != 0 ? 0 : PyObject_RichCompareBool(side, STR_RESET, Py_EQ);
        int outcome = 1; /* 1 applied, 0 refused, 2 skipped, 3 reset, -1 error */
        if (is_bid < 0 || is_ask < 0 || is_reset < 0) {
            outcome = -1;
        } else if (is_reset) {
            outcome = clear_book(args) < 0 ? -1 : 3;
        } else if (!is_bid && !is_ask) {
            outcome = unnamed ? 0 : 2;
        } else if ((price = PyObject_GetAttr(level, STR_PRICE)) == NULL ||
                   (size = PyObject_GetAttr(level, STR_VOLUME)) == NULL) {
            outcome = -1;
        } else {
            outcome = apply_level(is_bid ? args[0] : args[1], is_bid ? args[4] : args[5],
                                  is_bid ? args[2] : args[3], price, size, ns);
            if (outcome < 0 && PyErr_ExceptionMatches(PyExc_TypeError)) {
                PyErr_Clear(); /* a price or size that is not a number */
                outcome = 0;
            }
        }
        if (outcome == 0)
            rejected++;
        if ((outcome == 1 || outcome == 3) && changed != Py_None) {
            PyObject *item = NULL;
            if (outcome == 1)
                item = PyTuple_Pack(3, side, price, size);
            else if ((price = PyObject_GetAttr(level, STR_PRICE)) != NULL)
                item = PyTuple_Pack(3, STR_RESET, price, FLOAT_ZERO);
            if (item == NULL) {
                outcome = -1;
            } else {
                PyObject *done = PyList_CheckExact(changed)
                                     ? (PyList_Append(changed, item) < 0 ? NULL : Py_NewRef(Py_None))
                                     : PyObject_CallMethodOneArg(changed, STR_APPEND, item);
                outcome = done == NULL ? -1 : 1;
                Py_XDECREF(done);
                Py_DECREF(item);
            }
        }
        Py_XDECREF(side);
        Py_XDECREF(price);
        Py_XDECREF(size);
        Py_DECREF(level);
        if (outcome < 0) {
            Py_DECREF(iterator);
            return NULL;
        }
    }
    Py_DECREF(iterator);
    if (PyErr_Occurred())
        return NULL;
    return PyLong_FromSsize_t(rejected);
}

/* ---- render_rows: the payloads of a cold table (storage/shapes.py's render) ----
 *
 * Each row with a shape is its shape's pieces with its typed values between them; a row with
 * none is its stored payload. The same text as the pure path (integers in decimal, booleans
 * as true/false, strings as stored, decimals as mantissa, scale and digits shown, depth
 * levels as [["price","size"],...]); anything outside the layouts it reads (a null where a
 * shape needs a value, an index out of its buffer, an overflow) gives None, and the caller
 * renders that table with the pure path. */

typedef struct {
    int kind;  /* 0 int, 1 bool, 2 dictionary string, 3 string/binary, 4 list of ints */
    int width; /* of int values or dictionary indices */
    Py_ssize_t offset, child_offset;
    Py_buffer validity, values, offsets, data;
} RCol;

typedef struct {
    char *buf;
    Py_ssize_t len, cap;
    long long second;  /* the last whole second put_time wrote, -1 before any */
    char second_text[19]; /* its YYYY-MM-DDTHH:MM:SS: the stamps of a tape mostly share it */
} Out;

/* Output buffers of render_rows given back when their RenderedBytes goes: the next call writes
 * into one whose pages are already mapped. A fresh buffer's pages are faulted in, and zeroed by
 * the kernel, as it grows: that took most of the time of reading a compacted row group back
 * (perf: 40% in clear_page, more than the rendering), where Arrow's own pool reuses its memory.
 * Taken and given back with the GIL held. */
#define SPARE_BUFFERS 4
#define SPARE_MAX_BYTES ((Py_ssize_t)64 << 20) /* a larger one is freed: bounded memory kept */
typedef struct {
    char *buf;
    Py_ssize_t cap;
} Spare;
static Spare spares[SPARE_BUFFERS];
static int spare_count;

static void spare_take(Out *o) {
    if (spare_count > 0) {
        spare_count--;
        o->buf = spares[spare_count].buf;
        o->cap = spares[spare_count].cap;
    }
}

static void spare_give(char *buf, Py_ssize_t cap) {
    if (buf == NULL)
        return;
    if (spare_count < SPARE_BUFFERS && cap <= SPARE_MAX_BYTES) {
        spares[spare_count].buf = buf;
        spares[spare_count].cap = cap;
        spare_count++;
        return;
    }
    PyMem_RawFree(buf);
}

static int out_reserve(Out *o, Py_ssize_t extra) {
    if (o->len + extra <= o->cap)
        return 0;
    Py_ssize_t cap = o->cap ? o->cap : 1 << 16;
    while (cap < o->len + extra)
        cap *= 2;
    char *grown = PyMem_RawRealloc(o->buf, cap); /* no GIL needed: the loop runs without it */
    if (grown == NULL)
        return -1;
    o->buf = grown;
    o->cap = cap;
    return 0;
}

static inline int out_put(Out *o, const char *s, Py_ssize_t n) {
    if (out_reserve(o, n) < 0)
        return -1;
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    return 0;
}

static void rcol_release(RCol *c) {
    Py_buffer *views[4] = {&c->validity, &c->values, &c->offsets, &c->data};
    for (int k = 0; k < 4; k++)
        if (views[k]->obj != NULL)
            PyBuffer_Release(views[k]);
}

static int get_view(PyObject *obj, Py_buffer *view) {
    view->obj = NULL;
    view->buf = NULL;
    view->len = 0;
    if (obj == Py_None)
        return 0;
    return PyObject_GetBuffer(obj, view, PyBUF_SIMPLE);
}

/* spec: (kind, width, offset, child_offset, validity, values, offsets, data) */
static int rcol_init(RCol *c, PyObject *spec) {
    memset(c, 0, sizeof(*c));
    if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) != 8)
        return -1;
    c->kind = (int)PyLong_AsLong(PyTuple_GET_ITEM(spec, 0));
    c->width = (int)PyLong_AsLong(PyTuple_GET_ITEM(spec, 1));
    c->offset = PyLong_AsSsize_t(PyTuple_GET_ITEM(spec, 2));
    c->child_offset = PyLong_AsSsize_t(PyTuple_GET_ITEM(spec, 3));
    if (PyErr_Occurred())
        return -1;
    if (get_view(PyTuple_GET_ITEM(spec, 4), &c->validity) < 0 ||
        get_view(PyTuple_GET_ITEM(spec, 5), &c->values) < 0 ||
        get_view(PyTuple_GET_ITEM(spec, 6), &c->offsets) < 0 ||
        get_view(PyTuple_GET_ITEM(spec, 7), &c->data) < 0)
        return -1;
    if (c->width != 1 && c->width != 2 && c->width != 4 && c->width != 8)
        return -1;
    return 0;
}

static inline int rcol_valid(const RCol *c, Py_ssize_t i) {
    if (c->validity.buf == NULL)
        return 1;
    Py_ssize_t at = c->offset + i;
    if (at < 0 || (at >> 3) >= c->validity.len)
        return 0;
    return (((const uint8_t *)c->validity.buf)[at >> 3] >> (at & 7)) & 1;
}

static inline int read_at(const Py_buffer *view, int width, Py_ssize_t at, long long *out) {
    if (at < 0 || at >= view->len / width)
        return -1;
    *out = read_int(view->buf, width, at);
    return 0;
}

/* The int of row i (a null or an index out of bounds is -1). */
static inline int rcol_int(const RCol *c, Py_ssize_t i, long long *out) {
    if (!rcol_valid(c, i))
        return -1;
    return read_at(&c->values, c->width, c->offset + i, out);
}

/* The bytes of string number at (from int32 offsets and data). */
static int string_at(const RCol *c, Py_ssize_t at, const char **s, Py_ssize_t *n) {
    long long lo, hi;
    if (read_at(&c->offsets, 4, at, &lo) < 0 || read_at(&c->offsets, 4, at + 1, &hi) < 0)
        return -1;
    if (lo < 0 || hi < lo || hi > c->data.len)
        return -1;
    *s = (const char *)c->data.buf + lo;
    *n = (Py_ssize_t)(hi - lo);
    return 0;
}

/* The decimal digits of v (not negative) at the end of text[24]; returns how many. */
static const char DIGIT_PAIRS[] = "0001020304050607080910111213141516171819202122232425262728293031323334353637383940414243444546474849"
                                  "5051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899";

static inline int digits_of(unsigned long long v, char *text) {
    int at = 24;
    while (v >= 100) { /* two digits a step */
        unsigned pair = (unsigned)(v % 100) * 2;
        v /= 100;
        text[--at] = DIGIT_PAIRS[pair + 1];
        text[--at] = DIGIT_PAIRS[pair];
    }
    if (v >= 10) {
        text[--at] = DIGIT_PAIRS[v * 2 + 1];
        text[--at] = DIGIT_PAIRS[v * 2];
    } else {
        text[--at] = (char)('0' + v);
    }
    return 24 - at;
}

static int put_int(Out *o, long long v) {
    char text[24];
    unsigned long long magnitude = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    int n = digits_of(magnitude, text);
    if (v < 0)
        text[23 - n++] = '-';
    return out_put(o, text + 24 - n, n);
}

static const long long POW10[19] = {1LL, 10LL, 100LL, 1000LL, 10000LL, 100000LL, 1000000LL,
    10000000LL, 100000000LL, 1000000000LL, 10000000000LL, 100000000000LL, 1000000000000LL,
    10000000000000LL, 100000000000000LL, 1000000000000000LL, 10000000000000000LL,
    100000000000000000LL, 1000000000000000000LL};

/* An integer at scale sc as text with dg digits after the point ("-12.50" for -125, 1, 2). */
static int put_decimal(Out *o, long long v, long long sc, long long dg) {
    if (sc < 0 || sc > 18 || dg < 0 || dg > 18)
        return -1;
    long long m = v;
    if (dg > sc) {
        if (__builtin_mul_overflow(v, POW10[dg - sc], &m))
            return -1;
    } else if (dg < sc) {
        m = v / POW10[sc - dg];
    }
    if (m == INT64_MIN)
        return -1;
    char buffer[24];
    int n = digits_of((unsigned long long)(m < 0 ? -m : m), buffer);
    const char *digits = buffer + 24 - n;
    int shown = (int)dg;
    if (out_reserve(o, 48) < 0) /* sign, 19 digits, point, up to 18 zeros */
        return -1;
    char *text = o->buf + o->len;
    int at = 0;
    if (m < 0)
        text[at++] = '-';
    if (shown == 0) {
        memcpy(text + at, digits, n);
        at += n;
    } else if (n > shown) { /* digits before the point, the point, the rest */
        memcpy(text + at, digits, n - shown);
        at += n - shown;
        text[at++] = '.';
        memcpy(text + at, digits + n - shown, shown);
        at += shown;
    } else { /* "0." then zeros up to the digits */
        text[at++] = '0';
        text[at++] = '.';
        memset(text + at, '0', shown - n);
        at += shown - n;
        memcpy(text + at, digits, n);
        at += n;
    }
    o->len += at;
    return 0;
}

/* One decimal from columns v, sc, dg at row i. */
static int put_decimal_column(Out *o, RCol *cols, long v, long sc, long dg, Py_ssize_t i) {
    long long value, scale, shown;
    if (rcol_int(&cols[v], i, &value) < 0 || rcol_int(&cols[sc], i, &scale) < 0 ||
        rcol_int(&cols[dg], i, &shown) < 0)
        return -1;
    return put_decimal(o, value, scale, shown);
}

/* Row i's list bounds [lo, hi) in the child values of a list column. */
static int list_bounds(const RCol *c, Py_ssize_t i, Py_ssize_t *lo, Py_ssize_t *hi) {
    long long a, b;
    if (!rcol_valid(c, i) || read_at(&c->offsets, 4, c->offset + i, &a) < 0 ||
        read_at(&c->offsets, 4, c->offset + i + 1, &b) < 0 || b < a)
        return -1;
    *lo = c->child_offset + (Py_ssize_t)a;
    *hi = c->child_offset + (Py_ssize_t)b;
    return 0;
}

/* Depth levels: [["price","size"],...] from two list columns and their scales and digits. */
static int put_levels(Out *o, RCol *cols, const long *op, Py_ssize_t i) {
    RCol *prices = &cols[op[1]], *sizes = &cols[op[4]];
    Py_ssize_t plo, phi, slo, shi;
    if (list_bounds(prices, i, &plo, &phi) < 0 || list_bounds(sizes, i, &slo, &shi) < 0 ||
        phi - plo != shi - slo)
        return -1;
    long long psc = 0, pdg = 0, ssc = 0, sdg = 0;
    if (phi > plo && (rcol_int(&cols[op[2]], i, &psc) < 0 || rcol_int(&cols[op[3]], i, &pdg) < 0 ||
                      rcol_int(&cols[op[5]], i, &ssc) < 0 || rcol_int(&cols[op[6]], i, &sdg) < 0))
        return -1;
    if (out_put(o, "[", 1) < 0)
        return -1;
    for (Py_ssize_t k = 0; k < phi - plo; k++) {
        long long price, size;
        if (read_at(&prices->values, prices->width, plo + k, &price) < 0 ||
            read_at(&sizes->values, sizes->width, slo + k, &size) < 0)
            return -1;
        if ((k > 0 && out_put(o, ",", 1) < 0) || out_put(o, "[\"", 2) < 0 ||
            put_decimal(o, price, psc, pdg) < 0 || out_put(o, "\",\"", 3) < 0 ||
            put_decimal(o, size, ssc, sdg) < 0 || out_put(o, "\"]", 2) < 0)
            return -1;
    }
    return out_put(o, "]", 1);
}

/* Epoch ns (from 1970 to year 9999) as YYYY-MM-DDTHH:MM:SS with dg fraction digits (none: no
 * point), as storage/shapes.py's time_text. */
static int put_time(Out *o, long long ns, long long dg) {
    if (ns < 0 || dg < 0 || dg > 9 || out_reserve(o, 32) < 0)
        return -1;
    long long seconds = ns / 1000000000LL, fraction = ns % 1000000000LL;
    char *t = o->buf + o->len;
    int at = 19;
    if (seconds == o->second) {
        memcpy(t, o->second_text, 19);
        goto fraction;
    }
    long long z = seconds / 86400 + 719468, rest = seconds % 86400; /* days since 0000-03-01 */
    long long era = z / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    unsigned day = doy - (153 * mp + 2) / 5 + 1, month = mp < 10 ? mp + 3 : mp - 9;
    long long year = (long long)yoe + era * 400 + (month <= 2);
    if (year > 9999)
        return -1;
    unsigned fields[6] = {(unsigned)(year / 100), (unsigned)(year % 100), month, day,
                          (unsigned)(rest / 3600), (unsigned)(rest / 60 % 60)};
    static const char AFTER[6] = {0, '-', '-', 'T', ':', ':'};
    at = 0;
    for (int f = 0; f < 6; f++) {
        memcpy(t + at, DIGIT_PAIRS + fields[f] * 2, 2);
        at += 2;
        if (AFTER[f])
            t[at++] = AFTER[f];
    }
    memcpy(t + at, DIGIT_PAIRS + (rest % 60) * 2, 2);
    at += 2;
    o->second = seconds;
    memcpy(o->second_text, t, 19);
fraction:
    if (dg > 0) {
        t[at++] = '.';
        for (int k = 8; k >= 0; k--, fraction /= 10)
            if (k < dg)
                t[at + k] = (char)('0' + fraction % 10);
        at += (int)dg;
    }
    o->len += at;
    return 0;
}

enum { OP_TEXT, OP_INT, OP_STRING, OP_BOOL, OP_DECIMAL, OP_LEVELS, OP_TIME, OP_ITEMS,
       OP_ITEM_INT, OP_ITEM_DECIMAL, OP_ITEM_TIME };
#define OP_WIDTH 7 /* an op and up to six column numbers */

static int put_hole(Out *o, RCol *cols, const long *op, Py_ssize_t i) {
    RCol *c = &cols[op[1]];
    long long value;
    const char *s;
    Py_ssize_t n;
    switch (op[0]) {
    case OP_INT:
        return rcol_int(c, i, &value) < 0 ? -1 : put_int(o, value);
    case OP_BOOL:
        if (!rcol_valid(c, i) || c->values.buf == NULL ||
            ((c->offset + i) >> 3) >= c->values.len)
            return -1;
        value = (((const uint8_t *)c->values.buf)[(c->offset + i) >> 3] >> ((c->offset + i) & 7)) & 1;
        return value ? out_put(o, "true", 4) : out_put(o, "false", 5);
    case OP_STRING:
        if (c->kind == 2) { /* dictionary: the index, then the dictionary's string */
            if (rcol_int(c, i, &value) < 0 || value < 0 || value > INT32_MAX ||
                string_at(c, c->child_offset + (Py_ssize_t)value, &s, &n) < 0)
                return -1;
        } else if (!rcol_valid(c, i) || string_at(c, c->offset + i, &s, &n) < 0) {
            return -1;
        }
        return out_put(o, s, n);
    case OP_DECIMAL:
        return put_decimal_column(o, cols, op[1], op[2], op[3], i);
    case OP_LEVELS:
        return put_levels(o, cols, op, i);
    case OP_TIME: {
        long long shown;
        if (rcol_int(c, i, &value) < 0 || rcol_int(&cols[op[2]], i, &shown) < 0)
            return -1;
        return put_time(o, value, shown);
    }
    }
    return -1;
}

/* Where row i's elements of an item op's list columns start and end: found once per row
 * rather than once per item. */
typedef struct {
    Py_ssize_t lo[2], hi[2];
    long long scale; /* of a decimal op: the row's */
} ItemBounds;

static int item_bounds(RCol *cols, const long *op, Py_ssize_t i, ItemBounds *b) {
    if (list_bounds(&cols[op[1]], i, &b->lo[0], &b->hi[0]) < 0)
        return -1;
    switch (op[0]) {
    case OP_ITEM_INT:
        return 0;
    case OP_ITEM_DECIMAL:
        if (rcol_int(&cols[op[2]], i, &b->scale) < 0)
            return -1;
        return list_bounds(&cols[op[3]], i, &b->lo[1], &b->hi[1]);
    case OP_ITEM_TIME:
        return list_bounds(&cols[op[2]], i, &b->lo[1], &b->hi[1]);
    }
    return -1;
}

static inline int element(const RCol *c, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t k, long long *out) {
    return k < hi - lo ? read_at(&c->values, c->width, lo + k, out) : -1;
}

/* One value of item k (an item op: a hole of a message's item shape). */
static int put_item_hole(Out *o, RCol *cols, const long *op, const ItemBounds *b, Py_ssize_t k) {
    long long value, shown;
    if (element(&cols[op[1]], b->lo[0], b->hi[0], k, &value) < 0)
        return -1;
    switch (op[0]) {
    case OP_ITEM_INT:
        return put_int(o, value);
    case OP_ITEM_DECIMAL:
        if (element(&cols[op[3]], b->lo[1], b->hi[1], k, &shown) < 0)
            return -1;
        return put_decimal(o, value, b->scale, shown);
    case OP_ITEM_TIME:
        if (element(&cols[op[2]], b->lo[1], b->hi[1], k, &shown) < 0)
            return -1;
        return put_time(o, value, shown);
    }
    return -1;
}

/* The ops of every shape: a flat array of OP_WIDTH longs per op, with each op's literal text
 * (for OP_TEXT) borrowed from the caller's bytes; starts[s]..starts[s+1] are shape s's ops. */
typedef struct {
    long *ops;
    const char **text;
    Py_ssize_t *text_len;
    Py_ssize_t *starts;
    Py_ssize_t shapes;
} Programs;

static void programs_free(Programs *p) {
    PyMem_Free(p->ops);
    PyMem_Free(p->text);
    PyMem_Free(p->text_len);
    PyMem_Free(p->starts);
}

static int programs_init(Programs *p, PyObject *programs, Py_ssize_t columns) {
    memset(p, 0, sizeof(*p));
    if (!PyList_Check(programs))
        return -1;
    p->shapes = PyList_GET_SIZE(programs);
    Py_ssize_t total = 0;
    for (Py_ssize_t s = 0; s < p->shapes; s++) {
        PyObject *ops = PyList_GET_ITEM(programs, s);
        if (!PyList_Check(ops))
            return -1;
        total += PyList_GET_SIZE(ops);
    }
    p->ops = PyMem_Calloc(total + 1, sizeof(long) * OP_WIDTH);
    p->text = PyMem_Calloc(total + 1, sizeof(char *));
    p->text_len = PyMem_Calloc(total + 1, sizeof(Py_ssize_t));
    p->starts = PyMem_Calloc(p->shapes + 1, sizeof(Py_ssize_t));
    if (p->ops == NULL || p->text == NULL || p->text_len == NULL || p->starts == NULL)
        return -1;
    Py_ssize_t at = 0;
    for (Py_ssize_t s = 0; s < p->shapes; s++) {
        PyObject *ops = PyList_GET_ITEM(programs, s);
        p->starts[s] = at;
        long items_left = 0;
        for (Py_ssize_t k = 0; k < PyList_GET_SIZE(ops); k++, at++) {
            PyObject *op = PyList_GET_ITEM(ops, k);
            if (!PyTuple_Check(op) || PyTuple_GET_SIZE(op) < 2 || PyTuple_GET_SIZE(op) > OP_WIDTH)
                return -1;
            long *row = p->ops + at * OP_WIDTH;
            static const Py_ssize_t SIZES[] = {2, 2, 2, 2, 4, 7, 3, 3, 2, 4, 3}; /* tuple lengths */
            row[0] = PyLong_AsLong(PyTuple_GET_ITEM(op, 0));
            if (row[0] < OP_TEXT || row[0] > OP_ITEM_TIME || PyTuple_GET_SIZE(op) != SIZES[row[0]])
                return -1;
            /* item ops only inside an OP_ITEMS's span (its second field: how many follow) */
            int is_item = row[0] >= OP_ITEM_INT;
            if (items_left > 0) {
                items_left--;
                if (row[0] != OP_TEXT && !is_item)
                    return -1;
            } else if (is_item) {
                return -1;
            }
            if (row[0] == OP_TEXT) {
                PyObject *text = PyTuple_GET_ITEM(op, 1); /* kept alive by the caller's list */
                if (!PyBytes_Check(text))
                    return -1;
                p->text[at] = PyBytes_AS_STRING(text);
                p->text_len[at] = PyBytes_GET_SIZE(text);
                continue;
            }
            for (Py_ssize_t f = 1; f < PyTuple_GET_SIZE(op); f++) {
                row[f] = PyLong_AsLong(PyTuple_GET_ITEM(op, f));
                long bound = row[0] == OP_ITEMS && f == 2 ? PyList_GET_SIZE(ops) - k : columns;
                if (row[f] < 0 || row[f] >= bound)
                    return -1;
            }
            if (PyErr_Occurred())
                return -1;
            if (row[0] == OP_ITEMS)
                items_left = row[2];
        }
    }
    p->starts[p->shapes] = at;
    return 0;
}

/* A message's items (the OP_ITEMS op at `at`, its item ops after it): each item's shape filled
 * with its elements, joined by commas. */
static int put_items(Out *out, RCol *cols, const Programs *programs, Py_ssize_t at, Py_ssize_t i) {
    const long *items = programs->ops + at * OP_WIDTH;
    enum { MAX_ITEM_OPS = 64 };
    ItemBounds bounds[MAX_ITEM_OPS];
    Py_ssize_t lo, hi;
    if (items[2] > MAX_ITEM_OPS || list_bounds(&cols[items[1]], i, &lo, &hi) < 0)
        return -1; /* more holes in an item than any shape has: the pure path renders it */
    for (Py_ssize_t n = 1; n <= items[2]; n++) {
        const long *op = programs->ops + (at + n) * OP_WIDTH;
        if (op[0] != OP_TEXT && item_bounds(cols, op, i, &bounds[n - 1]) < 0)
            return -1;
    }
    for (Py_ssize_t k = 0; k < hi - lo; k++) {
        if (k > 0 && out_put(out, ",", 1) < 0)
            return -1;
        for (Py_ssize_t n = 1; n <= items[2]; n++) {
            const long *op = programs->ops + (at + n) * OP_WIDTH;
            int bad = op[0] == OP_TEXT
                          ? out_put(out, programs->text[at + n], programs->text_len[at + n])
                          : put_item_hole(out, cols, op, &bounds[n - 1], k);
            if (bad < 0)
                return -1;
        }
    }
    return 0;
}

static int render_loop(Out *out, const int64_t *order, Py_ssize_t count, RCol *shape,
                       RCol *payload, RCol *cols, Programs *programs, int32_t *ends) {
    ends[0] = 0;
    for (Py_ssize_t k = 0; k < count; k++) {
        Py_ssize_t i = (Py_ssize_t)order[k];
        long long id;
        if (rcol_int(shape, i, &id) < 0) { /* no shape: the stored payload */
            const char *s;
            Py_ssize_t n;
            if (!rcol_valid(payload, i) || string_at(payload, payload->offset + i, &s, &n) < 0 ||
                out_put(out, s, n) < 0)
                return -1;
        } else {
            if (id < 0 || id >= programs->shapes)
                return -1;
            for (Py_ssize_t at = programs->starts[id]; at < programs->starts[id + 1]; at++) {
                const long *op = programs->ops + at * OP_WIDTH;
                int bad;
                if (op[0] == OP_TEXT)
                    bad = out_put(out, programs->text[at], programs->text_len[at]);
                else if (op[0] == OP_ITEMS) {
                    bad = put_items(out, cols, programs, at, i);
                    at += op[2];
                } else
                    bad = put_hole(out, cols, op, i);
                if (bad < 0)
                    return -1;
            }
        }
        if (out->len > INT32_MAX)
            return -1;
        ends[k + 1] = (int32_t)out->len;
    }
    return 0;
}

/* The bytes render_rows wrote, owned as they are and read through the buffer protocol (Arrow
 * wraps them as a Buffer without copying). */
typedef struct {
    PyObject_HEAD char *data;
    Py_ssize_t len, cap;
} RenderedBytes;

static int rendered_getbuffer(RenderedBytes *self, Py_buffer *view, int flags) {
    return PyBuffer_FillInfo(view, (PyObject *)self, self->data, self->len, 1, flags);
}

static void rendered_dealloc(RenderedBytes *self) {
    spare_give(self->data, self->cap);
    PyObject_Free(self);
}

static PyBufferProcs rendered_as_buffer = {(getbufferproc)rendered_getbuffer, NULL};

static PyTypeObject RenderedBytesType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "rtcap._speedups.RenderedBytes",
    .tp_basicsize = sizeof(RenderedBytes),
    .tp_dealloc = (destructor)rendered_dealloc,
    .tp_as_buffer = &rendered_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The payload bytes of one render_rows call (a read-only buffer).",
};

/* Whether every op reads columns of the layouts it expects (a file whose typed columns are not
 * of the cold schema's types is left to the pure path, which refuses or reads it its own way). */
static int ops_fit(const Programs *p, const RCol *cols) {
    for (Py_ssize_t at = 0; at < p->starts[p->shapes]; at++) {
        const long *op = p->ops + at * OP_WIDTH;
        int fits;
        switch (op[0]) {
        case OP_TEXT:
            fits = 1;
            break;
        case OP_INT:
            fits = cols[op[1]].kind == 0;
            break;
        case OP_BOOL:
            fits = cols[op[1]].kind == 1;
            break;
        case OP_STRING:
            fits = cols[op[1]].kind == 2 || cols[op[1]].kind == 3;
            break;
        case OP_DECIMAL:
            fits = cols[op[1]].kind == 0 && cols[op[2]].kind == 0 && cols[op[3]].kind == 0;
            break;
        case OP_LEVELS:
            fits = cols[op[1]].kind == 4 && cols[op[4]].kind == 4 && cols[op[2]].kind == 0 &&
                   cols[op[3]].kind == 0 && cols[op[5]].kind == 0 && cols[op[6]].kind == 0;
            break;
        case OP_TIME:
            fits = cols[op[1]].kind == 0 && cols[op[2]].kind == 0;
            break;
        case OP_ITEMS:
        case OP_ITEM_INT:
            fits = cols[op[1]].kind == 4;
            break;
        case OP_ITEM_DECIMAL:
            fits = cols[op[1]].kind == 4 && cols[op[2]].kind == 0 && cols[op[3]].kind == 4;
            break;
        case OP_ITEM_TIME:
            fits = cols[op[1]].kind == 4 && cols[op[2]].kind == 4;
            break;
        default:
            fits = 0;
        }
        if (!fits)
            return 0;
    }
    return 1;
}

/* render_rows(order, count, shape, payload, programs, specs) -> (offsets, data) | None */
static PyObject *render_rows(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *order_obj, *shape_spec, *payload_spec, *programs_obj, *specs;
    Py_ssize_t count;
    if (!PyArg_ParseTuple(args, "OnOOO!O!", &order_obj, &count, &shape_spec, &payload_spec,
                          &PyList_Type, &programs_obj, &PyList_Type, &specs))
        return NULL;
    Py_ssize_t ncols = PyList_GET_SIZE(specs);
    RCol *cols = PyMem_Calloc(ncols + 2, sizeof(RCol));
    Py_buffer order = {0};
    Programs programs = {0};
    Out out = {0};
    out.second = -1;
    PyObject *offsets = NULL, *result = NULL;
    int ok = 0;
    if (cols == NULL)
        return PyErr_NoMemory();
    RCol *shape = &cols[ncols], *payload = &cols[ncols + 1];
    if (get_view(order_obj, &order) < 0 || order.len < count * 8 ||
        rcol_init(shape, shape_spec) < 0 || rcol_init(payload, payload_spec) < 0 ||
        programs_init(&programs, programs_obj, ncols) < 0)
        goto done;
    for (Py_ssize_t c = 0; c < ncols; c++)
        if (rcol_init(&cols[c], PyList_GET_ITEM(specs, c)) < 0)
            goto done;
    if (shape->kind != 0 || payload->kind != 3 || !ops_fit(&programs, cols))
        goto done;
    offsets = PyBytes_FromStringAndSize(NULL, (count + 1) * 4);
    if (offsets == NULL)
        goto done;
    spare_take(&out);
    int status;
    Py_BEGIN_ALLOW_THREADS /* only buffers are read: the prefetching thread's peers run on */
    status = render_loop(&out, (const int64_t *)order.buf, count, shape, payload, cols,
                         &programs, (int32_t *)PyBytes_AS_STRING(offsets));
    Py_END_ALLOW_THREADS
    if (status < 0)
        goto done;
    if (out.buf == NULL && out_reserve(&out, 1) < 0) /* no rows: still a buffer */
        goto done;
    RenderedBytes *data = PyObject_New(RenderedBytes, &RenderedBytesType);
    if (data != NULL) {
        data->data = out.buf; /* handed over: no copy of a row group's payloads with the GIL */
        data->len = out.len;
        data->cap = out.cap;
        out.buf = NULL;
        result = PyTuple_Pack(2, offsets, (PyObject *)data);
        Py_DECREF(data);
    }
    ok = 1;
done:
    for (Py_ssize_t c = 0; c < ncols + 2; c++)
        rcol_release(&cols[c]);
    PyMem_Free(cols);
    if (order.obj != NULL)
        PyBuffer_Release(&order);
    programs_free(&programs);
    spare_give(out.buf, out.cap);
    Py_XDECREF(offsets);
    if (!ok) {
        if (PyErr_Occurred() && !PyErr_ExceptionMatches(PyExc_MemoryError))
            PyErr_Clear();
        if (!PyErr_Occurred())
            Py_RETURN_NONE;
    }
    return result;
}

static PyMethodDef methods[] = {
    {"projectx_trades", (PyCFunction)(void (*)(void))projectx_trades, METH_FASTCALL,
     "projectx_trades(payload: bytes, symbols: dict) -> (symbol, [(price, volume, side, "
     "exch_ns), ...]) | None\n\nThe prints of a frame holding exactly one plain GatewayTrade "
     "record of a contract that symbols (contract id -> trader symbol) names; None for any "
     "other frame (decode it with the general path)."},
    {"projectx_decode", (PyCFunction)(void (*)(void))projectx_decode, METH_FASTCALL,
     "projectx_decode(symbols, general, frame, sink) -> None\n\nDecode one frame into sink: "
     "a frame projectx_trades reads becomes sink.trade(...) (one print) or "
     "sink.trades(symbol, prints, recv_ns, seq); a plain GatewayQuote or GatewayDepth record "
     "of a known contract sink.quote(Quote(...)) or sink.depth(DepthUpdate(...)); any other is "
     "general(frame, sink)."},
    {"projectx_types", (PyCFunction)(void (*)(void))projectx_types, METH_FASTCALL,
     "projectx_types(Quote, DepthLevel, DepthUpdate, depth_sides) -> None\n\nThe classes "
     "projectx_decode builds quotes and depth updates with, and the depth type -> side map; "
     "until this is called, quote and depth frames take the general path."},
    {"frames_from_arrays", frames_from_arrays, METH_VARARGS,
     "frames_from_arrays(cls, start, length, specs) -> list | None\n\nInstances of the "
     "__slots__ class cls, one per row of rows start..start+length, each field set from its column's Arrow buffers. specs holds "
     "one (field, kind, width, offset, validity, values, data_or_words) per field: kind 0 "
     "integers, 1 dictionary indices into the list data_or_words, 2 binary offsets into the "
     "bytes data_or_words. None when a column is not of a shape it reads."},
    {"frame_columns", frame_columns, METH_VARARGS,
     "frame_columns(frames, cls, specs) -> tuple | None\n\nThe Arrow buffers of the fields of "
     "frames (a list of cls instances), one entry per (field, kind, nullable) in specs: kind 0 "
     "int64 and 1 int32 give (values, (validity, nulls)); 2 binary gives (offsets, data); 3 "
     "strings give (int32 indices, (validity, nulls), distinct values in order of first "
     "appearance). validity is None when no row is null. None when a value is not of the kind "
     "it builds (the caller then uses pyarrow on Python lists)."},
    {"apply_levels", (PyCFunction)(void (*)(void))apply_levels, METH_FASTCALL,
     "apply_levels(bids, asks, bid_ns, ask_ns, bid_prices, ask_prices, levels, ns, changed, "
     "sides) -> int\n\nOrderBook.apply_levels on the book's dicts and sorted price lists: "
     "each level's side (or sides[level.type] when sides is a dict, a type it does not name "
     "refused) picks the side, the level is set, removed or refused, and (side, price, size) "
     "appended to changed unless it is None; a reset level clears both sides and appends "
     "('reset', price, 0.0). Returns how many levels were refused."},
    {"render_rows", render_rows, METH_VARARGS,
     "render_rows(order, count, shape, payload, programs, specs) -> (offsets, data) | None\n\n"
     "The payloads of rows order[0..count) (an int64 buffer) of a cold table: shape s's "
     "programs[s], a list of ops (0, text), (1, c) int, (2, c) string, (3, c) bool, (4, v, sc, "
     "dg) decimal, (5, prices, price_scale, price_digits, sizes, size_scale, size_digits) "
     "levels, (6, ns, dg) time, (7, list, n) items: the n ops after it once per element of "
     "list, joined by commas, being texts and (8, list) int, (9, list, sc, dg_list) decimal, "
     "(10, list, dg_list) time of each item; over the columns in specs, each (kind, width, "
     "offset, child_offset, validity, "
     "values, offsets, data); rows with a null shape give their payload. Returns the int32 "
     "offsets and the data of a binary array, or None when a row is outside what it reads."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "rtcap._speedups",
    "Compiled fast paths of the kernel; each has a pure-Python reference.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__speedups(void) {
    SIDE_BUY = PyUnicode_InternFromString("buy");
    SIDE_SELL = PyUnicode_InternFromString("sell");
    STR_PAYLOAD = PyUnicode_InternFromString("payload");
    STR_RECV_NS = PyUnicode_InternFromString("recv_ns");
    STR_SEQ = PyUnicode_InternFromString("seq");
    STR_TRADE = PyUnicode_InternFromString("trade");
    STR_TRADES = PyUnicode_InternFromString("trades");
    STR_QUOTE = PyUnicode_InternFromString("quote");
    STR_DEPTH = PyUnicode_InternFromString("depth");
    SIDE_OTHER = PyUnicode_InternFromString("other");
    STR_BOOK = PyUnicode_InternFromString("book");
    STR_BEST_BID = PyUnicode_InternFromString("best_bid");
    STR_BEST_ASK = PyUnicode_InternFromString("best_ask");
    STR_APPEND = PyUnicode_InternFromString("append");
    if (STR_BOOK == NULL || STR_BEST_BID == NULL || STR_BEST_ASK == NULL || STR_APPEND == NULL)
        return NULL;
    STR_SIDE = PyUnicode_InternFromString("side");
    STR_TYPE = PyUnicode_InternFromString("type");
    STR_PRICE = PyUnicode_InternFromString("price");
    STR_VOLUME = PyUnicode_InternFromString("volume");
    STR_BID = PyUnicode_InternFromString("bid");
    STR_ASK = PyUnicode_InternFromString("ask");
    STR_RESET = PyUnicode_InternFromString("reset");
    FLOAT_INF = PyFloat_FromDouble(Py_HUGE_VAL);
    FLOAT_NEG_INF = PyFloat_FromDouble(-Py_HUGE_VAL);
    FLOAT_ZERO = PyFloat_FromDouble(0.0);
    INT_ZERO = PyLong_FromLong(0);
    if (STR_SIDE == NULL || STR_TYPE == NULL || STR_PRICE == NULL || STR_VOLUME == NULL ||
        STR_BID == NULL || STR_ASK == NULL || STR_RESET == NULL || FLOAT_INF == NULL ||
        FLOAT_NEG_INF == NULL || FLOAT_ZERO == NULL || INT_ZERO == NULL)
        return NULL;
    if (SIDE_BUY == NULL || SIDE_SELL == NULL || STR_PAYLOAD == NULL || STR_RECV_NS == NULL ||
        STR_SEQ == NULL || STR_TRADE == NULL || STR_TRADES == NULL || STR_QUOTE == NULL ||
        STR_DEPTH == NULL || SIDE_OTHER == NULL)
        return NULL;
    if (PyType_Ready(&TradeFoldType) < 0 || PyType_Ready(&RenderedBytesType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&module_def);
    if (module != NULL && PyModule_AddObjectRef(module, "TradeFold", (PyObject *)&TradeFoldType) < 0)
        Py_CLEAR(module);
    return module;
}
