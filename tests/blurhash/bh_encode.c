/* bh_encode.c — our BlurHash of a binary PPM (P6, maxval 255), for
 * tests/blurhash/roundtrip.py to set beside npm's.
 * Usage: bh_encode [FILE|-] [XCOMP YCOMP]; stdin without FILE or with "-",
 * 4 x 3 components without XCOMP YCOMP. Prints the hash; exit 1 on a bad file. */
#include "placeholder.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The next header number, past blanks and # comments; -1 when there is none. */
static long ppm_number(FILE *f) {
    int c;
    for (;;) {
        c = getc(f);
        if (c == '#')
            while (c != '\n' && c != EOF)
                c = getc(f);
        else if (!isspace(c))
            break;
    }
    long v = 0;
    if (!isdigit(c))
        return -1;
    for (; isdigit(c); c = getc(f)) {
        v = v * 10 + (c - '0');
        if (v > 1 << 20)
            return -1;
    }
    /* one blank ends the number; after maxval it is the last header byte */
    return isspace(c) ? v : -1;
}

/* The pixels of a P6 image, width x height x 3 bytes, or NULL. Owned by the
 * caller (free). */
static unsigned char *ppm_read(FILE *f, int *width, int *height) {
    if (getc(f) != 'P' || getc(f) != '6')
        return NULL;
    long w = ppm_number(f), h = ppm_number(f), maxval = ppm_number(f);
    if (w < 1 || h < 1 || maxval != 255)
        return NULL;
    size_t n = (size_t)w * (size_t)h * 3;
    unsigned char *rgb = malloc(n);
    if (rgb == NULL || fread(rgb, 1, n, f) != n) {
        free(rgb);
        return NULL;
    }
    *width = (int)w;
    *height = (int)h;
    return rgb;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "-";
    int xcomp = argc > 3 ? atoi(argv[2]) : 4, ycomp = argc > 3 ? atoi(argv[3]) : 3;
    if (argc != 1 && argc != 2 && argc != 4) {
        fprintf(stderr, "usage: bh_encode [FILE|-] [XCOMP YCOMP]\n");
        return 2;
    }
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return 1;
    }
    int width, height;
    unsigned char *rgb = ppm_read(f, &width, &height);
    if (f != stdin)
        fclose(f);
    if (rgb == NULL) {
        fprintf(stderr, "bh_encode: %s: not a binary PPM (P6) of maxval 255\n", path);
        return 1;
    }
    char hash[167];
    int n = placeholder_blurhash(rgb, width, height, (size_t)width * 3, xcomp, ycomp, hash,
                                 sizeof(hash));
    free(rgb);
    if (n < 0) {
        fprintf(stderr, "bh_encode: %dx%d components refused\n", xcomp, ycomp);
        return 1;
    }
    puts(hash);
    return 0;
}
