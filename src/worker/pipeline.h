/* pipeline.h — one job's work between taking it and storing the outcome: get the
 * source (fetch a URL, or the uploaded bytes), check its type, thumbnail it. */
#ifndef TH_PIPELINE_H
#define TH_PIPELINE_H

#include "config.h"
#include "failure.h"
#include "fetch.h"
#include "imgtype.h"
#include "job.h"
#include "thumb.h"

#include <stdbool.h>

/* What a worker owns for running jobs; none of it is freed by the pipeline. */
struct pipeline {
    const struct config *cfg;
    struct fetch *fetch;
    struct imgtype *types;
};

/* The outcome of one job. On failure fail.code is set; src_* hold what was
 * learnt of the source before it failed (src_mime empty when unknown). */
struct pipeline_outcome {
    bool ok;
    struct failure fail;
    struct thumb_set set; /* every output's encodings and the placeholder when ok */
    char src_mime[IMGTYPE_MIME_MAX];
    size_t src_bytes;
    int src_width; /* 0 when unknown */
    int src_height;
};

/* Runs p on the uploaded bytes (upload != NULL) or on p->url. Returns 0 when
 * out->ok, -1 otherwise; either way free out with pipeline_outcome_free. */
int pipeline_run(const struct pipeline *pl, const struct job_params *p, const void *upload,
                 size_t upload_len, struct pipeline_outcome *out);

void pipeline_outcome_free(struct pipeline_outcome *out);

#endif
