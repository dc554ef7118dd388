// build.mjs writes the socket.io Admin UI to dist/, for chatd to embed and
// serve at /admin/ (see adminui.go): the UI bundle that @socket.io/admin-ui
// ships (ui/dist, without source maps), the Roboto font (@fontsource/roboto)
// and the Material Design Icons font (@mdi/font) that its index.html loads
// from public CDNs, and the three packages' licenses. It rewrites:
//
//   - index.html: the two CDN stylesheets become the copies in dist/, so
//     the page makes no request to another host;
//   - the app bundle: the login form's server URL defaults to the origin
//     that served the page, and the UI keeps its settings and session id in
//     the tab's sessionStorage instead of the origin's localStorage (which
//     the chat web client at / shares): closing the tab logs out.
//
// Each rewrite must match exactly as often as expected, or the build fails:
// a new version of the package is then checked by hand.
//
//   npm ci && npm run build
import { copyFile, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(fileURLToPath(import.meta.url));
const dist = join(root, 'dist');
const require = createRequire(import.meta.url);
const pkgDir = (name) => dirname(require.resolve(`${name}/package.json`));

const adminUI = pkgDir('@socket.io/admin-ui');
const roboto = pkgDir('@fontsource/roboto');
const mdi = pkgDir('@mdi/font');
const robotoWeights = [100, 300, 400, 500, 700, 900]; // those the CDN link asked for

// replaceExactly replaces pattern in text, failing unless it matched count times.
function replaceExactly(text, pattern, replacement, count, what) {
  const found = text.match(new RegExp(pattern.source, pattern.flags.includes('g') ? pattern.flags : pattern.flags + 'g'));
  const n = found ? found.length : 0;
  if (n !== count) {
    throw new Error(`${what}: expected ${count} match(es) of ${pattern}, found ${n}; check the new @socket.io/admin-ui by hand`);
  }
  return text.replace(pattern, replacement);
}

// Empty dist/ but keep the placeholder that git and Go's embed need.
await mkdir(dist, { recursive: true });
for (const name of await readdir(dist)) {
  if (name !== '.gitkeep') await rm(join(dist, name), { recursive: true, force: true });
}

// The UI bundle, without source maps.
const ui = join(adminUI, 'ui', 'dist');
for (const sub of ['css', 'js', 'img']) {
  await mkdir(join(dist, sub), { recursive: true });
  for (const name of await readdir(join(ui, sub))) {
    if (name.endsWith('.map')) continue;
    await copyFile(join(ui, sub, name), join(dist, sub, name));
  }
}
await copyFile(join(ui, 'favicon.png'), join(dist, 'favicon.png'));

let html = await readFile(join(ui, 'index.html'), 'utf8');
html = replaceExactly(html, /https:\/\/fonts\.googleapis\.com\/css\?family=Roboto:[0-9,]+/, 'fonts/roboto.css', 1, 'index.html Roboto link');
html = replaceExactly(html, /https:\/\/cdn\.jsdelivr\.net\/npm\/@mdi\/font@latest\/css\/materialdesignicons\.min\.css/, 'mdi/css/materialdesignicons.min.css', 1, 'index.html icons link');
if (/(https?:)?\/\/[a-z0-9.-]+\.[a-z]{2,}/i.test(html)) throw new Error('index.html still names another host');
await writeFile(join(dist, 'index.html'), html);

const jsDir = join(dist, 'js');
const appName = (await readdir(jsDir)).find((n) => /^app\.[0-9a-f]+\.js$/.test(n));
if (!appName) throw new Error('no app.<hash>.js in the UI bundle');
let app = await readFile(join(jsDir, appName), 'utf8');
app = replaceExactly(app, /"initial-server-url":(\w+)\.serverUrl\b/, '"initial-server-url":$1.serverUrl||window.location.origin', 1, 'server URL default');
app = replaceExactly(app, /\blocalStorage\b/g, 'sessionStorage', 20, 'localStorage');
await writeFile(join(jsDir, appName), app);

// Roboto, the weights the CDN link asked for, latin subset, woff2 only.
await mkdir(join(dist, 'fonts'), { recursive: true });
let robotoCSS = '';
for (const w of robotoWeights) {
  const file = `roboto-latin-${w}-normal.woff2`;
  await copyFile(join(roboto, 'files', file), join(dist, 'fonts', file));
  robotoCSS += `@font-face{font-family:'Roboto';font-style:normal;font-display:swap;font-weight:${w};src:url(./${file}) format('woff2')}\n`;
}
await writeFile(join(dist, 'fonts', 'roboto.css'), robotoCSS);

// Material Design Icons, woff2 only.
await mkdir(join(dist, 'mdi', 'css'), { recursive: true });
await mkdir(join(dist, 'mdi', 'fonts'), { recursive: true });
let mdiCSS = await readFile(join(mdi, 'css', 'materialdesignicons.min.css'), 'utf8');
mdiCSS = replaceExactly(mdiCSS, /@font-face\{[^}]*\}/, '@font-face{font-family:"Material Design Icons";src:url("../fonts/materialdesignicons-webfont.woff2") format("woff2");font-weight:normal;font-style:normal}', 1, 'icons @font-face');
if (/url\((?!"?\.\.\/fonts\/materialdesignicons-webfont\.woff2)/.test(mdiCSS)) throw new Error('the icons stylesheet names another file');
await writeFile(join(dist, 'mdi', 'css', 'materialdesignicons.min.css'), mdiCSS);
await copyFile(join(mdi, 'fonts', 'materialdesignicons-webfont.woff2'), join(dist, 'mdi', 'fonts', 'materialdesignicons-webfont.woff2'));

// The licenses, beside the copies.
await copyFile(join(adminUI, 'LICENSE'), join(dist, 'LICENSE.admin-ui.txt'));
await copyFile(join(mdi, 'LICENSE'), join(dist, 'LICENSE.mdi-font.txt'));
await copyFile(join(roboto, 'LICENSE'), join(dist, 'LICENSE.roboto.txt'));
console.log('admin UI written to dist/');
