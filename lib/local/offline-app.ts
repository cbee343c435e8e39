import { App } from 'aws-cdk-lib';

/**
 * An App synthesized only to take its state machines' definitions and run them on this machine
 * (`tidemark drill`, `npm start`, the e2e tests). Nothing is deployed from it, so it skips what only
 * a deployment needs: bundling the Lambdas (their handlers run in process here) and CDK's built-in
 * CloudFormation validation, a WASM rules engine that took 3.6 of the 4.3 s a stack's synth took on
 * the 2-core test host. `cdk synth` of bin/app.ts still validates, and test/infra/stack.test.ts
 * synthesizes every example with validation on.
 */
export function offlineApp(context: Record<string, unknown> = {}): App {
  return new App({ context: { ...context, 'aws:cdk:bundling-stacks': [] }, builtinCloudFormationValidation: false });
}
