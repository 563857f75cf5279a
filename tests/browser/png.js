// A tiny check that a screenshot shows something: decode the PNG (pngjs)
// and measure how many distinct colours it has and how much its pixels vary.
'use strict';
const { PNG } = require('pngjs');

function pngStats(buffer) {
  const png = PNG.sync.read(buffer);
  const colours = new Set();
  let sum = 0;
  let sumSq = 0;
  const n = png.width * png.height;
  for (let i = 0; i < png.data.length; i += 4) {
    const [r, g, b] = [png.data[i], png.data[i + 1], png.data[i + 2]];
    const lum = 0.2126 * r + 0.7152 * g + 0.0722 * b;
    sum += lum;
    sumSq += lum * lum;
    if (colours.size < 100000) colours.add((r << 16) | (g << 8) | b);
  }
  const mean = sum / n;
  return { width: png.width, height: png.height, colours: colours.size, stddev: Math.sqrt(Math.max(0, sumSq / n - mean * mean)) };
}

/** Throws unless the image has at least `minColours` colours and some contrast. */
function assertNotBlank(buffer, { minColours = 32, minStddev = 8 } = {}) {
  const s = pngStats(buffer);
  if (s.colours < minColours || s.stddev < minStddev) {
    throw new Error(`screenshot looks blank: ${JSON.stringify(s)}`);
  }
  return s;
}

module.exports = { pngStats, assertNotBlank };
