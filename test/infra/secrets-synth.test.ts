import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { parseConfig } from '../../lib/core/config/load';
import { buildTidemarkApp } from '../../lib/infra/tidemark-app';
import { scanText, secretsIn, TEST_SECRETS } from '../harness/secret-scan';

/**
 * The synthesized side of the secrets scan (issue 11): a config whose passwords and key are
 * references — Secrets Manager ARNs, a KMS alias — with a known test secret in the environment —
 * synthesizes templates and state-machine definitions that carry the references only. What a
 * deployment passes is the secret's ARN (ECS injects the value into the task at start), never the
 * value, so nothing here can leak it into CloudFormation or an execution's input.
 */
describe('synthesized templates and state machines carry no secret', () => {
  const PASSWORD = TEST_SECRETS['synthesized password (secrets-synth.test.ts)'];

  it('fails when a test secret from the environment reaches a template or a state-machine definition', () => {
    // GIVEN a config naming secrets by reference (env: is refused for AWS: it could not reach a
    // worker), and a secret in this process's environment that nothing may copy into a template
    process.env.TIDEMARK_SYNTH_PW = PASSWORD;
    const config = parseConfig(
      JSON.stringify({
        repository: 's3://tidemark-backups-111111111111/prod',
        encryption: { key: 'kms:alias/tidemark' },
        aws: { account: '111111111111', region: 'eu-west-1' },
        sources: {
          app: { engine: 'postgres', url: 'postgres://backup@10.0.1.5:5432/app', password: 'secret:arn:aws:secretsmanager:eu-west-1:111111111111:secret:app-db-AbCdEf', stream: {} },
          shop: { engine: 'mysql', url: 'mysql://backup@10.0.1.6:3306/shop', password: 'secret:arn:aws:secretsmanager:eu-west-1:111111111111:secret:shop-db-AbCdEf' },
        },
      }),
      'synth.json',
    );

    // WHEN the app is synthesized as `cdk synth` would (assets not bundled)
    const stacks = buildTidemarkApp(new App({ builtinCloudFormationValidation: false, context: { 'aws:cdk:bundling-stacks': [] } }), config);

    // THEN no template — whose state machines' DefinitionStrings are part of it — holds a secret
    expect(stacks.length).toBeGreaterThan(0);
    for (const stack of stacks) {
      const template = JSON.stringify(Template.fromStack(stack).toJSON());
      scanText(`the synthesized template of ${stack.stackName}`, template);
      expect(secretsIn(template)).toEqual([]);
      expect(template).toContain('StateMachine'); // the definitions were in what was scanned
    }
  });
});
