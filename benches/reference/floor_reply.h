/*
 * The answers both floor servers send: a SIP response to the request in
 * `req`, with the headers SIPp needs copied from it. Not a SIP
 * implementation. Shared by floor.c and floor_uring.c, so the two measure
 * the same work and differ only in how they wait, read and send.
 */
#ifndef FLOOR_REPLY_H
#define FLOOR_REPLY_H

#include <stdio.h>
#include <string.h>

static char port_text[8];

/* Copies the value of header `name` (with the leading "\n") into `out`. */
static void header(const char *msg, const char *name, char *out, size_t n) {
    const char *p = strstr(msg, name);
    out[0] = 0;
    if (!p) return;
    p += strlen(name);
    const char *end = strstr(p, "\r\n");
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len >= n) len = n - 1;
    memcpy(out, p, len);
    out[len] = 0;
}

static int reply(char *buf, size_t n, const char *req, int code, const char *reason) {
    char via[512], from[512], to[512], call_id[256], cseq[128];
    header(req, "\nVia: ", via, sizeof via);
    header(req, "\nFrom: ", from, sizeof from);
    header(req, "\nTo: ", to, sizeof to);
    header(req, "\nCall-ID: ", call_id, sizeof call_id);
    header(req, "\nCSeq: ", cseq, sizeof cseq);
    return snprintf(buf, n,
        "SIP/2.0 %d %s\r\nVia: %s\r\nFrom: %s\r\nTo: %s%s\r\nCall-ID: %s\r\n"
        "CSeq: %s\r\nContact: <sip:floor@127.0.0.1:%s>\r\nContent-Length: 0\r\n\r\n",
        code, reason, via, from, to, strstr(to, "tag=") ? "" : ";tag=floor", call_id,
        cseq, port_text);
}

#endif
