import { join } from 'node:path';
import { Duration, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { projectRoot } from './project-root';

export interface TidemarkFunctionProps {
  /** The folder under lambda/ (its index.ts exports `handler`). */
  readonly name: string;
  readonly description: string;
  readonly environment: Readonly<Record<string, string>>;
  readonly logRetention: logs.RetentionDays;
  readonly timeout: Duration;
  /** @default 256 */
  readonly memorySize?: number;
  /** Asynchronous invocations retried by Lambda. @default Lambda's default (2) */
  readonly retryAttempts?: number;
  /** X-Ray tracing. @default true */
  readonly tracing?: boolean;
  /** Grants on the role, made before the function exists (so the policy lists them before X-Ray's). */
  readonly grant?: (role: iam.Role) => unknown;
  /** Named in the error when lambda/<name> cannot be found. */
  readonly owner: string;
}

/**
 * One Tidemark Lambda (lambda/<name>/index.ts) in `scope`: an explicit log group and a role of its
 * own — the role holds exactly "write these logs" plus what `grant` adds, instead of
 * AWSLambdaBasicExecutionRole's permission to create log groups anywhere — Node 22 on ARM, and the
 * SDK bundled. Construct ids: `<id>`, `<id>Logs`, `<id>Role`.
 */
export function tidemarkFunction(scope: Construct, id: string, props: TidemarkFunctionProps): { fn: NodejsFunction; role: iam.Role } {
  const root = projectRoot(join('lambda', props.name, 'index.ts'), props.owner);
  const logGroup = new logs.LogGroup(scope, `${id}Logs`, { retention: props.logRetention });
  const role = new iam.Role(scope, `${id}Role`, { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'), description: `Tidemark ${props.name} function` });
  logGroup.grantWrite(role);
  props.grant?.(role);
  const fn = new NodejsFunction(scope, id, {
    entry: join(root, 'lambda', props.name, 'index.ts'),
    handler: 'handler',
    projectRoot: root,
    depsLockFilePath: join(root, 'package-lock.json'),
    description: props.description,
    // Pinned to the worker container's Node 22, so the engine runs on one Node everywhere.
    runtime: lambda.Runtime.NODEJS_22_X,
    architecture: lambda.Architecture.ARM_64,
    memorySize: props.memorySize ?? 256,
    timeout: props.timeout,
    role,
    logGroup,
    // EMF lines are printed with console.log; CloudWatch extracts metrics from them in the text
    // log format. The JSON format would wrap each line in a "message" string and lose the metrics.
    loggingFormat: lambda.LoggingFormat.TEXT,
    ...((props.tracing ?? true) ? { tracing: lambda.Tracing.ACTIVE } : {}),
    environment: { ...props.environment },
    ...(props.retryAttempts !== undefined ? { retryAttempts: props.retryAttempts } : {}),
    bundling: {
      minify: true,
      sourceMap: true,
      sourcesContent: false,
      target: 'node22',
      format: OutputFormat.CJS,
      // The SDK is bundled rather than taken from the runtime: the runtime's copy is whatever
      // version Lambda ships; bundling runs exactly the SDK the tests ran.
      externalModules: [],
    },
  });
  Validations.of(fn).acknowledge({
    id: 'AwsSolutions-L1',
    reason: 'nodejs22.x is pinned on purpose: it matches the Node 22 of the worker container, so lib/core runs on one Node version everywhere.',
  });
  return { fn, role };
}
