/* pipeline.c — source -> type -> thumbnail for one job. */
#include "pipeline.h"

#include <string.h>

static int run_on_bytes(const struct pipeline *pl, const struct job_params *p, const void *buf,
                        size_t len, struct pipeline_outcome *out) {
    const struct config *cfg = pl->cfg;
    out->src_bytes = len;
    if (imgtype_check(pl->types, buf, len, cfg->image_allowed_types, out->src_mime, &out->fail) < 0)
        return -1;
    struct thumb_opts o = {
        .avif_effort = (int)cfg->image_avif_effort,
        .max_pixels = cfg->image_max_pixels,
        .max_frames = cfg->image_max_frames,
        .max_output_pixels = cfg->image_max_output_pixels,
        .max_job_pixels = cfg->image_max_job_pixels,
        .max_result_bytes = (size_t)cfg->image_max_result_bytes,
        .expect_mime = out->src_mime,
    };
    int rc = thumb_make_set(&o, p->out, p->nout, buf, len, &out->set, &out->fail);
    out->src_width = out->set.src_width;
    out->src_height = out->set.src_height;
    /* image.max_result_bytes bounds each encoding (thumb.c) and what the job
     * stores in all: Redis and the cache hold them as one. */
    size_t total = 0;
    for (int i = 0; rc == 0 && i < out->set.nenc; i++)
        total += out->set.enc[i].len;
    if (rc == 0 && total > o.max_result_bytes) {
        rc = failure_set(&out->fail, "result_too_large",
                         "the job's %d encodings add up to %zu bytes, more than the limit of %zu "
                         "(image.max_result_bytes): ask for fewer or smaller outputs",
                         out->set.nenc, total, o.max_result_bytes);
        thumb_set_free(&out->set);
    }
    return rc;
}

int pipeline_run(const struct pipeline *pl, const struct job_params *p, const void *upload,
                 size_t upload_len, struct pipeline_outcome *out) {
    memset(out, 0, sizeof(*out));
    int rc;
    int max = (int)pl->cfg->image_max_dimension;
    const struct job_output *bad = NULL;
    for (int i = 0; i < p->nout && bad == NULL; i++) {
        const struct job_output *o = &p->out[i];
        if (o->width < 1 || o->width > max || o->height < 1 || o->height > max || o->quality < 1 ||
            o->quality > 100)
            bad = o;
    }
    if (bad) {
        /* The http side validates these; a record written otherwise is refused here. */
        rc = failure_set(&out->fail, "invalid_job",
                         "the job asks for %dx%d at quality %d; limits are 1..%d and 1..100",
                         bad->width, bad->height, bad->quality, max);
    } else if (upload) {
        rc = run_on_bytes(pl, p, upload, upload_len, out);
    } else if (p->url == NULL) {
        rc = failure_set(&out->fail, "invalid_job", "the job has neither a URL nor an upload");
    } else {
        struct fetch_opts fo;
        fetch_opts_from_config(&fo, pl->cfg);
        struct fetch_body body;
        rc = fetch_url(pl->fetch, &fo, p->url, &body, &out->fail);
        if (rc == 0) {
            rc = run_on_bytes(pl, p, body.data, body.len, out);
            fetch_body_free(&body);
        }
    }
    out->ok = rc == 0;
    return rc;
}

void pipeline_outcome_free(struct pipeline_outcome *out) {
    thumb_set_free(&out->set);
}
