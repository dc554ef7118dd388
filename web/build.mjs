// build.mjs writes the browser client to dist/: index.html, app.js (one
// minified bundle with socket.io-client inside) and app.css. chatd embeds
// dist/ at compile time (see web.go), so build this before `go build`.
//
//   npm run build          one build
//   npm run watch          rebuild on every change under src/
import * as esbuild from 'esbuild';
import { copyFile, mkdir, readdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(fileURLToPath(import.meta.url));
const src = join(root, 'src');
const dist = join(root, 'dist');
const watch = process.argv.includes('--watch');

// Empty dist/ but keep the placeholder that git and Go's embed need.
await mkdir(dist, { recursive: true });
for (const name of await readdir(dist)) {
  if (name !== '.gitkeep') await rm(join(dist, name), { recursive: true, force: true });
}

const copyHTML = {
  name: 'copy-html',
  setup(build) {
    build.onEnd(async (result) => {
      if (result.errors.length === 0) await copyFile(join(src, 'index.html'), join(dist, 'index.html'));
    });
  },
};

const options = {
  entryPoints: [join(src, 'app.js'), join(src, 'app.css')],
  outdir: dist,
  entryNames: '[name]',
  bundle: true,
  minify: true,
  sourcemap: false,
  format: 'iife',
  target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
  legalComments: 'none',
  logLevel: 'info',
  plugins: [copyHTML],
};

if (watch) {
  const ctx = await esbuild.context(options);
  await ctx.watch();
} else {
  await esbuild.build(options);
}
