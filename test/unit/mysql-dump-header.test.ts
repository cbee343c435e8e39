import { compressedOutput } from '../../lib/core/pipeline/compressed-output';
import { keepDumpHead, parseCoordinates } from '../../lib/core/engines/mysql/dump-header';

const HEADER = `-- MariaDB dump 10.19
--
-- Preferably use GTID to start replication from GTID position:

-- CHANGE MASTER TO MASTER_USE_GTID=slave_pos;
-- SET GLOBAL gtid_slave_pos='0-1-42';

--
-- Alternately, following is the position of the binary logging from SHOW MASTER STATUS at point of backup.
--

-- CHANGE MASTER TO MASTER_LOG_FILE='mariadb-bin.000003', MASTER_LOG_POS=1234;
`;

describe('the binlog position at the top of a dump', () => {
  it('is read from the CHANGE MASTER and gtid_slave_pos comments', () => {
    expect(parseCoordinates(HEADER)).toEqual({ file: 'mariadb-bin.000003', position: 1234, gtid: '0-1-42' });
    expect(parseCoordinates(HEADER.replace(/^.*gtid_slave_pos.*$/m, ''))).toEqual({ file: 'mariadb-bin.000003', position: 1234 });
    expect(parseCoordinates("-- CHANGE REPLICATION SOURCE TO SOURCE_LOG_FILE='binlog.000007', SOURCE_LOG_POS=157;\n")).toEqual({ file: 'binlog.000007', position: 157 });
    expect(parseCoordinates('-- MariaDB dump 10.19\nCREATE TABLE t (id int);\n')).toBeUndefined();
  });

  it('is decoded from the first compressed bytes of a dump far larger than what is kept', async () => {
    // 24 MiB of incompressible data after the header: several zstd jobs, cut long before the end.
    const script = `printf '%s' "$0"; head -c 25165824 /dev/urandom`;
    const out = compressedOutput({ command: 'sh', args: ['-c', script, HEADER] }, { level: 1, threads: 2 });
    const dump = keepDumpHead(out);
    let stored = 0;
    for await (const chunk of dump.compressed.output) stored += (chunk as Buffer).length;
    expect(stored).toBeGreaterThan(24 * 1024 * 1024);
    expect(dump.compressed.plainBytes()).toBe(Buffer.byteLength(HEADER) + 25165824);
    expect(await dump.coordinates()).toEqual({ file: 'mariadb-bin.000003', position: 1234, gtid: '0-1-42' });
  }, 60_000);
});
