import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { freePort } from '../../lib/core/free-port';

/** Ports the kernel gives outgoing connections: a server's port chosen there can be taken by any client. */
const ephemeralLow = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);

const listen = (port: number) =>
  new Promise<() => Promise<void>>((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(() => new Promise((done) => server.close(() => done()))));
  });

describe('freePort', () => {
  test('a port below the ephemeral range that a server can bind, and not the same one every time', async () => {
    const ports = await Promise.all(Array.from({ length: 10 }, () => freePort()));
    for (const port of ports) {
      expect(port).toBeGreaterThanOrEqual(10_000);
      expect(port).toBeLessThan(ephemeralLow);
    }
    expect(new Set(ports).size).toBeGreaterThan(1);
    const close = await listen(ports[0]);
    await close();
  });

  test('a port something already listens on is passed over for the next draw', async () => {
    const taken = await freePort();
    const close = await listen(taken);
    const draws = [(taken - 10_000 + 0.5) / (ephemeralLow - 10_000), 0.5];
    const random = jest.spyOn(Math, 'random').mockImplementation(() => draws.shift() ?? 0.25);
    try {
      const port = await freePort();
      expect(port).not.toBe(taken);
      expect(port).toBe(10_000 + Math.floor(0.5 * (ephemeralLow - 10_000)));
      expect(random).toHaveBeenCalledTimes(2); // the first draw hit the taken port
    } finally {
      random.mockRestore();
      await close();
    }
  });
});
