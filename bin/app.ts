#!/usr/bin/env node
/**
 * The CDK app: `npx cdk synth -c config=<file>` (default: $TIDEMARK_CONFIG or tidemark.config.yaml).
 * Reads the config, fails with the offending key named when it is invalid, and builds one stack
 * per account/region. cdk-nag's AwsSolutions pack checks every stack at synth.
 */
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { loadConfig } from '../lib/core/config/load';
import { TidemarkError } from '../lib/core/errors';
import { buildTidemarkApp } from '../lib/infra/tidemark-app';

async function main(): Promise<void> {
  const app = new App();
  const path: string = app.node.tryGetContext('config') ?? process.env.TIDEMARK_CONFIG ?? 'tidemark.config.yaml';
  const { config } = await loadConfig(path);
  buildTidemarkApp(app, config, path);
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  app.synth();
}

main().catch((e) => {
  process.stderr.write(e instanceof TidemarkError ? `tidemark: ${e.message}\n` : `${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
