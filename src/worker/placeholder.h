/* placeholder.h — what a page shows before a thumbnail loads: its BlurHash and its
 * dominant colour, from the pixels of a small sRGB image. No libvips, no I/O. */
#ifndef TH_PLACEHOLDER_H
#define TH_PLACEHOLDER_H

#include <stddef.h>

/* BlurHash (woltapp's published encoding) of an sRGB image of width x height
 * pixels, 3 bytes per pixel (r, g, b), rows stride bytes apart, with xcomp x
 * ycomp components (1..9 each), into out (NUL-terminated; at most
 * 4 + 2 * 81 = 166 bytes plus the NUL are needed, 4x3 needs 28+1). Returns the
 * length, or -1 for bad arguments (out too small included) and when the
 * cosine tables (height x ycomp doubles) cannot be allocated; out is then
 * untouched. The work is width x height x xcomp x ycomp: give it a thumbnail
 * of a few dozen pixels a side, not the source. */
int placeholder_blurhash(const unsigned char *rgb, int width, int height, size_t stride, int xcomp,
                         int ycomp, char *out, size_t outlen);

/* The dominant colour of the same kind of image: the most populated cell of a
 * coarse histogram (4 bits per channel), as the mean of that cell's pixels,
 * into out (r, g, b). Of cells equally populated, the one first in r, g, b
 * order of their top bits wins. Bad arguments give black. */
void placeholder_dominant(const unsigned char *rgb, int width, int height, size_t stride,
                          unsigned char out[3]);

/* PLACEHOLDER_SIDE x PLACEHOLDER_SIDE: the box the pixels hashed fit in. */
#define PLACEHOLDER_SIDE 32

/* Shrinks an 8-bit sRGB image of width x height pixels, bands 3 (r, g, b) or
 * 4 (r, g, b, alpha) bytes per pixel, rows stride bytes apart, to fit in
 * PLACEHOLDER_SIDE x PLACEHOLDER_SIDE keeping its aspect (never grown, at
 * least 1x1): each pixel out the mean of the area of the source it covers,
 * alpha flattened on white. Into out (3 bytes per pixel, rows
 * 3 x PLACEHOLDER_SIDE bytes apart), its size in *out_w x *out_h. Returns 0,
 * or -1 for bad arguments. */
int placeholder_shrink(const unsigned char *px, int width, int height, size_t stride, int bands,
                       unsigned char out[PLACEHOLDER_SIDE * PLACEHOLDER_SIDE * 3], int *out_w,
                       int *out_h);

#endif
