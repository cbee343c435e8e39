import { parseConfig } from '../../lib/core/config/load';
import { mergePolicy, RETENTION_DEFAULTS, TIERS_DEFAULTS } from '../../lib/core/config/retention';
import { EXAMPLE_CONFIG_YAML } from '../../lib/core/config/example';
import { ConfigError } from '../../lib/core/errors';

const base = (extra: string, source = '') =>
  `repository: file:///r\nencryption: { key: env:K }\n${extra}\nsources:\n  app:\n    engine: postgres\n    url: postgres://u@h:5432/app\n${source.replace(/^/gm, '    ')}\n`;

function errorOf(text: string): string {
  try {
    parseConfig(text, 'c.yaml');
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('retention and tiers policy', () => {
  it('defaults to the seed: 4 full, 4 diff, 30 days of archive; 30 logical and 12 monthly', () => {
    const config = parseConfig(base(''), 'c.yaml');
    expect(config.retention).toEqual(RETENTION_DEFAULTS);
    expect(config.tiers).toEqual(TIERS_DEFAULTS);
    expect(RETENTION_DEFAULTS).toMatchObject({ full: 4, diff: 4, archiveDays: 30 });
  });

  it('lets a source override single keys of the top-level policy', () => {
    const config = parseConfig(base('retention: { logical: 10 }', 'retention: { archiveDays: 7, longTerm: { yearly: 7 } }\ntiers: { coldClass: DEEP_ARCHIVE }'), 'c.yaml');
    const policy = mergePolicy(config, config.sources.app);
    expect(policy.retention).toEqual({ ...RETENTION_DEFAULTS, logical: 10, archiveDays: 7, longTerm: { ...RETENTION_DEFAULTS.longTerm, yearly: 7 } });
    expect(policy.tiers.coldClass).toBe('DEEP_ARCHIVE');
  });

  it('fails when cold does not come after warm, naming the key', () => {
    expect(errorOf(base('tiers: { warmAfterDays: 60, coldAfterDays: 45 }'))).toMatch(/^c\.yaml: tiers\.coldAfterDays: coldAfterDays \(45\) must be after warmAfterDays \(60\)/);
  });

  it('fails when a tier move would not outlast the minimum storage duration', () => {
    expect(errorOf(base('', 'tiers: { warmAfterDays: 30, coldAfterDays: 40 }'))).toMatch(/sources\.app\.tiers\.coldAfterDays: an object stays in STANDARD_IA at least 30 days/);
    expect(errorOf(base('tiers: { warmAfterDays: 10 }'))).toMatch(/tiers\.warmAfterDays: S3 moves nothing to STANDARD_IA younger than 30 days/);
    // Monthly keeps of 4 months (~120 days) go cold at 90 days, but DEEP_ARCHIVE bills 180.
    expect(errorOf(base('tiers: { coldClass: DEEP_ARCHIVE }', 'retention: { longTerm: { monthly: 4 } }'))).toMatch(
      /sources\.app\.retention\.longTerm\.monthly: monthly keeps last about 120 days, but a backup moved to DEEP_ARCHIVE after 90 days is billed for 180 days/,
    );
  });

  it('fails when long-term keeps have no fulls or logicals to keep', () => {
    expect(errorOf(base('', 'schedule: { diff: "0 3 * * *" }'))).toMatch(/retention\.longTerm: long-term keeps need full or logical backups/);
  });

  it('fails when the PITR window cannot be served: RDS keeps at most 35 days', () => {
    expect(errorOf(base('', 'rds: { instance: db1 }\nretention: { archiveDays: 40 }'))).toMatch(/sources\.app\.retention\.archiveDays: RDS keeps point-in-time recovery for at most 35 days/);
  });

  it('fails when minFull is above full', () => {
    expect(errorOf(base('retention: { full: 2, minFull: 3 }', 'rds: { instance: db1 }'))).toMatch(/retention\.minFull: minFull 3 is more than retention\.full 2/);
  });

  it('fails when the cold class differs from the vault\'s', () => {
    const aws = 'aws: { account: "111111111111", region: eu-west-1, coldStorageClass: DEEP_ARCHIVE }';
    expect(errorOf(base(`${aws}\ntiers: { coldClass: GLACIER }`))).toMatch(/tiers\.coldClass: the vault moves every cold-tagged object to aws\.coldStorageClass DEEP_ARCHIVE/);
    // Unset, the cold class follows the vault's.
    const config = parseConfig(base(aws), 'c.yaml');
    expect(mergePolicy(config, config.sources.app).tiers.coldClass).toBe('DEEP_ARCHIVE');
    expect(mergePolicy(parseConfig(base(''), 'c.yaml'), config.sources.app).tiers.coldClass).toBe('GLACIER');
  });

  it('shows both in the example that tidemark init writes', () => {
    expect(EXAMPLE_CONFIG_YAML).toMatch(/# retention:\n#\s+full: 4/);
    expect(EXAMPLE_CONFIG_YAML).toMatch(/# tiers:\n#\s+warmAfterDays: 30/);
    // Uncommented, the example's policy is valid and is the default.
    const block = EXAMPLE_CONFIG_YAML.slice(EXAMPLE_CONFIG_YAML.indexOf('# retention:'), EXAMPLE_CONFIG_YAML.indexOf('\n\n# The databases'));
    const uncommented = block
      .split('\n')
      .filter((line) => /^# (retention:|tiers:|  \w+: )/.test(line))
      .map((line) => line.slice(2).replace(/\s+#.*$/, ''))
      .join('\n');
    const config = parseConfig(base(uncommented), 'example.yaml');
    expect(config.retention).toEqual(RETENTION_DEFAULTS);
    expect(config.tiers).toEqual({ ...TIERS_DEFAULTS, coldClass: 'GLACIER' });
  });
});
