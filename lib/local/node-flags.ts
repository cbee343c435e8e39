/**
 * V8 flags for the node processes that move a database's bytes: the worker (the image's
 * ENTRYPOINT, and the local runtime's worker process) and the installed CLI (its launcher's
 * shebang). A test holds the Dockerfile's ENTRYPOINT to the same list.
 *
 * `--initial-old-space-size=128`: V8 counts the memory behind Buffers towards the old generation's
 * limit, which starts small when the heap is small (~15 MiB here), so a process that passes
 * gigabytes through Buffers ran a full mark-compact every few MiB of them — a scale-200 physical
 * restore on Node 22 112 of them (`--trace-gc`), ~12% of all its CPU in V8's marking threads
 * (perf), a full backup 15–51. With the first limit at 128 MiB: 6 and 1; the restore's user CPU
 * 6.2–7.1 → 4.3–4.8 s, peak RSS 169–177 → 203–208 MiB, the backup's 176–193 → 202–206 MiB (by
 * hand, 2026-12-03, 2 runs each). Node refuses the flag in NODE_OPTIONS and ignores it when set
 * at run time (v8.setFlagsFromString: measured, no change), so it goes on the command line.
 */
export const DATA_NODE_FLAGS: readonly string[] = ['--initial-old-space-size=128'];
