/* compat_doc.c — the original service's documents: request body, 422
 * details, statuses and data URLs. */
#include "compat_doc.h"

#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *compat_doc_status(const char *state) {
    static const struct {
        const char *ours, *theirs;
    } map[] = {
        {"queued", "queued"}, {"processing", "started"}, {"done", "finished"},
        {"failed", "failed"}, {"canceled", "failed"},
    };
    for (size_t i = 0; state && i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(map[i].ours, state) == 0)
            return map[i].theirs;
    return NULL;
}

char *compat_doc_data_url(const char *mime, const void *bytes, size_t len) {
    if (mime == NULL || *mime == '\0')
        mime = "application/octet-stream";
    if (len > (size_t)INT32_MAX / 4 * 3 - 3) /* EVP_EncodeBlock takes an int */
        return NULL;
    size_t head = strlen("data:") + strlen(mime) + strlen(";base64,");
    size_t b64 = 4 * ((len + 2) / 3);
    char *out = malloc(head + b64 + 1);
    if (out == NULL)
        return NULL;
    snprintf(out, head + 1, "data:%s;base64,", mime);
    EVP_EncodeBlock((unsigned char *)out + head, bytes, (int)len);
    out[head + b64] = '\0';
    return out;
}

/* Appends {"loc": ["body", loc?], "msg": msg, "type": "value_error"} to list;
 * loc NULL for the body as a whole. Returns 0 or -1. */
static int add_error(json_t *list, json_t *loc, const char *msg) {
    json_t *where = json_pack("[s]", "body");
    json_t *err = where ? json_object() : NULL;
    int rc = err ? 0 : -1;
    if (loc && where)
        rc |= json_array_append(where, loc);
    if (err) {
        rc |= json_object_set_new(err, "loc", where);
        rc |= json_object_set_new(err, "msg", json_string(msg));
        rc |= json_object_set_new(err, "type", json_string("value_error"));
        rc |= json_array_append_new(list, err);
    } else {
        json_decref(where);
    }
    json_decref(loc);
    return rc ? -1 : 0;
}

/* The string field name of root, or NULL with an error added to list. */
static const char *string_field(json_t *root, const char *name, json_t *list) {
    json_t *v = json_object_get(root, name);
    if (v == NULL)
        add_error(list, json_string(name), "field required");
    else if (!json_is_string(v))
        add_error(list, json_string(name), "str type expected");
    else
        return json_string_value(v);
    return NULL;
}

static void check_fields(struct job_params *p, json_t *root, bool with_email,
                         const char *recipients, json_t *list) {
    const char *email = string_field(root, "email", list);
    const char *url = string_field(root, "image_url", list);
    if (email && with_email) {
        if (!job_email_is_valid(email))
            add_error(list, json_string("email"), "value is not a valid email address");
        else if (recipients && recipients[0] && !job_email_domain_listed(recipients, email))
            add_error(list, json_string("email"),
                      "e-mail to this domain is not allowed on this server");
        else if ((p->email = strdup(email)) == NULL)
            add_error(list, json_string("email"), "out of memory");
    }
    if (url) {
        char msg[160];
        snprintf(msg, sizeof(msg),
                 "invalid or unsupported URL: an absolute http:// or https:// URL of at most "
                 "%d bytes is required",
                 JOB_URL_MAX);
        if (!job_url_is_valid(url))
            add_error(list, json_string("image_url"), msg);
        else if ((p->url = strdup(url)) == NULL)
            add_error(list, json_string("image_url"), "out of memory");
    }
}

int compat_doc_params(struct job_params *p, const char *body, size_t len, bool with_email,
                      const char *recipients, json_t **detail) {
    *detail = NULL;
    json_t *list = json_array();
    if (list == NULL)
        return -1;
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_DECODE_ANY, &jerr);
    if (root == NULL) {
        char msg[256];
        snprintf(msg, sizeof(msg), "JSON decode error: %s", jerr.text);
        add_error(list, json_integer((json_int_t)jerr.position), msg);
    } else if (!json_is_object(root)) {
        add_error(list, NULL, "value is not a valid dict");
    } else {
        check_fields(p, root, with_email, recipients, list);
    }
    json_decref(root);
    if (json_array_size(list) == 0) {
        json_decref(list);
        struct job_output *o = &p->out[0];
        o->width = o->height = COMPAT_THUMB_SIDE;
        o->fit = JOB_FIT_COVER;
        o->crop = JOB_CROP_CENTRE;
        o->formats[0] = JOB_FORMAT_ORIGINAL;
        o->nformats = 1;
        return 0;
    }
    *detail = json_object();
    if (json_object_set_new(*detail, "detail", list) < 0) { /* list is released either way */
        json_decref(*detail);
        *detail = NULL;
    }
    free(p->url);
    free(p->email);
    p->url = p->email = NULL;
    return -1;
}

json_t *compat_doc_thumb(const char *status, const char *data_url) {
    return json_pack("{s:s, s:s?}", "status", status, "image_base64", data_url);
}
