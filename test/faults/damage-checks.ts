import { runVerify } from '../../lib/core/commands/verify';
import type { TidemarkConfig } from '../../lib/core/config/schema';
import { archiveFor } from '../../lib/core/engines/continuous-archive';
import { TidemarkError } from '../../lib/core/errors';
import { silentProgress as progress } from '../../lib/core/progress';
import { Repository } from '../../lib/core/repository/repository';

/** What the corruption tests ask of source `app` after damaging one of its objects. */

/** What verify says about one backup: its problems, or the error it stopped with. */
export async function verifyProblems(config: TidemarkConfig, id: string): Promise<string> {
  try {
    const result = await runVerify(config, 'app', { backup: id, progress });
    return result.backups.flatMap((b) => b.problems).join('\n');
  } catch (e) {
    expect(e).toBeInstanceOf(TidemarkError);
    return (e as Error).message;
  }
}

/** What verify says about the continuous archive (WAL, binlog): one problem a line. */
export async function archiveProblems(config: TidemarkConfig): Promise<string[]> {
  const archive = await archiveFor(config.sources.app)!.load();
  return [...(await archive.verify(await Repository.open(config), 'app', { progress })).problems];
}

/** Every message about a damaged object must contain each of these (backup id, object name). */
export function expectNamed(message: string, names: readonly string[]): void {
  for (const name of names) expect(message).toContain(name);
}
