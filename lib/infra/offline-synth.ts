import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { TidemarkConfig } from '../core/config/schema';
import { buildTidemarkApp } from './tidemark-app';

/**
 * The CloudFormation template of the config's first stack, synthesized only to take its state
 * machines' definitions and run them on this machine (`tidemark drill`, `npm start`, the e2e tests).
 * Nothing is deployed from it, so it skips what only a deployment needs: bundling the Lambdas (their
 * handlers run in process here) and CDK's built-in CloudFormation validation, a WASM rules engine
 * that took 3.6 of the 4.3 s a stack's synth took on the 2-core test host. `cdk synth` of
 * bin/app.ts still validates, and test/infra/stack.test.ts synthesizes every example with it on.
 */
export function synthesizeOffline(config: TidemarkConfig, context: Record<string, unknown> = {}): object {
  const app = new App({ context: { ...context, 'aws:cdk:bundling-stacks': [] }, builtinCloudFormationValidation: false });
  const [stack] = buildTidemarkApp(app, config);
  return Template.fromStack(stack).toJSON();
}
