// Preloaded (`node -r bench/spawn-mark.js …`) into the node contenders of `npm run bench`: when the
// process first spawns the tool that does the work (pg_dump or pg_restore, not their --version
// check), it writes one line to stderr:
//
//   tidemark-bench: spawned pg_dump 143.2
//
// with the milliseconds since the process's time origin (its start): the CLI's start-up as the
// benchmark reports it. Plain JavaScript so that node loads it without a compiler; it only wraps
// child_process.spawn, which the code under test calls through the module object.
'use strict';
const childProcess = require('node:child_process');
const { writeSync } = require('node:fs');
const { basename } = require('node:path');

const TOOLS = new Set(['pg_dump', 'pg_restore']);
const spawn = childProcess.spawn;
let marked = false;

childProcess.spawn = function markedSpawn(command, args, ...rest) {
  if (!marked) {
    const argv = [command, ...(Array.isArray(args) ? args : [])].map(String);
    const tool = argv.map((a) => basename(a)).find((name) => TOOLS.has(name));
    if (tool && !argv.includes('--version')) {
      marked = true;
      writeSync(2, `tidemark-bench: spawned ${tool} ${performance.now().toFixed(1)}\n`);
    }
  }
  return spawn.call(this, command, args, ...rest);
};
