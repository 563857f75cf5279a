// Copies the browser libraries the dashboard uses from node_modules into
// web/vendor/ (with their licences), so the page works offline and needs no
// build step. Run after changing a version in package.json: `npm run vendor`.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const out = path.resolve(__dirname, '../../web/vendor');
const mod = (name) => path.join(__dirname, 'node_modules', name);
const version = (name) => JSON.parse(fs.readFileSync(path.join(mod(name), 'package.json'), 'utf8')).version;

const files = [
  ['mqtt', 'dist/mqtt.min.js', 'mqtt.min.js'],
  ['mqtt', 'LICENSE.md', 'LICENSE-mqtt.md'],
  ['uplot', 'dist/uPlot.iife.min.js', 'uPlot.iife.min.js'],
  ['uplot', 'dist/uPlot.min.css', 'uPlot.min.css'],
  ['uplot', 'LICENSE', 'LICENSE-uplot.txt'],
];
fs.mkdirSync(out, { recursive: true });
for (const [name, from, to] of files) {
  fs.copyFileSync(path.join(mod(name), from), path.join(out, to));
}
const readme = `# Vendored browser libraries

Copied from npm by \`tests/browser/vendor.js\` (\`npm run vendor\` in
tests/browser); not edited. Both are MIT-licensed; their licences sit beside
them.

| file | package | version | licence |
| --- | --- | --- | --- |
| mqtt.min.js | mqtt (MQTT.js), dist/mqtt.min.js | ${version('mqtt')} | LICENSE-mqtt.md |
| uPlot.iife.min.js, uPlot.min.css | uplot | ${version('uplot')} | LICENSE-uplot.txt |
`;
fs.writeFileSync(path.join(out, 'README.md'), readme);
console.log(`vendored into ${out}`);
