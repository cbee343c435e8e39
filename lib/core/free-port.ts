import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/**
 * A TCP port that was free on 127.0.0.1 a moment ago, for a server about to be started on it.
 *
 * Chosen below the kernel's ephemeral range (ip_local_port_range), at random: a port from that
 * range (what listening on port 0 gives) is also what every outgoing connection on the host takes
 * as its own, so between the choice and the server's bind a client somewhere could take it — a
 * MariaDB start in the test suite failed just so ("Bind on TCP/IP port … Address already in use").
 * Below the range only another caller choosing at the same moment can collide, one chance in some
 * twenty thousand. Where the range leaves no room below it, the kernel's choice is taken.
 */

/** The lowest port we choose; below it sit many well-known services. */
const LOWEST = 10_000;
const ATTEMPTS = 20;

/** The kernel's range for outgoing connections (Linux; elsewhere its default). */
function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (Number.isInteger(low) && Number.isInteger(high) && low <= high) return [low, high];
  } catch {
    // not Linux
  }
  return [32768, 60999];
}

function listenOn(port: number): Promise<number | undefined> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', (e: NodeJS.ErrnoException) => (e.code === 'EADDRINUSE' || e.code === 'EACCES' ? resolve(undefined) : reject(e)));
    server.listen(port, '127.0.0.1', () => {
      const address = server.address();
      const bound = typeof address === 'object' && address ? address.port : 0;
      server.close((err) => (err ? reject(err) : resolve(bound || undefined)));
    });
  });
}

export async function freePort(): Promise<number> {
  const [low] = ephemeralRange();
  if (low - LOWEST >= 1_000) {
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const port = await listenOn(LOWEST + Math.floor(Math.random() * (low - LOWEST)));
      if (port) return port;
    }
  }
  const port = await listenOn(0);
  if (!port) throw new Error('no free TCP port on 127.0.0.1');
  return port;
}
