// encode.js FILE [XCOMP YCOMP] — npm's BlurHash of a binary PPM (P6, maxval
// 255), 4 x 3 components without XCOMP YCOMP: the string tests/blurhash/
// roundtrip.py expects ours (bh_encode) to equal. The module comes from
// NODE_PATH (tests/blurhash/CMakeLists.txt installs it).
"use strict";
const fs = require("fs");
const { encode } = require("blurhash");

const [file, xc, yc] = [process.argv[2], Number(process.argv[3] || 4), Number(process.argv[4] || 3)];
if (!file) {
    console.error("usage: node encode.js FILE [XCOMP YCOMP]");
    process.exit(2);
}
const data = fs.readFileSync(file);

// The header: "P6", width, height, maxval, blanks and # comments between, one
// blank after maxval.
let pos = 0;
function token() {
    for (;;) {
        while (pos < data.length && /\s/.test(String.fromCharCode(data[pos]))) pos++;
        if (data[pos] !== 0x23) break; // '#'
        while (pos < data.length && data[pos] !== 0x0a) pos++;
    }
    const start = pos;
    while (pos < data.length && !/\s/.test(String.fromCharCode(data[pos]))) pos++;
    return data.toString("latin1", start, pos);
}
const [magic, w, h, maxval] = [token(), Number(token()), Number(token()), Number(token())];
pos++;
if (magic !== "P6" || !(w > 0) || !(h > 0) || maxval !== 255 || data.length - pos < w * h * 3) {
    console.error(`encode.js: ${file}: not a binary PPM (P6) of maxval 255`);
    process.exit(1);
}

const rgba = new Uint8ClampedArray(w * h * 4);
for (let i = 0; i < w * h; i++) {
    rgba[i * 4] = data[pos + i * 3];
    rgba[i * 4 + 1] = data[pos + i * 3 + 1];
    rgba[i * 4 + 2] = data[pos + i * 3 + 2];
    rgba[i * 4 + 3] = 255;
}
console.log(encode(rgba, w, h, xc, yc));
