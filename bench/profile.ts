/** Reading a V8 .cpuprofile (`node --cpu-prof`) down to the functions that spent the most self time. */
import { readFileSync } from 'node:fs';
import type { Operation, Profile } from './samples';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

/** Top self-time entries, named "function (file:line)", natives with their caller; paths shown relative to `root`. */
export function summarizeProfile(path: string, operation: Operation, wallSeconds: number, root: string): Profile {
  const prof = JSON.parse(readFileSync(path, 'utf8')) as { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] };
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const label = (n: ProfileNode): string => {
    const f = n.callFrame;
    const name = f.functionName || '(anonymous)';
    if (!f.url) {
      if (name.startsWith('(')) return name; // (idle), (program), (garbage collector)
      const p = parent.get(n.id);
      const caller = p === undefined ? undefined : byId.get(p);
      return caller ? `${name} [native] ← ${label(caller)}` : `${name} [native]`;
    }
    const file = f.url.replace(/^file:\/\//, '').replace(`${root}/`, '').replace(/^.*node_modules\//, '');
    return `${name} (${file}:${f.lineNumber + 1})`;
  };
  const self = new Map<string, number>();
  let total = 0;
  prof.samples.forEach((id, i) => {
    const us = prof.timeDeltas[i + 1] ?? 0;
    total += us;
    const key = label(byId.get(id)!);
    self.set(key, (self.get(key) ?? 0) + us);
  });
  const top = [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 12)
    .map(([name, us]) => ({ name, seconds: us / 1e6 }));
  return { operation, wallSeconds, sampledSeconds: total / 1e6, top };
}
