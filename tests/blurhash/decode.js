// decode.js HASH WIDTH HEIGHT — decodes HASH with npm's blurhash into an image of
// WIDTH x HEIGHT and prints {"average": [r, g, b], "dc": [r, g, b]}: the decoded
// image's mean colour and the hash's DC colour (its 4 characters after the
// first two, which carry the source's mean), both sRGB 0..255. The mean is
// taken in linear light, as the encoder takes the DC, then given in sRGB (two
// decimals), so that it is the colour the hash says the image averages to. The
// module comes from NODE_PATH (tests/blurhash/CMakeLists.txt installs it).
"use strict";
const { decode, isBlurhashValid } = require("blurhash");

const [hash, w, h] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
if (!hash || !(w > 0) || !(h > 0)) {
    console.error("usage: node decode.js HASH WIDTH HEIGHT");
    process.exit(2);
}
const valid = isBlurhashValid(hash);
if (!valid.result) {
    console.error(`decode.js: ${hash}: ${valid.errorReason}`);
    process.exit(1);
}

const toLinear = (v) => (v / 255 <= 0.04045 ? v / 255 / 12.92 : Math.pow((v / 255 + 0.055) / 1.055, 2.4));
const toSRGB = (v) => (v <= 0.0031308 ? v * 12.92 : 1.055 * Math.pow(v, 1 / 2.4) - 0.055) * 255;

const pixels = decode(hash, w, h); // RGBA
const sum = [0, 0, 0];
for (let i = 0; i < w * h; i++) for (let c = 0; c < 3; c++) sum[c] += toLinear(pixels[i * 4 + c]);
const average = sum.map((s) => Math.round(toSRGB(s / (w * h)) * 100) / 100);

const digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~";
const dcValue = [...hash.slice(2, 6)].reduce((v, ch) => v * 83 + digits.indexOf(ch), 0);
const dc = [dcValue >> 16, (dcValue >> 8) & 255, dcValue & 255];

console.log(JSON.stringify({ average, dc }));
