// `npm run build`'s second step: dist/tidemark.js (package.json's bin) and the bundle it runs.
import { relative, resolve } from 'node:path';
import { bundleCli } from '../lib/local/cli-bundle';

const root = resolve(__dirname, '..');
process.stdout.write(`${relative(root, bundleCli(root, 'dist'))}\n`);
