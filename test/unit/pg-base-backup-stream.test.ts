import fc from 'fast-check';
import { BackendMessages, baseBackupCommand, parseDataRow, parseErrorFields } from '../../lib/core/engines/postgres/physical/base-backup-stream';

/*
 * The backend message splitter a base backup reads the socket with (base-backup-stream.ts): however
 * the bytes are cut into socket reads, it yields the same messages, and a CopyData of archive data
 * ('d' 'd') as exactly its bytes, in pieces.
 */

interface Message {
  readonly type: string;
  readonly payload: Buffer;
}

const frame = ({ type, payload }: Message): Buffer => {
  const header = Buffer.alloc(5);
  header.write(type, 0, 'latin1');
  header.writeUInt32BE(payload.length + 4, 1);
  return Buffer.concat([header, payload]);
};

const message: fc.Arbitrary<Message> = fc.oneof(
  fc.record({ type: fc.constantFrom('T', 'D', 'C', 'H', 'Z', 'c', 'N', 'E'), payload: fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)) }),
  // CopyData: archive data, a new archive, progress, the manifest's start.
  fc.record({
    type: fc.constant('d'),
    payload: fc
      .tuple(fc.constantFrom('d', 'n', 'p', 'm'), fc.uint8Array({ maxLength: 300 }))
      .map(([kind, body]) => Buffer.concat([Buffer.from(kind), Buffer.from(body)])),
  }),
);

/** What the splitter reports: whole messages, and each data message's bytes joined. */
function split(stream: Buffer, cuts: number[]): string[] {
  const seen: string[] = [];
  let data: Buffer[] | undefined;
  const flush = () => {
    if (data) seen.push(`data ${Buffer.concat(data).toString('hex')}`);
    data = undefined;
  };
  const parser = new BackendMessages(
    (type, payload) => {
      flush();
      seen.push(`${type} ${payload.toString('hex')}`);
    },
    (piece) => {
      expect(piece.length).toBeGreaterThan(0);
      (data ??= []).push(piece);
    },
  );
  let at = 0;
  for (const cut of [...cuts.filter((c) => c < stream.length)].sort((a, b) => a - b).concat(stream.length)) {
    parser.push(stream.subarray(at, cut));
    at = cut;
  }
  flush();
  return seen;
}

test('messages come out whole, and archive data as exactly its bytes, wherever the socket reads cut them', () => {
  fc.assert(
    fc.property(fc.array(message, { maxLength: 30 }), fc.array(fc.nat(4000), { maxLength: 40 }), (messages, cuts) => {
      const expected: string[] = [];
      for (const m of messages) {
        const streamed = m.type === 'd' && m.payload[0] === 0x64;
        // Two data messages in a row read as one run of bytes: the splitter hands on pieces, not messages.
        if (streamed && expected[expected.length - 1]?.startsWith('data ')) expected[expected.length - 1] += m.payload.subarray(1).toString('hex');
        else expected.push(streamed ? `data ${m.payload.subarray(1).toString('hex')}` : `${m.type} ${m.payload.toString('hex')}`);
      }
      const stream = Buffer.concat(messages.map(frame));
      expect(split(stream, cuts)).toEqual(expected.filter((e) => e !== 'data '));
    }),
  );
});

test('the command is pg_basebackup -X fetch --checkpoint=fast --no-verify-checksums, with the label quoted', () => {
  expect(baseBackupCommand("tidemark it's")).toBe(
    "BASE_BACKUP ( LABEL 'tidemark it''s', WAL, WAIT 0, TABLESPACE_MAP, VERIFY_CHECKSUMS 0, MANIFEST 'yes', TARGET 'client', CHECKPOINT 'fast' )",
  );
});

test('DataRow columns and ErrorResponse fields are read as the protocol lays them out', () => {
  const row = Buffer.concat([Buffer.from([0, 2]), Buffer.from([0, 0, 0, 9]), Buffer.from('0/2000028'), Buffer.from([0xff, 0xff, 0xff, 0xff])]);
  expect(parseDataRow(row)).toEqual(['0/2000028', null]);
  const error = Buffer.from('SFATAL\0C57P01\0Mterminating connection due to administrator command\0\0');
  expect(parseErrorFields(error)).toEqual({ S: 'FATAL', C: '57P01', M: 'terminating connection due to administrator command' });
});
