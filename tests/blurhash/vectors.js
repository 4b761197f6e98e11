// vectors.js — how the BlurHash vectors of tests/unit/test_placeholder.c were
// made: the same synthetic images as that test draws (the formulas of pixel()
// below and of the test's pixel() are one and the same), each encoded by npm's
// blurhash as package-lock.json pins it. Prints the C table to paste:
//   NODE_PATH=<build>/tests/blurhash/npm/node_modules node tests/blurhash/vectors.js
// (the tests' setup, blurhash.npm_ci, installs it there).
"use strict";
const { encode } = require("blurhash");

// r, g, b of pixel (x, y) of an image of kind k, w x h pixels.
function pixel(k, x, y, w, h) {
    switch (k) {
        case "IMG_BLACK":
            return [0, 0, 0];
        case "IMG_WHITE":
            return [255, 255, 255];
        case "IMG_GREY":
            return [128, 128, 128];
        case "IMG_ORANGE":
            return [230, 120, 20];
        case "IMG_HGRAD": {
            const r = w > 1 ? Math.floor((255 * x) / (w - 1)) : 0;
            return [r, 100, 255 - r];
        }
        case "IMG_VGRAD": {
            const g = h > 1 ? Math.floor((255 * y) / (h - 1)) : 0;
            const b = h > 1 ? 60 + Math.floor((128 * y) / (h - 1)) : 60;
            return [40, g, b];
        }
        case "IMG_CHECKER":
            return ((x >> 1) + (y >> 1)) & 1 ? [250, 250, 250] : [10, 10, 10];
        case "IMG_SPLIT":
            return x < Math.floor(w / 2) ? [220, 30, 40] : [30, 60, 200];
        case "IMG_PATTERN":
            return [(x * 37 + y * 91) % 256, (x * x * 13 + y * 7) % 256, (x * y * 29 + 50) % 256];
    }
    throw new Error(`no image kind ${k}`);
}

// kind, width, height, x components, y components
const vectors = [
    ["IMG_BLACK", 8, 8, 4, 3],
    ["IMG_WHITE", 8, 8, 4, 3],
    ["IMG_GREY", 6, 5, 4, 3],
    ["IMG_ORANGE", 8, 8, 4, 3],
    ["IMG_ORANGE", 1, 1, 4, 3],
    ["IMG_HGRAD", 16, 8, 4, 3],
    ["IMG_HGRAD", 32, 32, 4, 3],
    ["IMG_HGRAD", 13, 1, 4, 3],
    ["IMG_VGRAD", 8, 16, 4, 3],
    ["IMG_VGRAD", 3, 11, 4, 3],
    ["IMG_VGRAD", 1, 12, 4, 3],
    ["IMG_CHECKER", 8, 8, 4, 3],
    ["IMG_CHECKER", 16, 12, 4, 3],
    ["IMG_SPLIT", 10, 6, 4, 3],
    ["IMG_SPLIT", 7, 4, 4, 3],
    ["IMG_PATTERN", 7, 3, 4, 3],
    ["IMG_PATTERN", 1, 9, 4, 3],
    ["IMG_PATTERN", 32, 24, 4, 3],
    ["IMG_PATTERN", 32, 24, 1, 1],
    ["IMG_PATTERN", 32, 24, 9, 9],
    ["IMG_PATTERN", 5, 4, 3, 7],
    ["IMG_HGRAD", 16, 8, 5, 2],
    ["IMG_CHECKER", 16, 12, 9, 9],
    ["IMG_VGRAD", 8, 16, 1, 9],
    ["IMG_SPLIT", 10, 6, 9, 1],
];

for (const [k, w, h, xc, yc] of vectors) {
    const rgba = new Uint8ClampedArray(w * h * 4);
    for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++) {
            const [r, g, b] = pixel(k, x, y, w, h);
            rgba.set([r, g, b, 255], (y * w + x) * 4);
        }
    const hash = encode(rgba, w, h, xc, yc);
    console.log(`    {${k}, ${w}, ${h}, ${xc}, ${yc}, ${JSON.stringify(hash)}},`);
}
